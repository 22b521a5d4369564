"""What the SMSC simulator is told (:class:`SmscConfig`), told to do wrong (:class:`SmscScript`), and counts
(:class:`SmscStats`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

MessageIdFormat = Literal["decimal", "hex"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SmscConfig:
    """Settings of one simulated SMSC. Times are seconds; limits bound the simulator's memory."""

    host: str = "127.0.0.1"
    port: int = 2775  # 0 = an ephemeral port; SmscSimulator.start() returns the one bound
    system_id: str = "gateway"  # the only account: what the ESME must bind with
    password: str = "secret"  # noqa: S105 - a loopback simulator's default, never a real credential
    smsc_system_id: str = "SMSCSIM"  # what bind_resp names the SMSC
    # The handsets' account: what an ESME bound with it submits is delivered to `system_id`'s
    # receivers as mobile-originated deliver_sm (`partner-gateway simulate mo`); None: no such account.
    handset_system_id: str | None = "handset"
    handset_password: str = "handset"  # noqa: S105 - a loopback simulator's default
    receipt_delay_min_seconds: float = 0.5  # a receipt follows its submit after a uniform delay
    receipt_delay_max_seconds: float = 2.0
    max_throughput: float | None = None  # submits/s per connection before ESME_RTHROTTLED; None = no limit
    message_id_format: MessageIdFormat = "decimal"  # 10 decimal digits, or 16 upper-case hex digits
    date_digits: Literal[10, 12] = 10  # receipt dates YYMMDDhhmm or YYMMDDhhmmss
    receipt_tlvs: bool = True  # receipted_message_id + message_state (+ network_error_code) besides the text
    seed: int | None = None  # receipt delays and the first message id; None = different every run
    deliver_sm_resp_timeout_seconds: float = 10.0  # no deliver_sm_resp by then = not acknowledged
    receipt_retry_seconds: float = 5.0  # wait before resending an unacknowledged receipt
    max_receipt_resends: int = 3  # then the receipt is abandoned (stats.receipts_abandoned)
    receipt_hold_seconds: float = 600.0  # how long a receipt waits for a receiver-capable bind
    max_pending_receipts: int = 100_000  # receipts not yet acknowledged; beyond it submits get ESME_RMSGQFUL
    max_tracked_submissions: int = 100_000  # (destination, content) keys kept to count duplicates
    max_write_buffer: int = 1 << 20  # octets queued to a slow receiver before receipts wait for another

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not 0-65535")
        if not 0 < len(self.system_id) <= 15 or len(self.password) > 8:
            problems.append("system_id must have 1-15 characters and password at most 8 (SMPP 3.4 bind)")
        if not 0 <= self.receipt_delay_min_seconds <= self.receipt_delay_max_seconds:
            problems.append("receipt delays need 0 <= min <= max")
        if self.max_throughput is not None and self.max_throughput <= 0:
            problems.append("max_throughput must be positive (None for no limit)")
        if self.message_id_format not in ("decimal", "hex") or self.date_digits not in (10, 12):
            problems.append("message_id_format is decimal|hex and date_digits 10|12")
        if min(self.deliver_sm_resp_timeout_seconds, self.receipt_retry_seconds) <= 0:
            problems.append("deliver_sm_resp timeout and receipt retry delay must be positive")
        if min(self.max_receipt_resends, self.receipt_hold_seconds) < 0:
            problems.append("max_receipt_resends and receipt_hold_seconds cannot be negative")
        if min(self.max_pending_receipts, self.max_tracked_submissions, self.max_write_buffer) < 1:
            problems.append("the max_* limits must be at least 1")
        if problems:
            raise ValueError("invalid SmscConfig: " + "; ".join(problems))


@dataclass(slots=True, kw_only=True)
class SmscScript:
    """Misbehaviour on demand; change the fields while the simulator runs. Counters count down as they
    fire and are shared by all connections ("the next N" means the next N anywhere)."""

    reject_binds: int = 0  # the next N binds get ESME_RBINDFAIL, then the connection is closed
    nack_submits: int = 0  # the next N submits get generic_nack ESME_RSYSERR (no id, no receipt)
    ignore_submits: int = 0  # the next N submits get no answer at all and are dropped (no receipt)
    receipt_before_response: int = 0  # the next N submits with a receipt: it is written before the resp
    duplicate_receipts: bool = False  # every receipt is sent twice (two deliver_sm, each acknowledged)
    hex_ids_decimal_receipts: bool = False  # hex ids in submit_sm_resp, the decimal value in receipts
    strip_receipt_id_zeros: bool = False  # receipts name the id without its leading zeros
    twelve_digit_dates: bool = False  # receipt dates YYMMDDhhmmss whatever the config says
    drop_at_submit: int = 0  # close the connection at the Nth submit from now (1 = the next one)
    drop_before_answer: bool = False  # ... without answering or accepting it, instead of right after


@dataclass(slots=True, kw_only=True)
class SmscStats:
    """Counters since start. ``receipts_sent`` counts every deliver_sm receipt written, resends and
    scripted duplicates included; ``duplicates`` counts accepted submits whose destination and content
    (short_message, or message_payload when that is empty) had already been accepted."""

    connections: int = 0
    binds: int = 0
    bind_rejections: int = 0
    unbinds: int = 0  # unbind received from an ESME (and answered with unbind_resp)
    submits: int = 0  # every submit_sm received, whatever the answer
    mobile_originated: int = 0  # MO parts queued to the gateway (send_mo, the handset account)
    submits_accepted: int = 0  # answered ESME_ROK with a message id
    submits_rejected: int = 0  # answered with an error status (throttled and queue-full included)
    throttled: int = 0  # answered ESME_RTHROTTLED
    duplicates: int = 0
    submits_by_content: dict[tuple[str, bytes], int] = field(default_factory=dict)
    receipts_sent: int = 0
    receipts_acknowledged: int = 0  # deliver_sm_resp ESME_ROK received
    receipts_resent: int = 0  # sent again after an error answer, a timeout or a lost connection
    receipts_abandoned: int = 0  # given up after max_receipt_resends or receipt_hold_seconds
    generic_nacks: int = 0  # generic_nack sent (malformed PDUs, unknown commands, scripted)

    def summary(self) -> str:
        """One log line, without the per-content table."""
        return " ".join(
            f"{f.name}={getattr(self, f.name)}" for f in fields(self) if f.name != "submits_by_content"
        )
