"""How `SmppProvider.send` turns what the carrier answers (or does not) into a `SendError`: one table,
each case driven through the real path (provider, ESME session, TCP, the SMSC simulator told what to
answer; the store for bind leases), asserting kind, code and retry_after, the parts accepted before
the failure, and how many submit_sm reached the SMSC (each one announced to the hand-over guard)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from channels.harness import RecordingGuard, RecordingSink, assert_no_secret_logged
from partner_gateway.channels.base import OutboundMessage, SendError, SendErrorKind
from partner_gateway.channels.smpp.bind_slots import BindLeasing
from partner_gateway.channels.smpp.provider import SmppProvider
from partner_gateway.channels.smpp.settings import SmppCarrier
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.simulators.smsc import SmscConfig, SmscScript, SmscSimulator
from partner_gateway.store.repositories.bind_slots import BindSlotStore

PASSWORD = "send-pw"
WAIT = 10.0
LEASE = 30.0
TWO_PARTS = "x" * 200  # GSM-7, 153 characters a part


@dataclass(frozen=True)
class Case:
    """What the SMSC is told (``smsc`` for its config, ``script`` for its misbehaviour), the message,
    and what the SendError must say. ``warm_up`` messages are accepted first: they spend the SMSC's
    one throughput token or its room for receipts."""

    kind: SendErrorKind
    code: str | None
    retry_after: float | None
    submits: int  # submit_sm of the failing message that reached the SMSC
    parts_accepted: int = 0
    smsc: dict[str, Any] = field(default_factory=dict)
    script: dict[str, Any] = field(default_factory=dict)
    to: str = "+4915112345678"
    text: str = "hello"
    warm_up: int = 0
    bound: bool = True  # the provider's bind is up before the send
    bind_held_elsewhere: bool = False  # another worker holds the carrier's only bind lease
    provider: str = "smpp:acme"


CASES = [
    pytest.param(
        Case("permanent", "smpp:0x0000000B", None, submits=1, to="+4915112345690"),
        id="ESME_RINVDSTADR (fate 90): permanent",
    ),
    pytest.param(
        Case("throttled", "smpp:0x00000058", 1.0, submits=1, smsc={"max_throughput": 0.01}, warm_up=1),
        id="ESME_RTHROTTLED: throttled, retry after 1 s",
    ),
    pytest.param(
        Case(
            "throttled",
            "smpp:0x00000014",
            1.0,
            submits=1,
            smsc={
                "max_pending_receipts": 1,
                "receipt_delay_min_seconds": 60.0,
                "receipt_delay_max_seconds": 60.0,
            },
            warm_up=1,
        ),
        id="ESME_RMSGQFUL (queue full): throttled, retry after 1 s",
    ),
    pytest.param(
        Case("retry", "smpp:0x00000008", None, submits=1, script={"nack_submits": 1}),
        id="generic_nack ESME_RSYSERR (system error): retry",
    ),
    pytest.param(
        Case("ambiguous", None, None, submits=1, script={"ignore_submits": 1}),
        id="no submit_sm_resp within the timeout: ambiguous",
    ),
    pytest.param(
        Case("ambiguous", None, None, submits=1, script={"drop_at_submit": 1, "drop_before_answer": True}),
        id="connection lost after the write: ambiguous",
    ),
    pytest.param(
        Case("retry", None, None, submits=0, script={"reject_binds": 1000}, bound=False),
        id="every bind refused, never bound: retry, nothing written",
    ),
    pytest.param(
        Case("retry", None, LEASE / 3, submits=0, bound=False, bind_held_elsewhere=True),
        id="the only bind held by another worker: retry after a lease round",
    ),
    pytest.param(
        Case("permanent", "smpp:0x0000000B", None, submits=0, to="+" + "4" * 25),
        id="destination the PDU cannot carry: permanent, nothing written",
    ),
    pytest.param(
        # Refused before a session is chosen, and today the only error that names no provider.
        Case("permanent", "gw:invalid-content", None, submits=0, text="lone \ud800 surrogate", provider=""),
        id="text that cannot be encoded: permanent, nothing written",
    ),
    pytest.param(
        Case(
            "throttled",
            "smpp:0x00000058",
            1.0,
            submits=2,
            parts_accepted=1,
            smsc={"max_throughput": 0.01},
            text=TWO_PARTS,
        ),
        id="part 1 of 2 accepted, part 2 throttled: the accepted part is kept",
    ),
    pytest.param(
        Case(
            "ambiguous",
            None,
            None,
            submits=2,
            parts_accepted=1,
            script={"drop_at_submit": 2, "drop_before_answer": True},
            text=TWO_PARTS,
        ),
        id="part 1 of 2 accepted, connection lost after writing part 2: ambiguous",
    ),
]


def message(message_id: str, to: str, text: str) -> OutboundMessage:
    stamp = now_ms()
    return OutboundMessage(
        message_id=message_id,
        company_id="cmp_send_errors",
        channel=Channel.SMS,
        to=to,
        sender=None,
        content={"text": text},
        created_at=stamp,
        expires_at=stamp + 3_600_000,
    )


@pytest.mark.parametrize("case", CASES)
async def test_send_error_mapping(case: Case, runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="partner_gateway")
    config = SmscConfig(port=0, system_id="gateway", password=PASSWORD, **case.smsc)
    async with SmscSimulator(config, script=SmscScript(**case.script)) as smsc:
        assert smsc.port is not None
        carrier = SmppCarrier(
            name="acme",
            host="127.0.0.1",
            port=smsc.port,
            system_id="gateway",
            password=SecretStr(PASSWORD),
            response_timeout_seconds=0.5,
        )
        leasing = None
        if case.bind_held_elsewhere:
            store = BindSlotStore(runtime.database)
            assert await store.take("acme", 1, "another-worker", 3_600_000)
            leasing = BindLeasing(store, holder="this-worker", lease_seconds=LEASE)
        provider = SmppProvider(carrier, leasing=leasing)
        await provider.start(RecordingSink())
        try:
            if case.bound:
                assert await provider.wait_bound(WAIT)
            for n in range(case.warm_up):
                await provider.send(message(f"msg_warm_up_{n}", "+4915112345678", "hello"), RecordingGuard())
            submits_before = smsc.stats.submits
            guard = RecordingGuard()  # notes each submit_sm right before it is written
            with pytest.raises(SendError) as raised:
                await asyncio.wait_for(provider.send(message("msg_case", case.to, case.text), guard), WAIT)
            submits = smsc.stats.submits - submits_before
        finally:
            await provider.stop()

    error = raised.value
    assert (error.kind, error.code, error.retry_after) == (case.kind, case.code, case.retry_after)
    assert [part.part_no for part in error.accepted_parts] == list(range(1, case.parts_accepted + 1))
    assert (submits, len(guard.log)) == (case.submits, case.submits)
    assert error.provider == case.provider
    assert_no_secret_logged(caplog, [PASSWORD])
