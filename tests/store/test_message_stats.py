"""The aggregates of GET /messages/stats follow the messages' statuses in the same transaction:
each message counted once, in its acceptance hour, under its current status and error code; the
latency of each counted once, when it first became final."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.ids import new_message_id
from partner_gateway.domain.messages import NewMessage
from partner_gateway.domain.reports import GATEWAY, StatusReport
from partner_gateway.domain.statuses import FINAL_STATUSES, Channel, DeliveryStatus
from partner_gateway.runtime import Runtime
from partner_gateway.store.message_stats import STATS_SHARDS, StatsDelta, hour_of, latency_bin, read_stats
from partner_gateway.store.repositories import delivery
from partner_gateway.store.repositories.messages import MessageRepository
from partner_gateway.store.tables import message_latency, message_stats, messages
from support import make_partner, seed

T0 = 1_795_000_000_000  # 2026-11-19T11:06:40Z
HOUR = 3_600_000


def report(
    message_id: str,
    status: DeliveryStatus,
    key: str,
    *,
    at: int,
    code: str | None = None,
    read: bool = False,
) -> StatusReport:
    return StatusReport(
        GATEWAY,
        status,
        status.value,
        "test",
        at,
        f"test:{key}",
        message_id=message_id,
        error_code=code,
        is_read=read,
        is_final=status is not DeliveryStatus.SENT,
    )


async def stored(connection: AsyncConnection, company_id: str) -> Counter[tuple[str, int, str, str]]:
    """message_stats' non-zero counts of a company, its shards summed: (channel, hour, status,
    error code) -> count."""
    key = (message_stats.c.channel, message_stats.c.hour, message_stats.c.status, message_stats.c.error_code)
    rows = await connection.execute(
        select(*key, func.sum(message_stats.c.count))
        .where(message_stats.c.company_id == company_id)
        .group_by(*key)
    )
    return Counter({(c, h, s, e): int(n) for c, h, s, e, n in rows if n})


async def brute_force(connection: AsyncConnection, company_id: str) -> Counter[tuple[str, int, str, str]]:
    """The same, counted over the messages table."""
    rows = await connection.execute(
        select(messages.c.channel, messages.c.created_at, messages.c.status, messages.c.error_code).where(
            messages.c.company_id == company_id
        )
    )
    return Counter((c, hour_of(t), s, e or "") for c, t, s, e in rows)


async def latencies(connection: AsyncConnection, company_id: str) -> Counter[tuple[str, int, int]]:
    key = (message_latency.c.channel, message_latency.c.hour, message_latency.c.bin)
    rows = await connection.execute(
        select(*key, func.sum(message_latency.c.count))
        .where(message_latency.c.company_id == company_id)
        .group_by(*key)
    )
    return Counter({(c, h, b): int(n) for c, h, b, n in rows})


async def apply(runtime: Runtime, reports: list[StatusReport], now: int) -> None:
    async with runtime.database.write() as connection:
        await delivery.apply_gateway_reports(connection, reports, now)


async def check(runtime: Runtime, company_id: str) -> Counter[tuple[str, int, str, str]]:
    async with runtime.database.read() as connection:
        counted = await stored(connection, company_id)
        assert counted == await brute_force(connection, company_id)
    return counted


async def test_counts_follow_a_message_from_acceptance_to_a_final_status(runtime: Runtime) -> None:
    partner = await make_partner(runtime)
    [first, second] = await seed(runtime, partner.company_id, [T0, T0 + HOUR])
    hour = hour_of(T0)
    assert await check(runtime, partner.company_id) == {
        ("SMS", hour, "UNKNOWN", ""): 1,
        ("SMS", hour + HOUR, "UNKNOWN", ""): 1,
    }
    await apply(runtime, [report(first, DeliveryStatus.SENT, "1", at=T0 + 10)], T0 + 10)
    assert (await check(runtime, partner.company_id))[("SMS", hour, "SENT", "")] == 1

    # Sent and failed in one batch: the message moves twice, the batch writes once.
    await apply(
        runtime,
        [
            report(second, DeliveryStatus.SENT, "2", at=T0 + HOUR + 5),
            report(second, DeliveryStatus.ERROR, "3", at=T0 + HOUR + 9, code="smpp:0x0b"),
            report(first, DeliveryStatus.DELIVERED, "4", at=T0 + 2_000),
        ],
        T0 + HOUR + 9_000,
    )
    assert await check(runtime, partner.company_id) == {
        ("SMS", hour, "DELIVERED", ""): 1,
        ("SMS", hour + HOUR, "ERROR", "smpp:0x0b"): 1,
    }
    async with runtime.database.read() as connection:
        assert await latencies(connection, partner.company_id) == {
            ("SMS", hour, latency_bin(HOUR + 9_000)): 1,
            ("SMS", hour + HOUR, latency_bin(9_000)): 1,
        }

    # A read receipt, a repeat and an EXPIRED after DELIVERED change no count and no latency.
    await apply(
        runtime,
        [
            report(first, DeliveryStatus.DELIVERED, "5", at=T0 + 3_000, read=True),
            report(second, DeliveryStatus.ERROR, "3", at=T0 + HOUR + 9, code="smpp:0x0b"),
            report(first, DeliveryStatus.EXPIRED, "6", at=T0 + 4_000),
        ],
        T0 + 2 * HOUR,
    )
    assert await check(runtime, partner.company_id) == {
        ("SMS", hour, "DELIVERED", ""): 1,
        ("SMS", hour + HOUR, "ERROR", "smpp:0x0b"): 1,
    }
    async with runtime.database.read() as connection:
        assert sum((await latencies(connection, partner.company_id)).values()) == 2


async def test_an_expired_message_is_counted_as_expired(runtime: Runtime) -> None:
    partner = await make_partner(runtime)
    [message_id] = await seed(runtime, partner.company_id, [T0], channel="WHATSAPP")
    await apply(runtime, [report(message_id, DeliveryStatus.SENT, "1", at=T0)], T0)
    await apply(runtime, [report(message_id, DeliveryStatus.EXPIRED, "2", at=T0 + 9)], T0 + 86_400_000)
    assert await check(runtime, partner.company_id) == {("WHATSAPP", hour_of(T0), "EXPIRED", ""): 1}


async def test_a_multipart_message_is_one_message(runtime: Runtime) -> None:
    partner = await make_partner(runtime)
    [message_id] = await seed(runtime, partner.company_id, [T0])
    keys = [f"smsc-{message_id}-{part}" for part in (1, 2)]
    parts = [delivery.PartRecord(part, 2, key, key) for part, key in enumerate(keys, 1)]
    async with runtime.database.write() as connection:
        await delivery.record_parts(connection, message_id, "smpp:carrier-a", parts, T0)
        await delivery.apply_gateway_reports(
            connection, [report(message_id, DeliveryStatus.SENT, "s", at=T0)], T0
        )
    for key in keys:
        async with runtime.database.write() as connection:
            await delivery.apply_provider_report(
                connection,
                StatusReport(
                    "smpp:carrier-a",
                    DeliveryStatus.DELIVERED,
                    "DELIVRD",
                    "d",
                    T0 + 5,
                    f"{key}:d",
                    provider_key=key,
                ),
                T0 + 5_000,
            )
        assert sum((await check(runtime, partner.company_id)).values()) == 1
    assert await check(runtime, partner.company_id) == {("SMS", hour_of(T0), "DELIVERED", ""): 1}


async def test_a_fallback_sms_and_its_rcs_original_are_counted_apart(runtime: Runtime) -> None:
    partner = await make_partner(runtime)
    [original] = await seed(runtime, partner.company_id, [T0], channel="RCS")
    sms = NewMessage(
        id=new_message_id(T0 + HOUR),
        company_id=partner.company_id,
        channel=Channel.SMS,
        to="+4915112345678",
        sender=None,
        reference=None,
        created_at=T0 + HOUR,
        expires_at=T0 + 2 * HOUR,
        callback_url=None,
        body="{}",
        fallback_for=original,
    )
    async with runtime.database.write() as connection:
        await MessageRepository(connection).add_accepted(sms)
    await apply(runtime, [report(sms.id, DeliveryStatus.DELIVERED, "d", at=T0 + HOUR + 1)], T0 + HOUR + 2_000)
    assert await check(runtime, partner.company_id) == {
        ("RCS", hour_of(T0), "DELIVERED", ""): 1,
        ("SMS", hour_of(T0 + HOUR), "DELIVERED", ""): 1,
    }


async def test_another_companys_messages_are_counted_under_it(runtime: Runtime) -> None:
    acme, globex = await make_partner(runtime, "Acme"), await make_partner(runtime, "Globex")
    await seed(runtime, acme.company_id, [T0, T0 + 1])
    await seed(runtime, globex.company_id, [T0])
    assert sum((await check(runtime, acme.company_id)).values()) == 2
    assert sum((await check(runtime, globex.company_id)).values()) == 1


STATUSES = [
    (DeliveryStatus.SENT, None),
    (DeliveryStatus.RECEIVED, None),
    (DeliveryStatus.DELIVERED, None),
    (DeliveryStatus.ERROR, "e:1"),
    (DeliveryStatus.ERROR, "e:2"),
    (DeliveryStatus.EXPIRED, None),
    (DeliveryStatus.UNKNOWN, None),
]
STEP = st.tuples(st.integers(0, 3), st.sampled_from(STATUSES), st.booleans())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(STEP, min_size=1, max_size=4), min_size=1, max_size=6))
async def test_the_aggregates_equal_a_count_over_the_messages(
    runtime: Runtime, batches: list[list[tuple[int, tuple[DeliveryStatus, str | None], bool]]]
) -> None:
    partner = await make_partner(runtime)  # a company per example: the runtime is shared
    stamps = [T0, T0 + 60_000, T0 + HOUR, T0 + 3 * HOUR]
    ids = await seed(runtime, partner.company_id, stamps[:2]) + await seed(
        runtime, partner.company_id, stamps[2:], channel="WHATSAPP"
    )
    became_final: Counter[tuple[str, int, int]] = Counter()
    final: set[str] = set()
    now = T0 + 4 * HOUR
    for number, batch in enumerate(batches):
        now += 1_000 * (number + 1) ** 3
        reports = [
            report(ids[i], status, f"{number}:{j}", at=now - 1, code=code, read=read)
            for j, (i, (status, code), read) in enumerate(batch)
        ]
        await apply(runtime, reports, now)
        await check(runtime, partner.company_id)
        async with runtime.database.read() as connection:
            rows = await connection.execute(
                select(messages.c.id, messages.c.channel, messages.c.created_at, messages.c.status).where(
                    messages.c.id.in_(ids)
                )
            )
            for message_id, channel, created_at, status in rows:
                if DeliveryStatus(status) in FINAL_STATUSES and message_id not in final:
                    final.add(message_id)
                    became_final[(channel, hour_of(created_at), latency_bin(now - created_at))] += 1
            assert await latencies(connection, partner.company_id) == became_final
            total = select(func.sum(message_stats.c.count)).where(
                message_stats.c.company_id == partner.company_id
            )
            assert (await connection.execute(total)).scalar_one() == len(ids)


async def test_migration_0013_counts_the_messages_stored_before_it(runtime: Runtime) -> None:
    from alembic import command

    from partner_gateway.store.migrate import alembic_config

    partner = await make_partner(runtime)
    [first, _] = await seed(runtime, partner.company_id, [T0, T0 + HOUR])
    await apply(runtime, [report(first, DeliveryStatus.ERROR, "1", at=T0 + 5, code="e:1")], T0 + 10)
    async with runtime.database.write() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0012"))
    async with runtime.database.write() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
    assert await check(runtime, partner.company_id) == {
        ("SMS", hour_of(T0), "ERROR", "e:1"): 1,
        ("SMS", hour_of(T0 + HOUR), "UNKNOWN", ""): 1,
    }


async def test_writes_spread_over_shards_on_postgresql_and_reads_sum_them(runtime: Runtime) -> None:
    """Concurrent writers on PostgreSQL would queue on one row's lock: each write picks a shard.
    SQLite has one writer and keeps one row."""
    partner = await make_partner(runtime)
    writes = 40
    for _ in range(writes):
        async with runtime.database.write() as connection:
            delta = StatsDelta()
            delta.count(partner.company_id, "SMS", T0, "DELIVERED", None, 1)
            delta.became_final(partner.company_id, "SMS", T0, T0 + 1500)
            await delta.write(connection)
    async with runtime.database.read() as connection:
        shards = await connection.execute(
            select(message_stats.c.shard).where(message_stats.c.company_id == partner.company_id).distinct()
        )
        used = {shard for (shard,) in shards}
        read = await read_stats(connection, partner.company_id, hour_of(T0), hour_of(T0) + HOUR, HOUR, None)
    if connection.dialect.name == "postgresql":
        assert 1 < len(used) <= STATS_SHARDS  # all 40 in one of 8 shards: 8 ** -39
    else:
        assert used == {0}
    assert read.counts == [("SMS", hour_of(T0), "DELIVERED", "", writes)]
    assert read.latencies == [("SMS", hour_of(T0), latency_bin(1500), writes)]
