"""A large, realistic `messages` table, written straight into the store (the API would take hours).

Ids are `msg_` + a ULID whose time part is the message's `created_at`, spread over the last `days`;
channels SMS/WHATSAPP/RCS 60/25/15 %; statuses mixed as a live gateway holds them. The first
company holds most messages so its history is really deep. SQLite is written with the stdlib
`sqlite3`, PostgreSQL with asyncpg's COPY (secondary indexes dropped first and rebuilt after:
several times faster than maintaining them row by row).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import SEED, log
from ulid import ULID

DAY_MS = 86_400_000
CHUNK = 100_000  # rows per transaction / COPY

CHANNELS = ("SMS", "WHATSAPP", "RCS")
CHANNEL_WEIGHTS = (0.60, 0.25, 0.15)
# status, rank, description, error codes to pick from, weight
STATUS_MIX: tuple[tuple[str, int, str, tuple[str | None, ...], float], ...] = (
    ("DELIVERED", 50, "Delivered to the handset", (None,), 0.70),
    ("SENT", 10, "Handed to the provider", (None,), 0.05),
    ("RECEIVED", 20, "The provider reports an intermediate state", (None,), 0.04),
    ("ERROR", 40, "Rejected by the provider", ("SMPP_0x0000000B", "SMPP_0x00000045", "WA_131026"), 0.06),
    ("EXPIRED", 40, "Not delivered within its validity", ("PGW_EXPIRED",), 0.03),
    ("UNKNOWN", 30, "The provider could not tell", (None,), 0.04),
    ("UNKNOWN", 0, "Accepted, queued for delivery", (None,), 0.08),
)

COLUMNS = (
    "id",
    "company_id",
    "channel",
    "to_number",
    "sender",
    "reference",
    "status",
    "status_rank",
    "status_description",
    "error_code",
    "created_at",
    "updated_at",
    "read_at",
    "expires_at",
    "encoding",
    "segments",
    "callback_url",
    "body",
)
INSERT_MESSAGE = f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"  # noqa: S608 - constant columns


@dataclass
class Company:
    id: str
    name: str
    api_key: str
    messages: int = 0


@dataclass(frozen=True)
class Plan:
    """Who owns which message and when it was made: decided once, before writing."""

    created: list[int]
    owners: list[int]


def plan_messages(companies: Sequence[Company], total: int, big_share: float, days: int) -> Plan:
    """Creation times oldest first and owners (the first company holds `big_share`); counts per company."""
    rng = random.Random(SEED)
    now = int(time.time() * 1000)
    start = now - days * DAY_MS
    created = sorted(rng.randrange(start, now) for _ in range(total))
    if len(companies) == 1:
        weights = [1.0]
    else:
        rest = (1 - big_share) / (len(companies) - 1)
        weights = [big_share] + [rest] * (len(companies) - 1)
    owners = rng.choices(range(len(companies)), weights, k=total)
    for owner in owners:
        companies[owner].messages += 1
    return Plan(created, owners)


def message_rows(
    rng: random.Random, created: Sequence[int], owners: Sequence[int], companies: Sequence[Company]
) -> Iterator[tuple[Any, ...]]:
    """One row per message, in COLUMNS order."""
    status_weights = [entry[4] for entry in STATUS_MIX]
    channels = rng.choices(CHANNELS, CHANNEL_WEIGHTS, k=len(created))
    statuses = rng.choices(STATUS_MIX, status_weights, k=len(created))
    for created_at, owner, channel, (status, rank, description, codes, _w) in zip(
        created, owners, channels, statuses, strict=True
    ):
        message_id = "msg_" + str(ULID.from_timestamp(created_at / 1000))
        updated_at = created_at if rank == 0 else created_at + rng.randrange(200, 30_000)
        read_at = None
        if channel != "SMS" and status == "DELIVERED" and rng.random() < 0.4:
            read_at = updated_at + rng.randrange(1_000, 3_600_000)
        if channel == "SMS":
            sender, encoding, segments = (
                "ACME",
                ("GSM7" if rng.random() < 0.9 else "UCS2"),
                rng.choice((1, 1, 1, 2, 3)),
            )
            body = f'{{"text":"Your code is {rng.randrange(1_000_000):06d}"}}'
        elif channel == "WHATSAPP":
            sender, encoding, segments = None, None, None
            body = (
                '{"template":{"name":"order_update","language":"en_US","parameters":'
                f'["{rng.randrange(10**6)}"]}}}}'
            )
        else:
            sender, encoding, segments = None, None, None
            body = '{"text":"Your parcel is on its way","suggestions":[{"type":"reply","text":"Track"}]}'
        yield (
            message_id,
            companies[owner].id,
            channel,
            f"+49151{rng.randrange(100_000_000):08d}",
            sender,
            f"order-{rng.randrange(10**9)}" if rng.random() < 0.5 else None,
            status,
            rank,
            description,
            rng.choice(codes),
            created_at,
            updated_at,
            read_at,
            created_at + DAY_MS,
            encoding,
            segments,
            None,
            body,
        )


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    while batch := list(itertools.islice(rows, CHUNK)):
        yield batch


def _facts(total: int, seconds: float, companies: Sequence[Company]) -> dict[str, Any]:
    return {
        "messages": total,
        "seconds": round(seconds, 2),
        "rows_per_second": round(total / seconds) if seconds else None,
        "messages_per_company": {c.name: c.messages for c in companies},
    }


def seed_sqlite(
    db_path: Path, companies: list[Company], total: int, big_share: float, days: int
) -> dict[str, Any]:
    """Insert `total` messages oldest first, CHUNK per transaction; returns timing facts."""
    plan = plan_messages(companies, total, big_share, days)
    began = time.perf_counter()
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")  # no WAL the size of the data set
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1048576")  # 1 GiB
        inserted = 0
        for batch in _chunks(message_rows(random.Random(SEED + 2), plan.created, plan.owners, companies)):
            connection.execute("BEGIN")
            connection.executemany(INSERT_MESSAGE, batch)
            connection.execute("COMMIT")
            inserted += len(batch)
            log(f"seeded {inserted:,}/{total:,} messages ({time.perf_counter() - began:.1f} s)")
        connection.execute("PRAGMA journal_mode=WAL")  # as the gateway keeps it
    finally:
        connection.close()
    facts = _facts(total, time.perf_counter() - began, companies)
    facts["db_bytes"] = db_path.stat().st_size
    return facts


def seed_postgres(
    dsn: str, companies: list[Company], total: int, big_share: float, days: int
) -> dict[str, Any]:
    """COPY `total` messages in, secondary indexes dropped and rebuilt around it; then ANALYZE."""
    plan = plan_messages(companies, total, big_share, days)
    return asyncio.run(_seed_postgres(dsn, plan, companies, total))


async def _seed_postgres(dsn: str, plan: Plan, companies: list[Company], total: int) -> dict[str, Any]:
    import asyncpg

    began = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        indexes = await connection.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i"
            " JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid"
            " WHERE i.tablename = 'messages' AND NOT x.indisprimary AND NOT x.indisunique"
        )
        for index in indexes:
            await connection.execute(f'DROP INDEX "{index["indexname"]}"')
        inserted = 0
        rows = message_rows(random.Random(SEED + 2), plan.created, plan.owners, companies)
        for batch in _chunks(rows):
            await connection.copy_records_to_table("messages", records=batch, columns=list(COLUMNS))
            inserted += len(batch)
            log(f"seeded {inserted:,}/{total:,} messages ({time.perf_counter() - began:.1f} s)")
        copied = time.perf_counter() - began
        for index in indexes:
            await connection.execute(index["indexdef"])
        await connection.execute("ANALYZE messages")
        facts = _facts(total, time.perf_counter() - began, companies)
        facts["copy_seconds"] = round(copied, 2)
        facts["db_bytes"] = await connection.fetchval("SELECT pg_database_size(current_database())")
        return facts
    finally:
        await connection.close()
