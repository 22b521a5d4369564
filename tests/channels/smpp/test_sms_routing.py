"""SMS routing across several carriers, end to end in one process: the partner API, the real
pipeline on the real store, and two or three SMSC simulators over real SMPP.

Every message's text is unique, so what each simulator counted by (destination, content) says
which carrier took it; the message's own timeline must say the same.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from channels.harness import RecordingGuard, RecordingSink
from partner_gateway.api.app import create_app
from partner_gateway.channels.base import OutboundMessage, SendError
from partner_gateway.channels.entry import ProviderContext
from partner_gateway.channels.smpp.channel import SMS
from partner_gateway.channels.smpp.routed import RoutedSmsProvider
from partner_gateway.channels.smpp.settings import SmppCarrier, SmsRoute
from partner_gateway.config import Settings
from partner_gateway.domain.routing import Health
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.process import Pipeline, start_pipeline
from partner_gateway.runtime import Runtime
from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from partner_gateway.store.repositories import bind_slots, carrier_stats, delivery
from partner_gateway.store.repositories.carrier_stats import CarrierSample, read_all
from partner_gateway.store.repositories.delivery import PartRecord
from partner_gateway.store.tables import message_events, messages, metadata
from support import BASE, make_partner


def number(n: int) -> str:
    """The n-th of distinct German mobile numbers ending 00-89: the simulator delivers those."""
    return f"+4915112{n // 90:04d}{n % 90:02d}"


@dataclass
class Routed:
    runtime: Runtime
    pipeline: Pipeline
    http: httpx.AsyncClient
    smscs: dict[str, SmscSimulator]

    async def send(self, to: str, body: str, sender: str | None = None) -> str:
        payload: dict[str, str] = {"to": to, "text": body}
        if sender is not None:
            payload["from"] = sender
        response = await self.http.post(f"{BASE}/sms/messages", json=payload)
        assert response.status_code == 202, response.text
        return str(response.json()["customerMessageId"])

    async def send_many(self, bodies: Sequence[tuple[str, str]]) -> dict[str, str]:
        """(destination, text) each; returns message id -> text."""
        ids: dict[str, str] = {}
        for start in range(0, len(bodies), 50):
            chunk = bodies[start : start + 50]
            sent = await asyncio.gather(*(self.send(to, body) for to, body in chunk))
            ids.update(zip(sent, (body for _, body in chunk), strict=True))
        return ids

    async def statuses(self) -> dict[str, tuple[str, str | None, str]]:
        async with self.runtime.database.read() as connection:
            rows = await connection.execute(
                select(messages.c.id, messages.c.status, messages.c.error_code, messages.c.status_description)
            )
            return {row.id: (row.status, row.error_code, row.status_description) for row in rows}

    async def wait_until(self, done: set[str], ids: Sequence[str], within: float = 120) -> None:
        deadline = time.monotonic() + within
        while True:
            current = await self.statuses()
            if all(current[i][0] in done for i in ids):
                return
            if time.monotonic() > deadline:
                left = Counter(current[i][0] for i in ids)
                raise AssertionError(f"not all messages reached {done}: {left}")
            await asyncio.sleep(0.1)

    async def sent_by(self) -> dict[str, str]:
        """Each message's carrier, as its timeline's SENT entry names it."""
        async with self.runtime.database.read() as connection:
            rows = await connection.execute(
                select(
                    message_events.c.message_id, message_events.c.source, message_events.c.description
                ).where(message_events.c.status == "SENT")
            )
            taken: dict[str, str] = {}
            for row in rows:
                assert row.message_id not in taken, f"{row.message_id} was accepted twice"
                taken[row.message_id] = row.source.removeprefix("smpp:")
            return taken

    def carrier_of(self, body: str) -> list[str]:
        """The simulators that accepted a submit with this text (each counted once per content)."""
        return [
            name
            for name, smsc in self.smscs.items()
            if any(content == body.encode() for (_to, content) in smsc.stats.submits_by_content)
        ]


async def _empty_postgres(runtime: Runtime) -> None:
    if runtime.database.dialect == "postgresql":
        async with runtime.database.write() as connection:
            names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "instance_secrets")
            await connection.execute(text(f"TRUNCATE {names}"))


@pytest.fixture
def carriers() -> dict[str, dict[str, object]]:
    """Per carrier name: its SmppCarrier overrides (a test changes them before `routed`)."""
    return {"a": {}, "b": {}}


@pytest.fixture
def routes() -> list[SmsRoute]:
    return [SmsRoute(failover=["a", "b"])]


@pytest.fixture
def extra() -> dict[str, object]:
    """More settings for one test."""
    return {}


@pytest.fixture
async def routed(
    settings: Settings,
    carriers: dict[str, dict[str, object]],
    routes: list[SmsRoute],
    extra: dict[str, object],
) -> AsyncIterator[Routed]:
    smscs: dict[str, SmscSimulator] = {}
    configured: list[SmppCarrier] = []
    for name, overrides in carriers.items():
        simulator_options = dict(overrides.pop("smsc", {}))  # type: ignore[call-overload]
        smsc = SmscSimulator(
            SmscConfig(
                port=0,
                system_id=f"sys-{name}",
                password="pw",
                receipt_delay_min_seconds=0.01,
                receipt_delay_max_seconds=0.05,
                **simulator_options,
            )
        )
        port = await smsc.start()
        smscs[name] = smsc
        values: dict[str, object] = {
            "name": name,
            "host": "127.0.0.1",
            "port": port,
            "system_id": f"sys-{name}",
            "password": SecretStr("pw"),
            "window": 20,
            "enquire_link_seconds": 30,
        }
        configured.append(SmppCarrier.model_validate(values | overrides))
    test_settings = Settings.model_validate(
        settings.model_dump()
        | {
            "smpp_carriers": configured,
            "sms_routes": routes,
            "rate_limit_enabled": False,
            "dispatch_poll_seconds": 0.02,
            "retry_max_delay_seconds": 1,
            "callback_allow_private_networks": True,
        }
        | extra
    )
    runtime = await Runtime.start(test_settings)
    await _empty_postgres(runtime)
    pipeline = await start_pipeline(test_settings, runtime)
    try:
        partner = await make_partner(runtime)
        app = create_app(test_settings, runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", headers=partner.headers
        ) as http:
            provider = pipeline.providers[next(iter(pipeline.providers))]
            assert await getattr(provider, "wait_bound")(10)  # noqa: B009 - the routing provider's
            yield Routed(runtime, pipeline, http, smscs)
    finally:
        await pipeline.stop()
        await runtime.close()
        for smsc in smscs.values():
            await smsc.stop()


@pytest.mark.parametrize(
    "routes",
    [[SmsRoute(prefix="44", carrier="a"), SmsRoute(prefix="4479", carrier="b"), SmsRoute(carrier="c")]],
)
@pytest.mark.parametrize("carriers", [{"a": {}, "b": {}, "c": {}}])
async def test_messages_go_to_the_carrier_of_their_longest_prefix(routed: Routed) -> None:
    bodies = [("+442079460123", "uk landline"), ("+447911123456", "uk 4479"), ("+33612345678", "france")]
    bodies += [("+442079460124", "uk again"), ("+4915112345678", "germany")]
    ids = await routed.send_many(bodies)
    await routed.wait_until({"DELIVERED"}, list(ids))
    expected = {"uk landline": "a", "uk 4479": "b", "france": "c", "uk again": "a", "germany": "c"}
    taken = await routed.sent_by()
    for message_id, body in ids.items():
        assert routed.carrier_of(body) == [expected[body]], body
        assert taken[message_id] == expected[body]
    assert [smsc.stats.submits for smsc in routed.smscs.values()] == [2, 1, 2]


@pytest.mark.parametrize("routes", [[SmsRoute(split={"a": 70, "b": 30})]])
async def test_a_weighted_split_holds_over_a_thousand_messages(routed: Routed) -> None:
    ids = await routed.send_many([(number(n), f"split {n}") for n in range(1000)])
    await routed.wait_until({"DELIVERED"}, list(ids))
    a, b = routed.smscs["a"].stats, routed.smscs["b"].stats
    assert a.submits_accepted + b.submits_accepted == 1000
    assert a.duplicates == b.duplicates == 0
    # Each message's carrier comes from a hash of its (random) id: 70 % within five points.
    assert 0.65 <= a.submits_accepted / 1000 <= 0.75, (a.submits_accepted, b.submits_accepted)
    taken = await routed.sent_by()
    assert Counter(taken.values()) == {"a": a.submits_accepted, "b": b.submits_accepted}
    for message_id, body in list(ids.items())[:100]:
        assert routed.carrier_of(body) == [taken[message_id]]


@pytest.mark.parametrize("carriers", [{"a": {"window": 1}, "b": {}}])
async def test_when_a_carriers_bind_drops_mid_run_its_work_fails_over_without_loss_or_duplicates(
    routed: Routed,
) -> None:
    a = routed.smscs["a"]
    # The 60th submit is answered, then carrier a hangs up and refuses every bind from then on.
    a.script.drop_at_submit = 60
    a.script.reject_binds = 1_000_000
    ids = await routed.send_many([(number(n), f"failover {n}") for n in range(400)])
    await routed.wait_until({"DELIVERED", "SENT"}, list(ids))
    b = routed.smscs["b"]
    assert a.stats.submits_accepted == 60
    assert a.stats.submits_accepted + b.stats.submits_accepted == 400  # each message once
    assert a.stats.duplicates == b.stats.duplicates == 0
    assert b.stats.submits == b.stats.submits_accepted
    taken = await routed.sent_by()
    assert len(taken) == 400
    for message_id, body in ids.items():
        assert routed.carrier_of(body) == [taken[message_id]], body
    statuses = await routed.statuses()
    moved = [statuses[m][2] for m, carrier in taken.items() if carrier == "b"]
    assert len(moved) == 340
    # b delivers; a's last receipts may never come (its binds are refused): SENT, not lost.
    await routed.wait_until({"DELIVERED"}, [m for m, carrier in taken.items() if carrier == "b"])
    async with routed.runtime.database.read() as connection:
        descriptions = (
            await connection.execute(
                select(message_events.c.description).where(
                    message_events.c.status == "SENT", message_events.c.source == "smpp:b"
                )
            )
        ).scalars()
        after_a = [d for d in descriptions if d.startswith("Accepted by the carrier b (after a:")]
    assert after_a, "a message that a refused names both carriers in its timeline"


async def test_a_permanent_error_does_not_fail_over(routed: Routed) -> None:
    message_id = await routed.send("+4915112345690", "invalid destination")  # the SMSC's ESME_RINVDSTADR
    await routed.wait_until({"ERROR"}, [message_id])
    status, code, description = (await routed.statuses())[message_id]
    assert (status, code) == ("ERROR", "smpp:0x0000000B")
    assert description.startswith("a: Invalid destination address")
    assert routed.smscs["a"].stats.submits == 1
    assert routed.smscs["b"].stats.submits == 0


async def test_a_temporary_error_fails_over_to_the_next_carrier(routed: Routed) -> None:
    routed.smscs["a"].script.nack_submits = 1  # generic_nack ESME_RSYSERR: nothing accepted
    message_id = await routed.send("+4915112345601", "temporary on a")
    await routed.wait_until({"DELIVERED"}, [message_id])
    assert routed.carrier_of("temporary on a") == ["b"]
    assert (await routed.sent_by())[message_id] == "b"
    async with routed.runtime.database.read() as connection:
        sent = (
            await connection.execute(
                select(message_events.c.description).where(
                    message_events.c.message_id == message_id, message_events.c.status == "SENT"
                )
            )
        ).scalar_one()
    assert sent.startswith("Accepted by the carrier b (after a: ")


@pytest.mark.parametrize("carriers", [{"a": {"smsc": {"max_throughput": 5.0}}, "b": {}}])
async def test_a_throttling_carrier_passes_its_work_to_the_next(routed: Routed) -> None:
    ids = await routed.send_many([(number(n), f"throttle {n}") for n in range(60)])
    await routed.wait_until({"DELIVERED"}, list(ids))
    a, b = routed.smscs["a"].stats, routed.smscs["b"].stats
    assert a.throttled > 0
    assert b.submits_accepted > 0
    assert a.submits_accepted + b.submits_accepted == 60
    assert a.duplicates == b.duplicates == 0


@pytest.mark.parametrize("routes", [[SmsRoute(prefix="44", carrier="a")]])
async def test_a_destination_no_route_matches_ends_in_error(routed: Routed) -> None:
    message_id = await routed.send("+4915112345678", "nowhere to go")
    await routed.wait_until({"ERROR"}, [message_id])
    assert (await routed.statuses())[message_id][:2] == ("ERROR", "gw:no-route")
    assert routed.smscs["a"].stats.submits == 0


@pytest.mark.parametrize("extra", [{"smpp_bind_lease_seconds": 3}])  # a report every second
async def test_each_worker_reports_each_carrier_to_the_store(routed: Routed) -> None:
    message_id = await routed.send("+4915112345601", "counted")
    await routed.wait_until({"DELIVERED"}, [message_id])
    deadline = time.monotonic() + 30
    while True:
        async with routed.runtime.database.read() as connection:
            rows = {row.sample.carrier: row.sample for row in await read_all(connection)}
        a, b = rows.get("a"), rows.get("b")
        healthy = a is not None and b is not None and a.health == b.health == "up"
        if healthy and a is not None and (a.submits_total, a.receipts_total) == (1, 1):
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.1)
    assert (a.health, a.binds_held, a.binds_bound, a.window, a.in_flight) == ("up", 1, 1, 20, 0)
    assert (b.health, b.submits_total, b.last_error) == ("up", 0, None)


def outbound(message_id: str, to: str = "+4915112345601") -> OutboundMessage:
    stamp = now_ms()
    return OutboundMessage(
        message_id=message_id,
        company_id="cmp_cluster",
        channel=Channel.SMS,
        to=to,
        sender=None,
        content={"text": message_id},
        created_at=stamp,
        expires_at=stamp + 3_600_000,
    )


@pytest.mark.parametrize("other_worker_sees", ["up", "down"])
async def test_a_carrier_another_worker_holds_is_left_to_it_unless_it_reports_it_down(
    settings: Settings, runtime: Runtime, other_worker_sees: str
) -> None:
    """Carrier a's only bind is another worker's. While that worker reports a bound, a message
    routed a-then-b is handed back for it (not sent through b here); once it reports a down, this
    worker fails the message over to b. Two workers each holding what the other's failover needs
    would otherwise hand the same message back and forth."""
    async with (
        SmscSimulator(SmscConfig(port=0, system_id="sys", password="pw")) as a_smsc,
        SmscSimulator(SmscConfig(port=0, system_id="sys", password="pw")) as b_smsc,
    ):
        carriers = [
            SmppCarrier(name=name, host="127.0.0.1", port=port, system_id="sys", password=SecretStr("pw"))
            for name, port in (("a", a_smsc.port), ("b", b_smsc.port))
        ]
        test_settings = Settings.model_validate(
            settings.model_dump()
            | {
                "smpp_carriers": carriers,
                "sms_routes": [SmsRoute(failover=["a", "b"])],
                "smpp_bind_lease_seconds": 3,
            }
        )
        now = now_ms()
        async with runtime.database.write() as connection:
            await bind_slots.take(connection, "a", 1, "other-worker", now, 3_600_000)
            sample = CarrierSample(
                "a", "other-worker", other_worker_sees, 1, 1, 10, 0, 0, 0, 0, 0, None, None
            )
            await carrier_stats.write(connection, sample, now)
        provider = SMS.build_provider(ProviderContext(test_settings, None, runtime, exclusive=False))
        assert isinstance(provider, RoutedSmsProvider)
        await provider.start(RecordingSink())
        try:
            assert await provider.carriers["b"].wait_bound(10)
            deadline = time.monotonic() + 10
            while provider._up_elsewhere is None:  # its first look at the cluster, at start
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            if other_worker_sees == "up":
                assert provider.health() == {"a": Health.ELSEWHERE, "b": Health.UP}
                with pytest.raises(SendError) as raised:
                    await provider.send(outbound("msg_for_the_other_worker"), RecordingGuard())
                assert raised.value.kind == "retry"
                assert "held by other workers" in raised.value.description
                assert b_smsc.stats.submits == 0
            else:
                assert provider.health() == {"a": Health.DOWN, "b": Health.UP}
                accepted = await provider.send(outbound("msg_failed_over"), RecordingGuard())
                assert accepted.provider == "smpp:b"
                assert b_smsc.stats.submits_accepted == 1
            assert a_smsc.stats.submits == 0
        finally:
            await provider.stop()


async def test_when_every_carrier_refuses_the_retry_names_each_and_the_message_is_sent_later(
    routed: Routed,
) -> None:
    routed.smscs["a"].script.nack_submits = 1
    routed.smscs["b"].script.nack_submits = 1
    message_id = await routed.send("+4915112345602", "both refuse once")
    await routed.wait_until({"DELIVERED"}, [message_id])
    async with routed.runtime.database.read() as connection:
        descriptions = (
            await connection.execute(
                select(message_events.c.description)
                .where(message_events.c.message_id == message_id)
                .order_by(message_events.c.id)
            )
        ).scalars()
        timeline = list(descriptions)
    retry = [d for d in timeline if d.startswith("Will retry: ")]
    assert len(retry) == 1
    assert retry[0].startswith("Will retry: a: "), retry
    assert "; b: " in retry[0], retry
    assert sum(smsc.stats.submits_accepted for smsc in routed.smscs.values()) == 1
    assert routed.carrier_of("both refuse once") == ["a"]  # the retry starts again at the first


async def test_two_workers_share_each_carriers_binds_and_route_without_loss_or_duplicates(
    settings: Settings,
) -> None:
    """Two worker processes' pipelines (role worker, claiming from one store) and an API, two
    carriers of two binds each: every worker holds one bind of each carrier, the 50/50 split
    holds across them, and every message is submitted once, through the carrier its timeline names.
    (Which worker claims which message is the claim loop's business, not asserted.)"""
    smscs = {
        name: SmscSimulator(
            SmscConfig(
                port=0,
                system_id="sys",
                password="pw",
                receipt_delay_max_seconds=0.05,
                receipt_delay_min_seconds=0.01,
            )
        )
        for name in ("a", "b")
    }
    ports = {name: await smsc.start() for name, smsc in smscs.items()}
    carriers = [
        SmppCarrier(
            name=name,
            host="127.0.0.1",
            port=port,
            system_id="sys",
            password=SecretStr("pw"),
            binds=2,
            window=20,
        )
        for name, port in ports.items()
    ]
    base = settings.model_dump() | {
        "smpp_carriers": carriers,
        "sms_routes": [SmsRoute(split={"a": 1, "b": 1})],
        "rate_limit_enabled": False,
        "dispatch_poll_seconds": 0.02,
        "smpp_bind_lease_seconds": 3,
    }
    api_settings = Settings.model_validate(base | {"role": "api"})
    worker_settings = Settings.model_validate(base | {"role": "worker"})
    api = await Runtime.start(api_settings)
    await _empty_postgres(api)
    workers: list[tuple[Runtime, Pipeline]] = []
    try:

        async def start_worker() -> None:
            runtime = await Runtime.start(worker_settings)
            workers.append((runtime, await start_pipeline(worker_settings, runtime)))

        # Started together, as a cluster's workers are: a worker that has held a slot alone for
        # two rounds takes a second one (bind_slots.py), so a late second worker would find none.
        await asyncio.gather(start_worker(), start_worker())
        providers = [pipeline.providers[Channel.SMS] for _, pipeline in workers]
        assert all(isinstance(p, RoutedSmsProvider) for p in providers)
        deadline = time.monotonic() + 30
        while not all(len(p.carriers[c].bound_slots) == 1 for p in providers for c in ("a", "b")):  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "each worker should hold one bind of each carrier"
            await asyncio.sleep(0.1)
        partner = await make_partner(api)
        transport = httpx.ASGITransport(app=create_app(api_settings, api))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", headers=partner.headers
        ) as http:
            routed = Routed(api, workers[0][1], http, smscs)
            ids = await routed.send_many([(number(n), f"cluster {n}") for n in range(400)])
            await routed.wait_until({"DELIVERED"}, list(ids))
            taken = await routed.sent_by()
        a, b = smscs["a"].stats, smscs["b"].stats
        assert a.submits_accepted + b.submits_accepted == 400
        assert a.duplicates == b.duplicates == 0
        assert 0.42 <= a.submits_accepted / 400 <= 0.58, (a.submits_accepted, b.submits_accepted)
        assert Counter(taken.values()) == {"a": a.submits_accepted, "b": b.submits_accepted}
        for message_id, body in ids.items():
            assert routed.carrier_of(body) == [taken[message_id]]
    finally:
        for runtime, pipeline in workers:
            await pipeline.stop()
            await runtime.close()
        await api.close()
        for smsc in smscs.values():
            await smsc.stop()


