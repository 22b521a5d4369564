"""SMS over SMPP 3.4: the provider that hands messages to a carrier and reads its receipts.

One provider per carrier account, holding `binds` sessions; a receipt arriving on any of them
finds its message, because parts are keyed by (carrier, canonical SMSC id), not by session.
With `leasing` (every gateway process), `binds` is a total across the cluster: this provider opens
only the binds whose slot leases it holds (see bind_slots.py), possibly none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from partner_gateway.channels.base import (
    Accepted,
    HandoverGuard,
    OutboundMessage,
    ReportSink,
    SendError,
    StatusReport,
    SubmittedPart,
    WebhookRoute,
    wait_always_accepting,
)
from partner_gateway.channels.smpp.bind_slots import BindLeasing, SlotKeeper
from partner_gateway.channels.smpp.codec.constants import (
    CommandStatus,
    EsmClass,
    RegisteredDelivery,
    status_name,
)
from partner_gateway.channels.smpp.codec.pdu import DeliverSm, SubmitSm
from partner_gateway.channels.smpp.codec.smpp_time import relative_validity
from partner_gateway.channels.smpp.codec.udh import parse_udh_concat, udh_concat
from partner_gateway.channels.smpp.esme import (
    EsmeConfig,
    EsmeSession,
    InvalidSubmit,
    NotConnected,
    OutcomeUnknown,
    SubmitRejected,
)
from partner_gateway.channels.smpp.receipts import canonical_message_id, parse_receipt, receipt_text_excerpt
from partner_gateway.channels.smpp.settings import SmppCarrier
from partner_gateway.domain.encoding import encode_parts
from partner_gateway.domain.inbound import MAX_TEXT, InboundMessage, InboundPart, decode_sms, display_number
from partner_gateway.domain.routing import Health
from partner_gateway.domain.statuses import Channel, DeliveryStatus
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.errors import Unavailable
from partner_gateway.observability import metrics
from partner_gateway.store.repositories.carrier_stats import CarrierSample, CarrierStatsStore

logger = logging.getLogger(__name__)

# What a person should read for the statuses carriers commonly answer a submit with.
_SUBMIT_STATUS_TEXT: dict[int, str] = {
    CommandStatus.ESME_RINVDSTADR: "Invalid destination address",
    CommandStatus.ESME_RINVSRCADR: "Invalid sender address",
    CommandStatus.ESME_RINVMSGLEN: "The carrier refused the message length",
    CommandStatus.ESME_RSUBMITFAIL: "The carrier rejected the submission",
    CommandStatus.ESME_RTHROTTLED: "The carrier asked us to slow down",
    CommandStatus.ESME_RMSGQFUL: "The carrier's queue is full",
    CommandStatus.ESME_RSYSERR: "The carrier reported a system error",
    CommandStatus.ESME_RINVEXPIRY: "The carrier refused the validity period",
    CommandStatus.ESME_RX_T_APPN: "The carrier reported a temporary application error",
    CommandStatus.ESME_RX_P_APPN: "The carrier reported a permanent application error",
    CommandStatus.ESME_RX_R_APPN: "The carrier rejected the message",
}
MIN_VALIDITY_SECONDS = 60


def smpp_code(status: int) -> str:
    return f"smpp:0x{status:08X}"


def describe_submit_status(status: int) -> str:
    text = _SUBMIT_STATUS_TEXT.get(status, "The carrier rejected the message")
    return f"{text} ({status_name(status)})"


class SmppProvider:
    channel = Channel.SMS

    def __init__(
        self,
        carrier: SmppCarrier,
        *,
        leasing: BindLeasing | None = None,
        stats: CarrierStatsStore | None = None,
    ) -> None:
        self.carrier = carrier
        self.name = f"smpp:{carrier.name}"
        self._sessions: dict[int, EsmeSession] = {}  # by bind slot, 1..binds
        self._sink: ReportSink | None = None
        self._leasing = leasing
        self._keeper: SlotKeeper | None = None
        self._stats = stats
        self._stats_task: asyncio.Task[None] | None = None
        self._link_errors: list[tuple[float, str]] = []  # of sessions closed since, for the stats
        self.receipts = 0
        self.submits = 0  # parts accepted
        self.last_error: str | None = None  # the latest submit the carrier did not accept
        self.last_error_at: int | None = None
        metrics.LIVE.track_carrier(self)  # its sessions' gauges, read at scrape time

    def carrier_sessions(self) -> metrics.CarrierSessions:
        """This provider's sessions now, for /metrics."""
        sessions = list(self._sessions.values())
        return metrics.CarrierSessions(
            carrier=self.carrier.name,
            held=len(sessions),
            bound=sum(1 for session in sessions if session.is_bound),
            in_flight=sum(session.outstanding for session in sessions),
            window=self.carrier.window * len(sessions),
        )

    def webhook_routes(self) -> Sequence[WebhookRoute]:
        return ()

    async def start(self, sink: ReportSink) -> None:
        self._sink = sink
        if self._stats is not None and self._leasing is not None:
            self._stats_task = asyncio.create_task(self._report(), name=f"smpp-stats {self.carrier.name}")
        if self._leasing is None:
            for slot in range(1, self.carrier.binds + 1):
                await self._open_slot(slot)
            return
        self._keeper = SlotKeeper(
            self.carrier.name, self.carrier.binds, self._leasing, self._open_slot, self._close_slot
        )
        await self._keeper.start()

    async def _open_slot(self, slot: int) -> None:
        carrier = self.carrier
        config = EsmeConfig(
            host=carrier.host,
            port=carrier.port,
            system_id=carrier.system_id,
            password=carrier.password.get_secret_value(),
            system_type=carrier.system_type,
            bind_mode=carrier.bind_mode,
            window=carrier.window,
            throughput_per_second=carrier.throughput_per_second,
            enquire_link_interval=carrier.enquire_link_seconds,
            response_timeout=carrier.response_timeout_seconds,
            name=f"{carrier.name}#{slot}",
        )
        session = EsmeSession(config, on_deliver=self._on_deliver)
        await session.start()
        self._sessions[slot] = session

    def _close_slot(self, slot: int, grace: float | None = None) -> Coroutine[Any, Any, None]:
        # Taken out at once, not when the returned stop runs: no new submit picks it from now on.
        session = self._sessions.pop(slot, None)
        return session.stop(grace) if session is not None else asyncio.sleep(0)

    async def stop(self) -> None:
        if self._stats_task is not None:
            self._stats_task.cancel()
            await asyncio.gather(self._stats_task, return_exceptions=True)
            self._stats_task = None
            assert self._stats is not None
            assert self._leasing is not None
            with contextlib.suppress(Exception):  # the store away as we stop: the row goes stale
                async with asyncio.timeout(self._leasing.interval):
                    await self._stats.forget(self.carrier.name, self._leasing.holder)
        if self._keeper is not None:
            await self._keeper.stop()  # closes its sessions first, then gives the leases up
            self._keeper = None
        for slot in list(self._sessions):
            await self._close_slot(slot)

    def sample(self, holder: str, since: tuple[float, int, int] | None) -> CarrierSample:
        """This worker's view of the carrier now; rates against `since` (monotonic time, submits,
        receipts of the previous sample)."""
        now = time.monotonic()
        sessions = list(self._sessions.values())
        elapsed = now - since[0] if since is not None else 0.0

        def rate(total: int, before: int) -> float:
            return round((total - before) / elapsed, 2) if elapsed > 0 else 0.0

        error, error_at = self.last_error, self.last_error_at
        for session in sessions:  # a bind that failed or a link lost since the last submit error
            link_at = session.counters.last_link_error_at
            if (
                session.counters.last_link_error
                and link_at
                and (error_at is None or link_at * 1000 > error_at)
            ):
                error, error_at = session.counters.last_link_error, int(link_at * 1000)
        return CarrierSample(
            carrier=self.carrier.name,
            holder=holder,
            health=self.health.value,
            binds_held=len(sessions),
            binds_bound=sum(1 for session in sessions if session.is_bound),
            window=self.carrier.window * len(sessions),
            in_flight=sum(session.outstanding for session in sessions),
            submits_per_second=rate(self.submits, since[1]) if since else 0.0,
            receipts_per_second=rate(self.receipts, since[2]) if since else 0.0,
            submits_total=self.submits,
            receipts_total=self.receipts,
            last_error=error[:300] if error else None,
            last_error_at=error_at,
        )

    async def _report(self) -> None:
        """Every renewal interval, this worker's view of the carrier into the store."""
        assert self._stats is not None
        assert self._leasing is not None
        since: tuple[float, int, int] | None = None
        while True:
            sample = self.sample(self._leasing.holder, since)
            since = (time.monotonic(), sample.submits_total, sample.receipts_total)
            try:
                async with asyncio.timeout(self._leasing.interval):
                    await self._stats.write(sample)
            except Exception as error:  # the store away: the next round writes again
                logger.debug("carrier %s: stats not written: %r", self.carrier.name, error)
            await asyncio.sleep(self._leasing.interval)

    @property
    def bound_slots(self) -> frozenset[int]:
        """The bind slots this provider holds whose session is bound right now."""
        return frozenset(slot for slot, session in self._sessions.items() if session.is_bound)

    @property
    def accepting(self) -> bool:
        """This worker holds at least one of the carrier's binds: it can hand messages over.
        A dispatcher should not take this carrier's work while it is False (see `wait_accepting`)."""
        return bool(self._sessions)

    @property
    def health(self) -> Health:
        """What routing needs to know of this carrier on this worker now (domain/routing.py)."""
        if not self._sessions:
            return Health.ELSEWHERE if self._keeper is not None else Health.DOWN
        bound = [session for session in self._sessions.values() if session.is_bound]
        if not bound:
            return Health.DOWN
        if min(session.paused_for for session in bound) > self.carrier.failover_throttle_seconds:
            return Health.THROTTLED
        return Health.UP

    async def wait_accepting(self, state: bool = True) -> None:
        """Return once :attr:`accepting` is `state` (a dispatcher pauses or resumes on it)."""
        if self._keeper is None:  # without leasing every bind is this provider's: always accepting
            await wait_always_accepting(state)
            return
        async with self._keeper.changed:
            await self._keeper.changed.wait_for(lambda: self.accepting is state)

    async def wait_bound(self, within: float) -> bool:
        """Every bind this provider holds is bound (and it holds at least one) within `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.wait_accepting()
        for session in list(self._sessions.values()):
            if not await session.wait_bound(deadline - loop.time()):
                return False
        return bool(self._sessions)

    def _session(self) -> EsmeSession | None:
        sessions = list(self._sessions.values())
        bound = [session for session in sessions if session.is_bound]
        return min(bound or sessions, key=lambda session: session.outstanding, default=None)

    def provider_key(self, submit_id: str) -> str:
        """The canonical id a receipt for this submission will carry."""
        value = submit_id.strip()
        try:
            if self.carrier.receipt_id_format == "hex_submit_decimal_receipt":
                value = str(int(value, 16))
            elif self.carrier.receipt_id_format == "decimal_submit_hex_receipt":
                value = format(int(value), "x")
        except ValueError:
            logger.warning("carrier %s: id %r is not in the configured format", self.carrier.name, value)
        return canonical_message_id(value)

    async def send(self, message: OutboundMessage, guard: HandoverGuard) -> Accepted:
        text = str(message.content.get("text", ""))
        try:
            encoded = encode_parts(text)
        except ValueError as error:
            raise SendError(
                "permanent", f"The text cannot be encoded: {error}", code="gw:invalid-content"
            ) from None
        total = len(encoded.parts)
        sender = message.sender or self.carrier.default_source
        numeric = sender.lstrip("+").isdigit()
        remaining = max(MIN_VALIDITY_SECONDS, (message.expires_at - now_ms()) // 1000)
        reference = int.from_bytes(hashlib.sha256(message.message_id.encode()).digest()[:1], "big") or 1
        accepted: list[SubmittedPart] = []
        for index in range(message.parts_done, total):
            payload = encoded.parts[index]
            if total > 1:
                payload = udh_concat(reference, total, index + 1) + payload
            pdu = SubmitSm(
                sequence_number=0,
                source_addr_ton=self.carrier.numeric_source_ton if numeric else self.carrier.source_ton,
                source_addr_npi=self.carrier.numeric_source_npi if numeric else self.carrier.source_npi,
                source_addr=sender.lstrip("+") if numeric else sender,
                dest_addr_ton=self.carrier.dest_ton,
                dest_addr_npi=self.carrier.dest_npi,
                destination_addr=message.to.lstrip("+"),
                esm_class=int(EsmClass.UDHI) if total > 1 else 0,
                validity_period=relative_validity(int(remaining)),
                registered_delivery=int(RegisteredDelivery.RECEIPT_ON_FINAL),
                data_coding=encoded.data_coding,
                short_message=payload,
            )
            session = self._session()
            if session is None:
                # Other workers hold this carrier's binds. Until the dispatcher skips this
                # carrier's work while `accepting` is False, hand it back for a later attempt
                # (likely on another worker): not sent, so a retry is safe.
                interval = self._leasing.interval if self._leasing is not None else None
                raise self._error(
                    "retry",
                    "No connection to the carrier: its binds are held by other workers",
                    None,
                    accepted,
                    retry_after=interval,
                )
            carrier = self.carrier.name
            try:
                response = await session.submit(
                    pdu, before_write=lambda: guard.before_write(message.message_id)
                )
            except NotConnected as error:
                metrics.smpp_submitted(carrier, "not_connected")
                raise self._error("retry", f"No connection to the carrier: {error}", None, accepted) from None
            except InvalidSubmit as error:
                metrics.smpp_submitted(carrier, "invalid")
                code = smpp_code(error.command_status)
                raise self._error(
                    "permanent", describe_submit_status(error.command_status), code, accepted
                ) from None
            except SubmitRejected as error:
                metrics.smpp_submitted(carrier, "throttled" if error.throttled else "rejected")
                kind = "throttled" if error.throttled else "retry" if error.transient else "permanent"
                code = smpp_code(error.command_status)
                raise self._error(
                    kind, describe_submit_status(error.command_status), code, accepted
                ) from None
            except OutcomeUnknown as error:
                metrics.smpp_submitted(carrier, "no_answer")
                raise self._error(
                    "ambiguous", f"No answer from the carrier: {error}", None, accepted
                ) from None
            metrics.smpp_submitted(carrier, "accepted")
            self.submits += 1
            accepted.append(
                SubmittedPart(index + 1, total, response.message_id, self.provider_key(response.message_id))
            )
        return Accepted(self.name, tuple(accepted), "Accepted by the carrier", "ESME_ROK")

    def _error(
        self,
        kind: str,
        description: str,
        code: str | None,
        accepted: list[SubmittedPart],
        *,
        retry_after: float | None = None,
    ) -> SendError:
        if retry_after is None or self._session() is not None:  # not "binds held by other workers"
            self.last_error, self.last_error_at = description, now_ms()
        return SendError(
            kind,  # type: ignore[arg-type]
            description,
            code=code,
            provider=self.name,
            accepted_parts=accepted,
            retry_after=retry_after if retry_after is not None else 1.0 if kind == "throttled" else None,
        )

    async def _on_deliver(self, pdu: DeliverSm) -> int:
        receipt = parse_receipt(pdu)
        if receipt is None:
            return await self._on_mobile_originated(pdu)
        metrics.smpp_receipt(self.carrier.name)
        outcome = receipt.outcome
        status = DeliveryStatus(outcome.status)
        key = canonical_message_id(receipt.message_id)
        occurred = int(receipt.done_date.timestamp() * 1000) if receipt.done_date else now_ms()
        error_code = None
        if status in (DeliveryStatus.ERROR, DeliveryStatus.EXPIRED):
            has_err = receipt.error_code and receipt.error_code.strip("0")
            error_code = (
                f"smpp-err:{receipt.error_code}" if has_err else f"smpp-stat:{receipt.state or 'UNKNOWN'}"
            )
        report = StatusReport(
            provider=self.name,
            status=status,
            raw_state=receipt.state or "(none)",
            description=outcome.description,
            occurred_at=occurred,
            dedup_key=f"smpp:{key}:{receipt.state}:{receipt.done_date}:{receipt.is_intermediate}",
            provider_key=key,
            error_code=error_code,
            is_final=outcome.final,
            # In a receipt the handset is the source: with the text excerpt, enough to recognise
            # the receipt of a hand-over whose answer was lost (see delivery.remember_unconfirmed).
            details={"destination": pdu.source_addr, "text_excerpt": receipt_text_excerpt(receipt.raw_text)},
        )
        assert self._sink is not None
        try:
            await self._sink.record([report])
        except Unavailable as error:  # the store is away: the carrier offers the receipt again later
            logger.warning(
                "carrier %s: receipt not recorded, answered as a temporary error: %s",
                self.carrier.name,
                error,
            )
            return int(CommandStatus.ESME_RX_T_APPN)
        self.receipts += 1
        return int(CommandStatus.ESME_ROK)

    async def _on_mobile_originated(self, pdu: DeliverSm) -> int:
        """A user's message: stored (once) for the company owning its destination, or, as a part
        of a concatenated one, kept until its message is whole. Acknowledged once committed; a
        temporary error while the store is away, so the carrier offers it again."""
        item = mobile_originated(self.name, pdu, now_ms())
        assert self._sink is not None
        try:
            await self._sink.receive([item])
        except Unavailable as error:
            logger.warning(
                "carrier %s: mobile-originated message not stored, answered as a temporary error: %s",
                self.carrier.name,
                error,
            )
            return int(CommandStatus.ESME_RX_T_APPN)
        return int(CommandStatus.ESME_ROK)


def mobile_originated(provider: str, pdu: DeliverSm, now: int) -> InboundMessage | InboundPart:
    """A mobile-originated deliver_sm as one inbound message, or one part of a concatenated one:
    a UDH concatenation element (esm_class UDHI) or the sar_* TLVs say so; message_payload, when
    present, carries the text instead of short_message."""
    data = pdu.message_payload if pdu.message_payload else pdu.short_message
    sender = display_number(pdu.source_addr)
    recipient = pdu.destination_addr
    reference = total = seq = None
    if pdu.esm_class & EsmClass.UDHI and data:
        concat = parse_udh_concat(data)
        if concat is not None:
            reference, total, seq = concat.reference, concat.total, concat.sequence
        data = data[1 + data[0] :]  # the header, whatever it holds, is not text
    elif pdu.sar_total_segments and pdu.sar_segment_seqnum and pdu.sar_msg_ref_num is not None:
        reference, total, seq = pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum
    if total is not None and seq is not None and reference is not None and 1 <= seq <= total and total > 1:
        return InboundPart(provider, sender, recipient, reference, total, seq, pdu.data_coding, data, now)
    text, kind = decode_sms(pdu.data_coding, data)
    digest = hashlib.sha256(
        b"|".join(
            [provider.encode(), sender.encode(), recipient.encode(), bytes([pdu.data_coding & 0xFF]), data]
        )
    ).hexdigest()
    return InboundMessage(
        channel=Channel.SMS,
        provider=provider,
        sender=sender,
        recipient=recipient,
        text=text[:MAX_TEXT],
        kind=kind,
        received_at=now,
        dedup_key=f"smpp:{digest}",
        raw=[{"esmClass": pdu.esm_class, "dataCoding": pdu.data_coding, "payload": data.hex()}],
    )
