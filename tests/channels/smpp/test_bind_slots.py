"""A carrier's binds are a total across workers: two providers (two workers' worth) share one SMSC
simulator through leases in the real store, with a short lease so take-overs happen in seconds.

Every test watches both sides the whole time: the sessions the SMSC has bound, and the sessions
each provider has bound; neither may ever exceed the carrier's `binds`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr

from partner_gateway.channels.base import OutboundMessage, SendError, StatusReport
from partner_gateway.channels.smpp.bind_slots import BindLeasing, SlotLeases
from partner_gateway.channels.smpp.provider import SmppProvider
from partner_gateway.channels.smpp.settings import SmppCarrier
from partner_gateway.domain.statuses import Channel
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.simulators.smsc import SmscConfig, SmscSimulator
from partner_gateway.store.repositories import bind_slots
from partner_gateway.store.repositories.bind_slots import BindSlotStore

LEASE = 2.0  # seconds; renewed every third of it
WAIT = 10.0
PASSWORD = "slots-pw"


@pytest.fixture
async def smsc() -> AsyncIterator[SmscSimulator]:
    config = SmscConfig(port=0, system_id="gateway", password=PASSWORD)
    async with SmscSimulator(config) as simulator:
        yield simulator


class Sink:
    def __init__(self) -> None:
        self.reports: list[StatusReport] = []

    async def record(self, reports: Sequence[StatusReport]) -> None:
        self.reports.extend(reports)


class Partition:
    """The store's leases until `cut()`; from then on every call hangs, as for a worker that has
    lost its store (or is frozen) while its SMPP connection stays up."""

    def __init__(self, leases: SlotLeases) -> None:
        self._leases = leases
        self._cut = asyncio.Event()

    def cut(self) -> None:
        self._cut.set()

    async def _gate(self) -> None:
        if self._cut.is_set():
            await asyncio.Event().wait()

    async def take(self, carrier: str, slot: int, holder: str, lease_ms: int) -> bool:
        await self._gate()
        return await self._leases.take(carrier, slot, holder, lease_ms)

    async def free(self, carrier: str, binds: int) -> set[int]:
        await self._gate()
        return await self._leases.free(carrier, binds)

    async def release(self, carrier: str, holder: str) -> None:
        await self._gate()
        await self._leases.release(carrier, holder)

    async def clear(self, carrier: str) -> None:
        await self._gate()
        await self._leases.clear(carrier)


def make_provider(
    smsc: SmscSimulator,
    holder: str,
    leases: SlotLeases,
    *,
    binds: int = 1,
    exclusive: bool = False,
) -> SmppProvider:
    assert smsc.port is not None
    carrier = SmppCarrier(
        name="acme",
        host="127.0.0.1",
        port=smsc.port,
        system_id="gateway",
        password=SecretStr(PASSWORD),
        binds=binds,
        response_timeout_seconds=2,
    )
    leasing = BindLeasing(leases, holder=holder, lease_seconds=LEASE, exclusive=exclusive)
    return SmppProvider(carrier, leasing=leasing)


def smsc_bound(smsc: SmscSimulator) -> int:
    # The simulator's own view: connections bound and not unbinding.
    return sum(1 for session in smsc._sessions if session.bind is not None and not session._closing)


@dataclass
class Watch:
    """Samples both sides every 10 ms: the most sessions ever bound at once, and when each
    provider last had a bound session (wall-clock ms, as the leases count)."""

    smsc: SmscSimulator
    providers: dict[str, SmppProvider]
    most_at_smsc: int = 0
    most_at_providers: int = 0
    last_bound: dict[str, int] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            self.most_at_smsc = max(self.most_at_smsc, smsc_bound(self.smsc))
            bound = 0
            for name, provider in self.providers.items():
                if provider.bound_slots:
                    bound += len(provider.bound_slots)
                    self.last_bound[name] = now_ms()
            self.most_at_providers = max(self.most_at_providers, bound)
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def watching(smsc: SmscSimulator, **providers: SmppProvider) -> AsyncIterator[Watch]:
    watch = Watch(smsc, providers)
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for provider in providers.values():
            await provider.stop()


async def until(condition: object, what: str, within: float = WAIT) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


def message() -> OutboundMessage:
    stamp = now_ms()
    return OutboundMessage(
        message_id="msg_slots",
        company_id="cmp_slots",
        channel=Channel.SMS,
        to="+4915112345678",
        sender=None,
        content={"text": "hello"},
        created_at=stamp,
        expires_at=stamp + 3_600_000,
    )


class NoGuard:
    async def before_write(self, message_id: str) -> None:
        pytest.fail("nothing may be written by a worker without a bind")


async def test_one_bind_one_session_and_a_cut_off_holder_is_taken_over_after_its_lease(
    runtime: Runtime, smsc: SmscSimulator
) -> None:
    store = BindSlotStore(runtime.database)
    partition = Partition(store)
    first = make_provider(smsc, "first", partition)
    second = make_provider(smsc, "second", store)
    async with watching(smsc, first=first, second=second) as watch:
        await first.start(Sink())
        assert await first.wait_bound(WAIT)
        await second.start(Sink())
        await asyncio.sleep(2 * LEASE)  # several rounds of renewals and attempts
        assert (first.bound_slots, second.bound_slots, second.accepting) == ({1}, frozenset(), False)
        assert smsc_bound(smsc) == 1

        # The worker without a bind hands work back at once, nothing written: safe to retry.
        submits = smsc.stats.submits
        with pytest.raises(SendError) as raised:
            await second.send(message(), NoGuard())
        assert (raised.value.kind, raised.value.retry_after) == ("retry", LEASE / 3)
        assert "held by other workers" in raised.value.description
        assert smsc.stats.submits == submits

        partition.cut()
        await asyncio.sleep(0.2)  # a renewal in flight at the cut has finished by now
        [lease] = await store.holders("acme")
        assert lease.holder == "first"
        await until(lambda: second.bound_slots == {1}, "the second worker to take the bind over")
        [taken] = await store.holders("acme")

    assert taken.holder == "second"
    assert taken.acquired_at > lease.expires_at  # not before the cut-off holder's lease ran out
    assert watch.last_bound["first"] < lease.expires_at  # and that one unbound before it did
    assert (watch.most_at_smsc, watch.most_at_providers) == (1, 1)
    assert smsc.stats.binds == 2


async def test_a_clean_stop_gives_the_bind_to_another_worker_at_once(
    runtime: Runtime, smsc: SmscSimulator
) -> None:
    store = BindSlotStore(runtime.database)
    first = make_provider(smsc, "first", store)
    second = make_provider(smsc, "second", store)
    async with watching(smsc, first=first, second=second) as watch:
        await first.start(Sink())
        assert await first.wait_bound(WAIT)
        await second.start(Sink())
        await asyncio.sleep(LEASE / 2)
        await first.stop()
        stopped = asyncio.get_running_loop().time()
        await until(lambda: second.bound_slots == {1}, "the second worker to bind")
        # The lease was given up, not left to run out: the next attempt (every third) takes it.
        assert asyncio.get_running_loop().time() - stopped < LEASE
    assert (watch.most_at_smsc, watch.most_at_providers) == (1, 1)


async def test_two_binds_are_shared_by_two_workers_then_one_takes_both(
    runtime: Runtime, smsc: SmscSimulator
) -> None:
    store = BindSlotStore(runtime.database)
    first = make_provider(smsc, "first", store, binds=2)
    second = make_provider(smsc, "second", store, binds=2)
    async with watching(smsc, first=first, second=second) as watch:
        await first.start(Sink())
        await second.start(Sink())
        await asyncio.sleep(2 * LEASE)
        assert len(first.bound_slots) == len(second.bound_slots) == 1
        assert first.bound_slots | second.bound_slots == {1, 2}
        await second.stop()
        await until(lambda: first.bound_slots == {1, 2}, "the first worker to take the free bind too")
        assert [lease.holder for lease in await store.holders("acme")] == ["first", "first"]
    assert (watch.most_at_smsc, watch.most_at_providers) == (2, 2)


async def test_the_only_worker_clears_a_dead_predecessors_leases_at_start(
    runtime: Runtime, smsc: SmscSimulator
) -> None:
    async with runtime.database.write() as connection:
        for slot in (1, 2):  # a gateway killed a moment ago left these for another whole lease
            assert await bind_slots.take(connection, "acme", slot, "killed", now_ms(), 3_600_000)
    alone = make_provider(smsc, "restarted", BindSlotStore(runtime.database), binds=2, exclusive=True)
    async with watching(smsc, alone=alone):
        await alone.start(Sink())
        assert await alone.wait_bound(WAIT)
        assert alone.bound_slots == {1, 2}