async def test_the_rest_of_a_multipart_message_goes_where_its_first_parts_went(
    settings: Settings, runtime: Runtime
) -> None:
    """A concatenated SMS resumed after a failure (parts_done > 0) is sent through the carrier
    that accepted its first parts, whatever the route would choose now."""
    async with (
        SmscSimulator(SmscConfig(port=0, system_id="sys", password="pw")) as a_smsc,
        SmscSimulator(SmscConfig(port=0, system_id="sys", password="pw")) as b_smsc,
    ):
        carriers = [
            SmppCarrier(name=name, host="127.0.0.1", port=port, system_id="sys", password=SecretStr("pw"))
            for name, port in (("a", a_smsc.port), ("b", b_smsc.port))
        ]
        test_settings = Settings.model_validate(
            settings.model_dump() | {"smpp_carriers": carriers, "sms_routes": [SmsRoute(failover=["a", "b"])]}
        )
        async with runtime.database.write() as connection:
            await delivery.record_parts(
                connection, "msg_multipart", "smpp:b", [PartRecord(1, 3, "0000000001", "1")], now_ms()
            )
        provider = SMS.build_provider(ProviderContext(test_settings, None, runtime, exclusive=True))
        assert isinstance(provider, RoutedSmsProvider)
        await provider.start(RecordingSink())
        try:
            assert await provider.wait_bound(10)
            resumed = replace(outbound("msg_multipart"), content={"text": "x" * 400}, parts_done=1)
            accepted = await provider.send(resumed, RecordingGuard())
        finally:
            await provider.stop()
    assert accepted.provider == "smpp:b"
    assert [part.part_no for part in accepted.parts] == [2, 3]
    assert (a_smsc.stats.submits, b_smsc.stats.submits_accepted) == (0, 2)
