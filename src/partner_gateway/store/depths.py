"""The store's depths for /metrics, read at scrape time: the outbox by state, its backlog and
lag, and the parked receipts.

Three statements on a reader connection. The outbox holds only work not yet handed over (an item
is deleted with its outcome), so its count by state reads the `(state, available_at)` index and
stays small while hand-overs keep up; in a backlog it grows with the backlog, and the scrape's
time bound (observability/scrape.py) keeps a slow count from holding the page. The oldest due
item is one seek on that index.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.domain.timefmt import now_ms
from partner_gateway.observability import metrics
from partner_gateway.observability.scrape import Source
from partner_gateway.store.database import Database
from partner_gateway.store.repositories.delivery import OutboxState
from partner_gateway.store.repositories.delivery.callback_events import PENDING
from partner_gateway.store.tables import callback_events, outbox, pending_reports

_BY_STATE = select(outbox.c.state, func.count()).group_by(outbox.c.state)
_QUEUED = outbox.c.state == OutboxState.QUEUED


async def read_depths(connection: AsyncConnection, now: int) -> None:
    """Set the store's gauges from what `connection` reads."""
    counts = {state: 0 for state in OutboxState}
    for state, count in await connection.execute(_BY_STATE):
        counts[OutboxState(state)] = int(count)
    for state, count in counts.items():
        metrics.OUTBOX_ITEMS.labels(state.value).set(count)
    due = select(func.count()).where(_QUEUED, outbox.c.available_at <= now)
    metrics.OUTBOX_DUE.set(int((await connection.execute(due)).scalar_one()))
    oldest = (await connection.execute(select(func.min(outbox.c.available_at)).where(_QUEUED))).scalar()
    metrics.OUTBOX_OLDEST_DUE.set(max(0, now - int(oldest)) / 1000 if oldest is not None else 0)
    parked = (await connection.execute(select(func.count()).select_from(pending_reports))).scalar_one()
    metrics.PARKED_RECEIPTS.set(int(parked))
    # The pending events only, on the senders' claim index: delivered ones are most of the table.
    waiting = select(func.count()).where(callback_events.c.state == PENDING)
    metrics.callback_backlog(int((await connection.execute(waiting)).scalar_one()))


def store_depths(database: Database) -> Source:
    async def source() -> None:
        async with database.read() as connection:
            await read_depths(connection, now_ms())

    return source
