"""The callback senders' queries (claims, attempts, outcomes), a message's callbacks as a
partner sees them, and replay. Events are written with their change (delivery/callback_events.py).

A sender claims due events with FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite's single writer
serialises claims) and marks them `claimed_until` a lease: a sender killed mid-attempt leaves
its events to be taken again once the lease ends (at least once). Every attempt is a row of
callback_attempts; an event's outcome (delivered, retried at a time, given up) clears the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.statuses import Channel
from partner_gateway.store.bulk import Rows
from partner_gateway.store.repositories.delivery.callback_events import DELIVERED, GIVEN_UP, PENDING, DueEvent
from partner_gateway.store.tables import callback_attempts, callback_events, callback_settings, messages

__all__ = [
    "DELIVERED",
    "GIVEN_UP",
    "PENDING",
    "AttemptRecord",
    "DueEvent",
    "EventView",
    "FailedAttempt",
    "Outcome",
    "backlog",
    "claim_due",
    "message_callbacks",
    "recent_failures",
    "record_outcomes",
    "release_claims",
    "replay",
]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    event_id: str
    attempted_at: int
    url: str
    response_status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What becomes of a claimed event: `state` with, while pending, `next_attempt_at`; the
    attempt made, or None when it was put off without one (its endpoint backed off)."""

    event_id: str
    state: str
    next_attempt_at: int | None
    attempt: AttemptRecord | None


_DUE = (
    select(
        callback_events.c.id,
        callback_events.c.company_id,
        callback_events.c.message_id,
        func.coalesce(callback_events.c.url, callback_settings.c.url),
        callback_events.c.body,
        callback_events.c.attempts,
        callback_events.c.pending_since,
        callback_settings.c.rotated_at,
    )
    .select_from(
        callback_events.outerjoin(
            callback_settings, callback_settings.c.company_id == callback_events.c.company_id
        )
    )
    .where(
        callback_events.c.state == PENDING,
        callback_events.c.next_attempt_at <= bindparam("now"),
        (callback_events.c.claimed_until.is_(None)) | (callback_events.c.claimed_until <= bindparam("now")),
    )
    .order_by(callback_events.c.next_attempt_at)
    .limit(bindparam("limit"))
    .with_for_update(of=callback_events, skip_locked=True)
)
_CLAIM = (
    update(callback_events)
    .where(callback_events.c.id.in_(bindparam("ids", expanding=True)))
    .values(claimed_until=bindparam("until"))
)


async def claim_due(connection: AsyncConnection, now: int, limit: int, lease_ms: int) -> list[DueEvent]:
    """Up to `limit` due events, oldest due first, claimed until `now + lease_ms`."""
    rows = (await connection.execute(_DUE, {"now": now, "limit": limit})).all()
    if not rows:
        return []
    await connection.execute(_CLAIM, {"ids": [row[0] for row in rows], "until": now + lease_ms})
    return [
        DueEvent(event_id, company_id, message_id, url, body.encode(), attempts, pending_since, rotated_at)
        for event_id, company_id, message_id, url, body, attempts, pending_since, rotated_at in rows
    ]


async def release_claims(connection: AsyncConnection) -> int:
    """Every claim given back: the embedded gateway's only sender, starting, takes back what its
    previous run held when it died."""
    result = await connection.execute(
        update(callback_events)
        .where(callback_events.c.state == PENDING, callback_events.c.claimed_until.is_not(None))
        .values(claimed_until=None)
    )
    return int(result.rowcount or 0)


_INSERT_ATTEMPTS = Rows(
    insert(callback_attempts),
    ("event_id", "attempted_at", "url", "response_status", "error", "duration_ms"),
)
_FINISH = Rows(
    update(callback_events)
    .where(callback_events.c.id == bindparam("m_id"))
    .values(
        {
            callback_events.c.state: bindparam("m_state"),
            callback_events.c.attempts: callback_events.c.attempts + bindparam("m_counted"),
            callback_events.c.next_attempt_at: bindparam("m_next"),
            callback_events.c.claimed_until: null(),
            callback_events.c.finished_at: bindparam("m_finished"),
        }
    ),
    ("m_state", "m_counted", "m_next", "m_finished", "m_id"),
)


