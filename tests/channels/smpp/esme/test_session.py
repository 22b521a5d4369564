"""The asyncio ESME session: interoperability with an independent SMSC (PyPI ``smpp34``, Rust) and
behaviour against a scripted SMSC built here on our codec (it is the process edge, so a scripted peer
is fine). Every wait is bounded; timing asserts are lower bounds or generous windows."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from partner_gateway.channels.smpp.codec.constants import CommandId, CommandStatus, Tag
from partner_gateway.channels.smpp.codec.decoder import decode
from partner_gateway.channels.smpp.codec.encoder import encode
from partner_gateway.channels.smpp.codec.framing import PduReader
from partner_gateway.channels.smpp.codec.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from partner_gateway.channels.smpp.esme import (
    ConnectionLostAfterWrite,
    EsmeConfig,
    EsmeSession,
    InvalidSubmit,
    NotConnected,
    OutcomeUnknown,
    ResponseTimeout,
    SubmitRejected,
)
from partner_gateway.channels.smpp.esme.flow import RateLimiter, reconnect_delay

S = CommandStatus
PASSWORD = "s3cr3tpw"
WAIT = 5.0  # upper bound for anything that should happen "soon"


def fast_config(port: int, **overrides: Any) -> EsmeConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "gateway",
        "password": PASSWORD,
        "system_type": "GW",
        "window": 10,
        "enquire_link_interval": 30.0,
        "response_timeout": 1.0,
        "bind_timeout": 1.0,
        "reconnect_initial_delay": 0.05,
        "reconnect_max_delay": 0.2,
        "throttle_initial_delay": 0.3,
        "throttle_max_delay": 2.0,
        "submit_bind_wait": 2.0,
        "name": "test-smsc",
    }
    values.update(overrides)
    return EsmeConfig(**values)


def sms(destination: str = "31612345678", text: bytes = b"hello") -> SubmitSm:
    return SubmitSm(
        sequence_number=0,
        source_addr="Gateway",
        source_addr_ton=5,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=destination,
        registered_delivery=1,
        short_message=text,
    )


async def accept_all(pdu: DeliverSm) -> int:
    return S.ESME_ROK


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """STYLE habit 6: after every case, no log line carries the password."""
    caplog.set_level(logging.DEBUG, logger="partner_gateway")
    yield
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()


@pytest.fixture
async def sessions() -> AsyncIterator[list[EsmeSession]]:
    """Sessions made in a test are stopped at its end, even when it fails."""
    made: list[EsmeSession] = []
    yield made
    for session in made:
        await asyncio.wait_for(session.stop(grace=0.1), WAIT)


async def eventually(check: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------------------------
# A scripted SMSC on our codec.
# ------------------------------------------------------------------------------------------------
SubmitScript = Callable[["SmscConnection", SubmitSm], Awaitable[Pdu | None]]
_BIND_RESP: dict[int, type[BindTransceiverResp | BindTransmitterResp | BindReceiverResp]] = {
    CommandId.BIND_TRANSCEIVER: BindTransceiverResp,
    CommandId.BIND_TRANSMITTER: BindTransmitterResp,
    CommandId.BIND_RECEIVER: BindReceiverResp,
}


class SmscConnection:
    def __init__(self, smsc: ScriptedSmsc, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.smsc = smsc
        self.reader = reader
        self.writer = writer
        self.bind: BindTransceiver | BindTransmitter | BindReceiver | None = None
        self.inbox: asyncio.Queue[Pdu] = asyncio.Queue()
        self.log: list[tuple[float, Pdu]] = []
        self.pending: dict[int, asyncio.Future[Pdu]] = {}
        self.sequence = 1000
        self.closed = asyncio.Event()

    def send(self, pdu: Pdu) -> None:
        self.writer.write(encode(pdu))

    def write_raw(self, frame: bytes) -> None:
        self.writer.write(frame)

    def abort(self) -> None:
        self.writer.transport.abort()

    async def request(self, pdu: Pdu) -> Pdu:
        """Send an SMSC-originated request (deliver_sm, enquire_link, unbind); await its answer."""
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self.pending[pdu.sequence_number] = future
        self.send(pdu)
        return await asyncio.wait_for(future, WAIT)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    async def next_pdu(self, kind: type[Pdu] | None = None, within: float = WAIT) -> Pdu:
        async with asyncio.timeout(within):
            while True:
                pdu = await self.inbox.get()
                if kind is None or isinstance(pdu, kind):
                    return pdu

    def received(self, kind: type[Pdu]) -> list[Pdu]:
        return [pdu for _, pdu in self.log if isinstance(pdu, kind)]


class ScriptedSmsc:
    """Answers binds (``bind_statuses`` first, then ESME_ROK), submits (``on_submit``), enquire_link
    (unless ``answer_enquire_link`` is False) and unbind; records every PDU with its arrival time."""

    def __init__(self) -> None:
        self.bind_statuses: list[int] = []
        self.answer_enquire_link = True
        self.on_submit: SubmitScript = self.accept
        self.connections: list[SmscConnection] = []
        self.binds: asyncio.Queue[SmscConnection] = asyncio.Queue()
        self.bind_times: list[float] = []
        self.message_ids = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def accept(self, conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        self.message_ids += 1
        return SubmitSmResp(sequence_number=pdu.sequence_number, message_id=f"msg-{self.message_ids}")

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.connections:
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=WAIT)
        await asyncio.wait_for(self._server.wait_closed(), WAIT)

    async def next_bind(self, within: float = WAIT) -> SmscConnection:
        return await asyncio.wait_for(self.binds.get(), within)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = SmscConnection(self, reader, writer)
        self.connections.append(conn)
        frames = PduReader()
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(65536):
                for frame in frames.feed(data):
                    pdu = decode(frame)
                    conn.log.append((loop.time(), pdu))
                    conn.inbox.put_nowait(pdu)
                    if not self._handle(conn, pdu):
                        return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conn.closed.set()
            writer.close()

    def _handle(self, conn: SmscConnection, pdu: Pdu) -> bool:
        """React to one PDU; False closes the connection."""
        if isinstance(pdu, BindTransceiver | BindTransmitter | BindReceiver):
            status = self.bind_statuses.pop(0) if self.bind_statuses else S.ESME_ROK
            self.bind_times.append(asyncio.get_running_loop().time())
            conn.send(
                _BIND_RESP[pdu.command_id](
                    sequence_number=pdu.sequence_number, command_status=status, system_id="SIM"
                )
            )
            if status != S.ESME_ROK:
                return False
            conn.bind = pdu
            self.binds.put_nowait(conn)
        elif isinstance(pdu, SubmitSm):
            self._spawn(self._answer_submit(conn, pdu))
        elif isinstance(pdu, EnquireLink):
            if self.answer_enquire_link:
                conn.send(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, Unbind):
            conn.send(UnbindResp(sequence_number=pdu.sequence_number))
            return False
        elif pdu.command_id & 0x80000000:
            future = conn.pending.pop(pdu.sequence_number, None)
            if future is not None and not future.done():
                future.set_result(pdu)
        return True

    async def _answer_submit(self, conn: SmscConnection, pdu: SubmitSm) -> None:
        response = await self.on_submit(conn, pdu)
        if response is not None and not conn.writer.is_closing():
            conn.log.append((asyncio.get_running_loop().time(), response))
            conn.send(response)


@pytest.fixture
async def smsc() -> AsyncIterator[ScriptedSmsc]:
    server = ScriptedSmsc()
    await server.start()
    yield server
    await server.close()


async def bound_session(
    smsc: ScriptedSmsc,
    sessions: list[EsmeSession],
    on_deliver: Callable[[DeliverSm], Awaitable[int]] = accept_all,
    **overrides: Any,
) -> tuple[EsmeSession, SmscConnection]:
    session = EsmeSession(fast_config(smsc.port, **overrides), on_deliver)
    sessions.append(session)
    await session.start()
    conn = await smsc.next_bind()
    assert await session.wait_bound(WAIT)
    return session, conn


# ------------------------------------------------------------------------------------------------
# Configuration and pacing helpers
# ------------------------------------------------------------------------------------------------
def test_config_hides_the_password_and_rejects_what_cannot_bind() -> None:
    config = fast_config(2775)
    assert PASSWORD not in repr(config)
    assert config.name == "test-smsc"
    assert fast_config(2775, name="").name == "gateway@127.0.0.1:2775"
    with pytest.raises(ValueError, match="password") as info:
        fast_config(2775, password="far-too-long-password")
    assert "far-too-long" not in str(info.value)
    for bad in ({"window": 0}, {"throughput_per_second": 0.0}, {"response_timeout": 0}, {"bind_mode": "rx"}):
        with pytest.raises(ValueError):  # noqa: PT011 - several messages
            fast_config(2775, **bad)


def test_rate_limiter_schedule_and_backoff_bounds() -> None:
    now = [0.0]
    limiter = RateLimiter(10.0, burst=2, clock=lambda: now[0])
    assert [round(limiter.reserve(), 3) for _ in range(4)] == [0.0, 0.0, 0.1, 0.2]
    now[0] = 10.0  # idle for a long time: the burst is available again, no more
    assert [round(limiter.reserve(), 3) for _ in range(3)] == [0.0, 0.0, 0.1]
    for attempt in range(12):
        delay = reconnect_delay(attempt, 0.5, 8.0)
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling


# ------------------------------------------------------------------------------------------------
# Interoperability: smpp34 (Rust SMSC, PyPI) as the peer
# ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Smpp34Smsc:
    """smpp34.Server with a pump task: records bound sessions and submits, answers submits."""

    def __init__(self) -> None:
        import smpp34

        self.smpp34 = smpp34
        self.port = free_port()
        self.server = smpp34.Server(host="127.0.0.1", port=self.port, system_id="RUSTSMSC")
        self.esmes: asyncio.Queue[Any] = asyncio.Queue()
        self.unbound: asyncio.Queue[str] = asyncio.Queue()
        self.submits: list[Any] = []
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        self._pump = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, self.smpp34.Esme):
                self.esmes.put_nowait(event)
            elif isinstance(event, self.smpp34.Unbound):
                self.unbound.put_nowait(event.session_id)
            elif isinstance(event, self.smpp34.SubmitSmEvent):
                self.submits.append(event)
                if event.destination_addr.startswith("999"):
                    event.reject(int(S.ESME_RINVDSTADR))
                else:
                    event.accept(message_id=f"rust-{len(self.submits)}")

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.wait([self._pump])
        await self.server.stop()


@pytest.fixture
async def rust_smsc() -> AsyncIterator[Smpp34Smsc]:
    import smpp34  # noqa: F401 - a dev dependency: missing, this fails rather than skips

    server = Smpp34Smsc()
    await server.start()
    yield server
    await server.stop()


async def test_smpp34_transceiver_bind_submit_deliver_enquire_link_unbind(
    rust_smsc: Smpp34Smsc, sessions: list[EsmeSession]
) -> None:
    smpp34 = rust_smsc.smpp34
    delivered: list[DeliverSm] = []

    async def on_deliver(pdu: DeliverSm) -> int:
        delivered.append(pdu)
        return S.ESME_ROK if len(delivered) == 1 else S.ESME_RX_T_APPN

    session = EsmeSession(fast_config(rust_smsc.port, enquire_link_interval=0.1), on_deliver)
    sessions.append(session)
    await session.start()
    assert await session.wait_bound(WAIT)
    esme = await asyncio.wait_for(rust_smsc.esmes.get(), WAIT)
    assert esme.system_id == "gateway"
    assert esme.can_receive

    # submit: several at once within the window, one rejected by the SMSC
    responses = await asyncio.gather(
        *(session.submit(sms(f"3161234{i:04d}", b"hi %d" % i)) for i in range(12))
    )
    assert sorted(r.message_id for r in responses) == sorted(f"rust-{i}" for i in range(1, 13))
    got = {
        (e.destination_addr, e.short_message, e.dest_addr_ton, e.registered_delivery)
        for e in rust_smsc.submits
    }
    assert ("31612340003", b"hi 3", 1, 1) in got
    with pytest.raises(SubmitRejected) as rejected:
        await session.submit(sms("99912345"))
    assert rejected.value.command_status == S.ESME_RINVDSTADR
    assert not rejected.value.transient

    # deliver_sm from the SMSC, a receipt with TLVs; smpp34 reports the status our handler chose
    receipt = b"id:rust-1 sub:001 dlvrd:001 submit date:2611270400 done date:2611270401 stat:DELIVRD err:000"
    tlvs = [
        smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, b"rust-1\0"),
        smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, b"\x02"),
    ]
    resp = await asyncio.wait_for(
        asyncio.ensure_future(
            esme.deliver_sm("Gateway", receipt, source_addr="31612340000", esm_class=0x04, tlvs=tlvs)
        ),
        WAIT,
    )
    assert resp.command_status == S.ESME_ROK
    assert delivered[0].short_message == receipt
    assert delivered[0].receipted_message_id == "rust-1"
    assert delivered[0].message_state == 2
    second = await asyncio.wait_for(asyncio.ensure_future(esme.deliver_sm("Gateway", b"mo")), WAIT)
    assert second.command_status == S.ESME_RX_T_APPN  # the handler's answer, as the SMSC saw it

    # enquire_link: ours are answered by smpp34 and the link stays up
    await eventually(lambda: session.counters.enquire_links_sent >= 3)
    assert session.counters.enquire_link_timeouts == 0
    assert session.is_bound
    assert session.counters.reconnects == 0

    # unbind: smpp34 ends the session (it closes without writing unbind_resp: our wait is bounded)
    await asyncio.wait_for(session.stop(), WAIT)
    assert await asyncio.wait_for(rust_smsc.unbound.get(), WAIT) == esme.session_id
    with pytest.raises(NotConnected):
        await session.submit(sms())


async def test_smpp34_transmitter_receiver_pair(rust_smsc: Smpp34Smsc, sessions: list[EsmeSession]) -> None:
    delivered: list[DeliverSm] = []

    async def on_deliver(pdu: DeliverSm) -> int:
        delivered.append(pdu)
        return S.ESME_ROK

    session = EsmeSession(fast_config(rust_smsc.port, bind_mode="transmitter_receiver"), on_deliver)
    sessions.append(session)
    await session.start()
    assert await session.wait_bound(WAIT)
    esmes = [await asyncio.wait_for(rust_smsc.esmes.get(), WAIT) for _ in range(2)]
    assert sorted(e.can_receive for e in esmes) == [False, True]
    assert (await session.submit(sms())).message_id == "rust-1"
    receiver = next(e for e in esmes if e.can_receive)
    # smpp34 1.5.0 matches deliver_sm_resp only on TX/TRX sessions, so its deliver_sm future never
    # completes on a receiver bind: check our side (handler ran, deliver_sm_resp sent) instead.
    pending = asyncio.ensure_future(receiver.deliver_sm("Gateway", b"id:rust-1 stat:DELIVRD", esm_class=0x04))
    try:
        await eventually(lambda: session.counters.deliver_sm_responses[S.ESME_ROK] == 1)
    finally:
        pending.cancel()
    assert delivered[0].short_message == b"id:rust-1 stat:DELIVRD"


async def test_smpp34_smsc_initiated_unbind_then_rebind(
    rust_smsc: Smpp34Smsc, sessions: list[EsmeSession]
) -> None:
    session = EsmeSession(fast_config(rust_smsc.port), accept_all)
    sessions.append(session)
    await session.start()
    first = await asyncio.wait_for(rust_smsc.esmes.get(), WAIT)
    await asyncio.wait_for(asyncio.ensure_future(first.unbind()), WAIT)
    second = await asyncio.wait_for(rust_smsc.esmes.get(), WAIT)
    assert second.session_id != first.session_id
    assert await session.wait_bound(WAIT)
    assert (await session.submit(sms())).message_id.startswith("rust-")
    assert session.counters.binds == 2


# ------------------------------------------------------------------------------------------------
# Behaviour against the scripted SMSC
# ------------------------------------------------------------------------------------------------
async def test_window_is_hard(smsc: ScriptedSmsc, sessions: list[EsmeSession]) -> None:
    outstanding = 0
    peak = 0

    async def slow(conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        nonlocal outstanding, peak
        outstanding += 1
        peak = max(peak, outstanding)
        await asyncio.sleep(0.05)
        outstanding -= 1
        return await smsc.accept(conn, pdu)

    smsc.on_submit = slow
    session, _ = await bound_session(smsc, sessions, window=3)
    responses = await asyncio.wait_for(
        asyncio.gather(*(session.submit(sms(f"316{i:08d}")) for i in range(15))), WAIT
    )
    assert len({r.message_id for r in responses}) == 15
    assert peak == 3  # the window was used, never exceeded
    assert session.outstanding == 0


async def test_throughput_limit_holds_roughly(smsc: ScriptedSmsc, sessions: list[EsmeSession]) -> None:
    session, conn = await bound_session(smsc, sessions, throughput_per_second=20.0, window=50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(asyncio.gather(*(session.submit(sms()) for _ in range(30))), WAIT)
    elapsed = loop.time() - started
    times = [t for t, pdu in conn.log if isinstance(pdu, SubmitSm)]
    assert len(times) == 30
    assert elapsed >= 1.2  # 30 at 20/s with a burst of 1: ~1.45 s
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest <= 23  # 20/s plus a generous margin for timer jitter


@pytest.mark.parametrize("status", [S.ESME_RTHROTTLED, S.ESME_RMSGQFUL])
async def test_throttling_is_transient_and_pauses_new_submits(
    smsc: ScriptedSmsc, sessions: list[EsmeSession], status: int
) -> None:
    answers = [status, status, S.ESME_ROK, status, S.ESME_ROK]

    async def script(conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        return SubmitSmResp(
            sequence_number=pdu.sequence_number, command_status=answers.pop(0), message_id="m"
        )

    smsc.on_submit = script
    session, conn = await bound_session(smsc, sessions, throttle_initial_delay=0.2, throttle_max_delay=1.0)
    for _ in range(2):
        with pytest.raises(SubmitRejected) as info:
            await session.submit(sms())
        assert info.value.transient
        assert info.value.throttled
        assert info.value.command_status == status
    await session.submit(sms())
    with pytest.raises(SubmitRejected):
        await session.submit(sms())
    await session.submit(sms())
    times = [t for t, pdu in conn.log if isinstance(pdu, SubmitSm)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.19  # first pause
    assert gaps[1] >= 0.39  # repeated throttling doubles the pause
    assert gaps[2] < 0.6  # no pause after a success (a pause would now be 0.8 s)
    assert 0.19 <= gaps[3] < 0.7  # the success reset the pause to 0.2 s (not 0.8 s)
    assert session.counters.throttle_pauses == 3
    assert session.counters.submit_responses[status] == 3


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (S.ESME_RSYSERR, True),
        (S.ESME_RX_T_APPN, True),
        (S.ESME_RINVDSTADR, False),
        (S.ESME_RINVSRCADR, False),
        (S.ESME_RSUBMITFAIL, False),
        (0x00000401, False),  # vendor specific
    ],
)
async def test_submit_rejections_are_classified(
    smsc: ScriptedSmsc, sessions: list[EsmeSession], status: int, transient: bool
) -> None:
    async def script(conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        return SubmitSmResp(sequence_number=pdu.sequence_number, command_status=status)

    smsc.on_submit = script
    session, _ = await bound_session(smsc, sessions)
    with pytest.raises(SubmitRejected) as info:
        await session.submit(sms())
    assert (info.value.command_status, info.value.transient, info.value.generic_nack) == (
        status,
        transient,
        False,
    )
    assert session.counters.throttle_pauses == 0


async def test_generic_nack_for_a_submit_is_transient_and_keeps_the_link(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    async def script(conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        return GenericNack(sequence_number=pdu.sequence_number, command_status=S.ESME_RINVCMDLEN)

    smsc.on_submit = script
    session, _ = await bound_session(smsc, sessions)
    with pytest.raises(SubmitRejected) as info:
        await session.submit(sms())
    assert info.value.transient
    assert info.value.generic_nack
    assert info.value.command_status == S.ESME_RINVCMDLEN
    assert session.is_bound
    assert session.counters.submit_generic_nacks == 1
    assert len(smsc.connections) == 1


async def test_unmatched_generic_nack_means_framing_trouble_reconnect(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    session, conn = await bound_session(smsc, sessions)
    conn.send(GenericNack(sequence_number=424242, command_status=S.ESME_RINVCMDLEN))
    again = await smsc.next_bind()
    assert again is not conn
    assert await session.wait_bound(WAIT)
    assert (await session.submit(sms())).message_id


async def test_no_answer_is_response_timeout_an_unknown_outcome(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    answer = False

    async def script(conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        if answer:
            return await smsc.accept(conn, pdu)
        return None

    smsc.on_submit = script
    session, conn = await bound_session(smsc, sessions, window=1, response_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ResponseTimeout) as info:
        await session.submit(sms())
    assert loop.time() - started >= 0.29
    assert isinstance(info.value, OutcomeUnknown)
    assert info.value.reason == "timeout"
    lost_seq = info.value.sequence_number
    # the slot came back (window=1) and the link is still used
    answer = True
    assert (await session.submit(sms())).message_id
    # a late answer to the timed-out submit is logged and counted, nothing else
    conn.send(SubmitSmResp(sequence_number=lost_seq, message_id="late"))
    await eventually(lambda: session.counters.unexpected_pdus == 1)
    assert session.is_bound
    assert session.counters.submit_timeouts == 1


async def test_connection_dropped_after_write_is_unknown_then_reconnect(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    received = 0

    async def script(conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        nonlocal received
        received += 1
        if received == 3:
            conn.abort()
        return None

    smsc.on_submit = script
    session, first = await bound_session(smsc, sessions)
    results = await asyncio.wait_for(
        asyncio.gather(*(session.submit(sms()) for _ in range(3)), return_exceptions=True), WAIT
    )
    assert all(isinstance(r, ConnectionLostAfterWrite) for r in results), results
    assert {r.reason for r in results if isinstance(r, OutcomeUnknown)} == {"connection_lost"}
    smsc.on_submit = smsc.accept
    second = await smsc.next_bind()
    assert second is not first
    assert await session.wait_bound(WAIT)
    assert (await session.submit(sms())).message_id
    assert session.counters.reconnects >= 1
    assert session.counters.submit_connection_lost == 3


async def test_bind_rejected_is_retried_with_backoff_and_logged_without_the_password(
    smsc: ScriptedSmsc, sessions: list[EsmeSession], caplog: pytest.LogCaptureFixture
) -> None:
    smsc.bind_statuses = [S.ESME_RINVPASWD, S.ESME_RBINDFAIL, S.ESME_RINVSYSID]
    session, conn = await bound_session(smsc, sessions, reconnect_initial_delay=0.1, reconnect_max_delay=1.0)
    assert isinstance(conn.bind, BindTransceiver)
    assert (conn.bind.system_id, conn.bind.password, conn.bind.system_type) == ("gateway", PASSWORD, "GW")
    assert conn.bind.interface_version == 0x34
    t = smsc.bind_times
    assert len(t) == 4
    assert t[1] - t[0] >= 0.05  # equal jitter: at least half of 0.1
    assert t[2] - t[1] >= 0.1  # at least half of 0.2
    assert t[3] - t[2] >= 0.2  # at least half of 0.4
    assert session.counters.bind_failures == 3
    assert session.counters.binds == 1
    messages = [r.getMessage() for r in caplog.records]
    for name in ("ESME_RINVPASWD", "ESME_RBINDFAIL", "ESME_RINVSYSID"):
        assert any("bind rejected" in m and name in m for m in messages), messages


async def test_submit_while_not_bound_is_not_connected_and_nothing_is_written(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    smsc.bind_statuses = [S.ESME_RBINDFAIL] * 1000
    session = EsmeSession(fast_config(smsc.port, submit_bind_wait=0.2), accept_all)
    sessions.append(session)
    with pytest.raises(NotConnected):
        await session.submit(sms())  # not started
    await session.start()
    with pytest.raises(NotConnected):
        await session.submit(sms())
    assert not session.is_bound
    counters = session.counters.snapshot()
    assert counters.submit_not_connected == 2
    assert counters.bind_failures >= 1
    assert counters.binds == 0
    # stop() releases at once a submit that waits (here up to 30 s) for the bind
    patient = EsmeSession(fast_config(smsc.port, submit_bind_wait=30.0), accept_all)
    sessions.append(patient)
    await patient.start()
    waiting = asyncio.ensure_future(patient.submit(sms()))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await asyncio.wait_for(patient.stop(), WAIT)
    with pytest.raises(NotConnected):
        await asyncio.wait_for(waiting, 0.5)
    assert not any(conn.received(SubmitSm) for conn in smsc.connections)


async def test_invalid_submit_is_refused_before_writing(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    session, conn = await bound_session(smsc, sessions)
    with pytest.raises(InvalidSubmit) as info:
        await session.submit(sms(destination="3" * 30))
    assert isinstance(info.value, SubmitRejected)
    assert not info.value.transient
    assert info.value.command_status == S.ESME_RINVDSTADR
    assert not conn.received(SubmitSm)


async def test_deliver_sm_is_acknowledged_only_after_the_handler_returns(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    release = asyncio.Event()
    seen: list[DeliverSm] = []

    async def store_then_ack(pdu: DeliverSm) -> int:
        seen.append(pdu)
        await release.wait()
        return S.ESME_ROK

    session, conn = await bound_session(smsc, sessions, on_deliver=store_then_ack)
    receipt = DeliverSm(
        sequence_number=conn.next_sequence(),
        esm_class=0x04,
        source_addr="31612345678",
        destination_addr="Gateway",
        short_message=b"id:msg-1 stat:DELIVRD err:000",
        receipted_message_id="msg-1",
        message_state=2,
    )
    answer = asyncio.ensure_future(conn.request(receipt))
    await eventually(lambda: len(seen) == 1)
    # the handler is running: no deliver_sm_resp yet, and the socket is still read (a submit works)
    assert (await session.submit(sms())).message_id
    await asyncio.sleep(0.2)
    assert not answer.done()
    assert not conn.received(DeliverSmResp)
    release.set()
    response = await asyncio.wait_for(answer, WAIT)
    assert isinstance(response, DeliverSmResp)
    assert response.command_status == S.ESME_ROK
    assert seen[0].receipted_message_id == "msg-1"


async def test_handler_failure_answers_rx_t_appn(smsc: ScriptedSmsc, sessions: list[EsmeSession]) -> None:
    async def broken(pdu: DeliverSm) -> int:
        raise RuntimeError("database down")

    async def slow(pdu: DeliverSm) -> int:
        await asyncio.sleep(10)
        return S.ESME_ROK

    for handler, overrides in ((broken, {}), (slow, {"deliver_timeout": 0.2})):
        smsc.binds = asyncio.Queue()
        session, conn = await bound_session(smsc, sessions, on_deliver=handler, **overrides)
        response = await conn.request(DeliverSm(sequence_number=conn.next_sequence(), short_message=b"x"))
        assert response.command_status == S.ESME_RX_T_APPN
        assert session.counters.deliver_sm_responses[S.ESME_RX_T_APPN] == 1
        await session.stop()


async def test_deliver_sm_concurrency_is_bounded(smsc: ScriptedSmsc, sessions: list[EsmeSession]) -> None:
    running = 0
    peak = 0
    release = asyncio.Event()

    async def handler(pdu: DeliverSm) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return S.ESME_ROK

    session, conn = await bound_session(smsc, sessions, on_deliver=handler, deliver_concurrency=2)
    answers = [
        asyncio.ensure_future(
            conn.request(DeliverSm(sequence_number=conn.next_sequence(), short_message=b"%d" % i))
        )
        for i in range(6)
    ]
    await eventually(lambda: running == 2)
    await asyncio.sleep(0.1)
    assert peak == 2
    release.set()
    responses = await asyncio.wait_for(asyncio.gather(*answers), WAIT)
    assert [r.command_status for r in responses] == [S.ESME_ROK] * 6
    assert peak == 2
    assert session.counters.deliver_sm_received == 6


async def test_enquire_link_is_sent_periodically_and_answered(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    session, conn = await bound_session(smsc, sessions, enquire_link_interval=0.1)
    await eventually(lambda: len(conn.received(EnquireLink)) >= 4)
    assert session.is_bound
    assert session.counters.enquire_link_timeouts == 0
    assert len(smsc.connections) == 1
    # the SMSC's own enquire_link is answered with the same sequence_number
    response = await conn.request(EnquireLink(sequence_number=conn.next_sequence()))
    assert isinstance(response, EnquireLinkResp)
    assert response.command_status == S.ESME_ROK
    assert session.counters.enquire_links_received == 1


async def test_unanswered_enquire_link_means_a_dead_link_reconnect(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    smsc.answer_enquire_link = False
    session, first = await bound_session(smsc, sessions, enquire_link_interval=0.1, response_timeout=0.2)
    second = await smsc.next_bind()
    assert second is not first
    assert session.counters.enquire_link_timeouts >= 1
    await asyncio.wait_for(first.closed.wait(), WAIT)


async def test_smsc_initiated_unbind_is_answered_then_reconnect(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    session, first = await bound_session(smsc, sessions)
    response = await first.request(Unbind(sequence_number=first.next_sequence()))
    assert isinstance(response, UnbindResp)
    second = await smsc.next_bind()
    assert second is not first
    assert await session.wait_bound(WAIT)
    assert (await session.submit(sms())).message_id
    assert session.counters.reconnects == 1


async def test_stop_waits_for_outstanding_then_unbinds(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    async def slow(conn: SmscConnection, pdu: SubmitSm) -> Pdu | None:
        await asyncio.sleep(0.2)
        return await smsc.accept(conn, pdu)

    smsc.on_submit = slow
    session, conn = await bound_session(smsc, sessions)
    in_flight = asyncio.ensure_future(session.submit(sms()))
    await eventually(lambda: bool(conn.received(SubmitSm)))
    await asyncio.wait_for(session.stop(), WAIT)
    assert (await in_flight).message_id == "msg-1"
    kinds = [type(pdu) for _, pdu in conn.log]
    assert kinds.index(SubmitSmResp) < kinds.index(Unbind)  # answered before the unbind went out
    assert not session.is_bound
    with pytest.raises(NotConnected):
        await session.submit(sms())
    await asyncio.wait_for(conn.closed.wait(), WAIT)
    await asyncio.sleep(0.1)
    assert len(smsc.connections) == 1  # no reconnect after stop


async def test_unparsable_pdus_are_answered(smsc: ScriptedSmsc, sessions: list[EsmeSession]) -> None:
    session, conn = await bound_session(smsc, sessions)
    # unknown command_id -> generic_nack ESME_RINVCMDID with the same sequence_number
    conn.write_raw(struct.pack(">IIII", 16, 0x00000099, 0, 77))
    nack = await conn.next_pdu(GenericNack)
    assert (nack.sequence_number, nack.command_status) == (77, S.ESME_RINVCMDID)
    # a deliver_sm whose body is broken -> deliver_sm_resp carrying the codec's status
    good = encode(DeliverSm(sequence_number=78, source_addr="1234", short_message=b"x" * 40))
    header, body = good[:16], bytearray(good[16:])
    body[1 + 2 : 1 + 2 + 5] = b"X" * 5  # source_addr loses its NUL: no terminator within 21 octets
    body[1 + 2 + 5 : 1 + 2 + 5 + 20] = b"Y" * 20
    conn.write_raw(header + bytes(body))
    resp = await conn.next_pdu(DeliverSmResp)
    assert resp.sequence_number == 78
    assert resp.command_status == S.ESME_RINVSRCADR
    # a deliver_sm with a broken TLV
    tlv_broken = encode(DeliverSm(sequence_number=79, short_message=b"x")) + struct.pack(
        ">HH", Tag.MESSAGE_STATE, 9
    )
    conn.write_raw(struct.pack(">I", len(tlv_broken)) + tlv_broken[4:])
    resp = await conn.next_pdu(DeliverSmResp)
    assert (resp.sequence_number, resp.command_status) == (79, S.ESME_RINVOPTPARSTREAM)
    assert session.is_bound
    assert len(smsc.connections) == 1


async def test_garbage_length_breaks_framing_and_reconnects(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    session, first = await bound_session(smsc, sessions)
    first.write_raw(struct.pack(">IIII", 8, 0x00000005, 0, 5))  # command_length below the header size
    nack = await first.next_pdu(GenericNack)
    assert nack.command_status == S.ESME_RINVCMDLEN
    second = await smsc.next_bind()
    assert second is not first
    assert await session.wait_bound(WAIT)


async def test_transmitter_receiver_mode_uses_two_binds(
    smsc: ScriptedSmsc, sessions: list[EsmeSession]
) -> None:
    seen: list[DeliverSm] = []

    async def handler(pdu: DeliverSm) -> int:
        seen.append(pdu)
        return S.ESME_ROK

    session = EsmeSession(fast_config(smsc.port, bind_mode="transmitter_receiver"), handler)
    sessions.append(session)
    await session.start()
    binds = {type((await smsc.next_bind()).bind) for _ in range(2)}
    assert binds == {BindTransmitter, BindReceiver}
    assert await session.wait_bound(WAIT)
    tx = next(c for c in smsc.connections if isinstance(c.bind, BindTransmitter))
    rx = next(c for c in smsc.connections if isinstance(c.bind, BindReceiver))
    assert (await session.submit(sms())).message_id
    assert tx.received(SubmitSm)
    assert not rx.received(SubmitSm)
    response = await rx.request(DeliverSm(sequence_number=rx.next_sequence(), short_message=b"mo"))
    assert response.command_status == S.ESME_ROK
    assert seen[0].short_message == b"mo"
    # losing the receiver does not stop submits; it comes back by itself
    rx.abort()
    assert (await session.submit(sms())).message_id
    again = await smsc.next_bind()
    assert isinstance(again.bind, BindReceiver)
    assert await session.wait_bound(WAIT)