async def record_outcomes(connection: AsyncConnection, outcomes: Sequence[Outcome], now: int) -> None:
    """Store the attempts and the events' new states (their claims end): two statements."""
    attempts = [
        (a.event_id, a.attempted_at, a.url[:2048], a.response_status, a.error[:300] if a.error else None,
         a.duration_ms)
        for outcome in outcomes
        if (a := outcome.attempt) is not None
    ]  # fmt: skip
    await _INSERT_ATTEMPTS.execute(connection, attempts)
    await _FINISH.execute(
        connection,
        [
            (
                o.state,
                1 if o.attempt is not None else 0,
                o.next_attempt_at if o.state == PENDING else None,
                None if o.state == PENDING else now,
                o.event_id,
            )
            for o in outcomes
        ],
    )


async def replay(
    connection: AsyncConnection, company_id: str, since: int, until: int | None, now: int
) -> int:
    """Every event of the company that occurred in [since, until) pending again, due now, with a
    new retry window: the same bodies and eventIds. How many."""
    conditions = [callback_events.c.company_id == company_id, callback_events.c.occurred_at >= since]
    if until is not None:
        conditions.append(callback_events.c.occurred_at < until)
    result = await connection.execute(
        update(callback_events)
        .where(*conditions)
        .values(state=PENDING, next_attempt_at=now, pending_since=now, attempts=0, finished_at=None)
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class EventView:
    """One event of a message with its attempts, oldest first."""

    event_id: str
    sequence: int
    occurred_at: int
    state: str
    next_attempt_at: int | None
    attempts: list[AttemptRecord]


async def message_callbacks(
    connection: AsyncConnection, company_id: str, channel: Channel, message_id: str
) -> list[EventView] | None:
    """The message's events with every attempt, by sequence; None when the company has no such
    message on that channel."""
    found = (
        await connection.execute(
            select(messages.c.id).where(
                messages.c.id == message_id,
                messages.c.company_id == company_id,
                messages.c.channel == channel.value,
            )
        )
    ).first()
    if found is None:
        return None
    events = (
        await connection.execute(
            select(
                callback_events.c.id,
                callback_events.c.sequence,
                callback_events.c.occurred_at,
                callback_events.c.state,
                callback_events.c.next_attempt_at,
            )
            .where(callback_events.c.message_id == message_id)
            .order_by(callback_events.c.sequence, callback_events.c.occurred_at)
        )
    ).all()
    attempts: dict[str, list[AttemptRecord]] = {row[0]: [] for row in events}
    if events:
        for row in await connection.execute(
            select(
                callback_attempts.c.event_id,
                callback_attempts.c.attempted_at,
                callback_attempts.c.url,
                callback_attempts.c.response_status,
                callback_attempts.c.error,
                callback_attempts.c.duration_ms,
            )
            .where(callback_attempts.c.event_id.in_(list(attempts)))
            .order_by(callback_attempts.c.id)
        ):
            attempts[row[0]].append(AttemptRecord(*row))
    return [
        EventView(
            event_id, sequence, occurred_at, state, next_at if state == PENDING else None, attempts[event_id]
        )
        for event_id, sequence, occurred_at, state, next_at in events
    ]


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """An attempt the partner did not answer with a 2xx, and the message it was about."""

    message_id: str
    channel: str
    event_id: str
    attempted_at: int
    url: str
    response_status: int | None
    error: str | None


async def recent_failures(
    connection: AsyncConnection, company_id: str, since: int, limit: int
) -> list[FailedAttempt]:
    """The company's failed attempts of the events that occurred from `since`, newest first
    (the console's callback page). The company's events are found by their index
    (company_id, occurred_at), their attempts by event_id."""
    rows = await connection.execute(
        select(
            callback_events.c.message_id,
            messages.c.channel,
            callback_attempts.c.event_id,
            callback_attempts.c.attempted_at,
            callback_attempts.c.url,
            callback_attempts.c.response_status,
            callback_attempts.c.error,
        )
        .join(callback_events, callback_events.c.id == callback_attempts.c.event_id)
        .join(messages, messages.c.id == callback_events.c.message_id)
        .where(
            callback_events.c.company_id == company_id,
            callback_events.c.occurred_at >= since,
            or_(
                callback_attempts.c.response_status.is_(None),
                callback_attempts.c.response_status < 200,
                callback_attempts.c.response_status >= 300,
            ),
        )
        .order_by(callback_attempts.c.attempted_at.desc(), callback_attempts.c.id.desc())
        .limit(limit)
    )
    return [FailedAttempt(*row) for row in rows]


async def backlog(connection: AsyncConnection) -> dict[str, int]:
    """How many events are in each state (for operators and, later, metrics)."""
    rows = await connection.execute(
        select(callback_events.c.state, func.count()).group_by(callback_events.c.state)
    )
    return {state: int(count) for state, count in rows}
