"""The callback sender: takes due events from the store and pushes them to partners (SPEC §5).

It runs for every process that delivers (the embedded `serve`, each `worker`), apart from the
send pipeline: by default in a child process of its own (sender_process.py), else on the
delivering process's loop (`PARTNER_GATEWAY_CALLBACK_SENDER=inline`); its own task, its own HTTP
clients, its writes through its process's group commit. Several processes share the work by
claiming events (FOR UPDATE SKIP LOCKED, a lease; store/repositories/callback_deliveries.py): at
least once, a dead process's events retaken after the lease.

    hand-off       a fresh event, inserted claimed by this process when it has room, taken
                   in memory once its change commits (`take_fresh`; delivery/callback_events.py)
    claim loop     due events, oldest first, while fewer than `max_in_flight` are held: retries,
                   put-offs, another process's events, what had no room when it was made
      Endpoint     one per (company, scheme, host, port): its queue, its own HTTP client, at most
                   `per_endpoint` attempts at once (1 while it is failing), paused as a whole
                   after ENDPOINT_FAILURES failures in a row (schedule.py)
      attempt.py   the URL checked again, a signed POST to a checked address
      outcome      delivered (2xx), retried on the schedule, or given up: group-committed

Isolation: an endpoint holds what its attempts work off in half a lease at the pace it answers
(`Endpoint.room`: a few for one that hangs, hundreds for a fast one); more of its events, and
all of a paused endpoint's, are put off in the store without an attempt, so a hanging or
failing partner never holds the slots other companies' callbacks need. `counts` keeps what happened
(attempt outcomes, put-offs) for the metrics to come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection

from partner_gateway.callbacks.attempt import AttemptResult, attempt, new_client
from partner_gateway.callbacks.schedule import RetrySchedule
from partner_gateway.callbacks.secrets import SecretBox, UnreadableSecret
from partner_gateway.callbacks.urls import CallbackUrlChecker
from partner_gateway.config import Settings
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.observability import metrics
from partner_gateway.store.batching import BulkOperation, WriteBatcher
from partner_gateway.store.database import Database
from partner_gateway.store.outages import log_failure
from partner_gateway.store.repositories import callback_deliveries as store
from partner_gateway.store.repositories.callback_settings import CallbackSettingsRepository

logger = logging.getLogger(__name__)

CLAIM_BATCH = 200
UNRECORDED_ROUNDS = 32
"""Answers of one endpoint a process may hold unrecorded, in rounds of its concurrency: the
most a crash can make it send twice. Past it, new attempts wait for the group commit. 32 x 8
(256) is more than a commit's linger holds at full speed (3,000/s x 50 ms on SQLite, bench/
callbacks.py), so it bounds what a slow commit (a writer lock held elsewhere) lets pile up and
costs nothing otherwise."""
BUSY_PUT_OFF_MS = 1000
"""How long an event of an endpoint already holding its share waits before it is claimed again."""
SECRETS_TTL_SECONDS = 5.0
"""How long a company's signing secrets are kept in memory: a rotation shows within this."""
ENDPOINT_IDLE_SECONDS = 300.0


async def _record(connection: AsyncConnection, outcomes: Sequence[store.Outcome]) -> list[None]:
    await store.record_outcomes(connection, outcomes, now_ms())
    return [None] * len(outcomes)


OUTCOMES: BulkOperation[store.Outcome, None] = BulkOperation(
    "callback outcomes", lambda connection, items: _record(connection, items)
)


def schedule_from(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        first=settings.callback_retry_first_seconds,
        max_delay=settings.callback_retry_max_delay_seconds,
        window=settings.callback_retry_window_seconds,
    )


@dataclass(eq=False)
class Endpoint:
    """Where one company's callbacks to one origin go, as this process sees it."""

    key: tuple[str, str]
    client: aiohttp.ClientSession
    queue: deque[store.DueEvent] = field(default_factory=deque)
    active: int = 0
    unrecorded: int = 0
    """Attempts answered whose outcome is not committed yet."""
    failures: int = 0
    """Failed attempts in a row."""
    paused_until: int = 0  # epoch ms
    last_used: float = field(default_factory=time.monotonic)
    latency: float = 1.0
    """Seconds an attempt takes here (moving average): how long its queue may grow."""

    def room(self, concurrency: int, horizon: float) -> int:
        """How many events it may hold: what its attempts work off within `horizon` seconds (at
        least two rounds). A hanging endpoint (latency near the timeout) holds a few, a fast one
        many, so no event waits in memory past its lease."""
        return max(2 * concurrency, int(concurrency * horizon / max(self.latency, 0.001)))


def endpoint_key(company_id: str, url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return company_id, f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class CallbackSender:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        batcher: WriteBatcher,
        urls: CallbackUrlChecker,
        box: SecretBox,
        *,
        exclusive: bool = False,
        draw: Callable[[], float] = random.random,
        on_attempt: Callable[[str, float], None] = metrics.callback_attempted,
    ) -> None:
        """`on_attempt(outcome, seconds)` counts each recorded attempt: this process's metrics,
        or, in a sender process of its own, what it reports to its parent's (sender_process.py)."""
        self._database = database
        self._batcher = batcher
        self._urls = urls
        self._box = box
        self._exclusive = exclusive
        self._draw = draw
        self._on_attempt = on_attempt
        self.schedule = schedule_from(settings)
        self._timeout = settings.callback_timeout_seconds
        self._per_endpoint = settings.callback_concurrency_per_endpoint
        self._max_in_flight = settings.callback_max_in_flight
        # A claim outlives the longest an event can wait in this process: its endpoint's queue
        # (two rounds of attempts) and its own attempt.
        self._lease_ms = round(max(settings.callback_lease_seconds, 3 * self._timeout + 5) * 1000)
        self._poll = settings.callback_poll_seconds
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        # company: (valid until, its secrets, the rotation they were read after)
        self._secrets: dict[str, tuple[float, tuple[str, ...], int | None]] = {}
        self._held = 0
        self._holding: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()
        """delivered, failed, given_up, put_off: what this process did (for metrics)."""

    async def start(self) -> None:
        if self._exclusive:  # the only sender: what a previous run held when it died is due again
            released = await self._batcher.submit(store.release_claims)
            if released:
                logger.info("callbacks: %d events claimed by the previous run are due again", released)
        self._task = asyncio.create_task(self._run(), name="callback-sender")
        self._database.handoff = self

    @property
    def lease_ms(self) -> int:
        return self._lease_ms

    def room(self) -> int:
        """How many fresh events this process's writes may hand it (inserted claimed by it)."""
        return max(0, self._max_in_flight - self._held) if self._task is not None else 0

    def take_fresh(self, events: list[store.DueEvent]) -> None:
        """Events just committed, claimed by this process in their INSERT: taken as a claim's
        are (an endpoint without room or paused puts them off), without reading them back."""
        if self._task is None or not events:  # stopped since: retaken after the lease (or at the next start)
            return
        now = now_ms()
        put_off: list[store.Outcome] = []
        for event in events:
            self._take(event, now, put_off)
        if put_off:
            self._spawn(self._put_off(put_off))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; attempts under way are cancelled (their events are retaken after the
        lease, or at once by the next embedded start)."""
        if self._database.handoff is self:
            self._database.handoff = None
        tasks = [*self._attempts, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        for endpoint in self._endpoints.values():
            await endpoint.client.close()
        self._endpoints.clear()

    async def _run(self) -> None:
        while True:
            claimed = 0
            # Cleared before the claim, not after: a wake-up for events committed while it runs
            # (a sender process's, sender_process.py) makes it claim again at once.
            self._wake.clear()
            try:
                claimed = await self.claim_once()
            except Exception as error:  # one line a round while the store is away
                log_failure(logger, error, "callbacks: claiming due events failed; trying again shortly")
            if claimed < CLAIM_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
            self._forget_idle()

    async def claim_once(self) -> int:
        """Claim what is due (as much as this process may hold) and start on it; how many."""
        room = min(CLAIM_BATCH, self._max_in_flight - self._held)
        if room <= 0:
            return 0
        now = now_ms()
        due = await self._batcher.submit(lambda c: store.claim_due(c, now, room, self._lease_ms))
        put_off: list[store.Outcome] = []
        for event in due:
            self._take(event, now, put_off)
        if put_off:
            await self._put_off(put_off)
        return len(due)

    def _take(self, event: store.DueEvent, now: int, put_off: list[store.Outcome]) -> None:
        if event.id in self._holding:  # its lease ended while it waited here: it is ours still
            return
        if event.url is None:  # the company cleared its default URL, and the message has none
            self._hold(event)
            self._start(None, event)
            return
        key = endpoint_key(event.company_id, event.url)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = Endpoint(
                key, new_client(self._per_endpoint), latency=self._timeout / 2
            )
        endpoint.last_used = time.monotonic()
        last_chance = now - event.pending_since >= self.schedule.window * 1000
        if endpoint.paused_until > now and not last_chance:
            put_off.append(self._later(event, endpoint.paused_until))
        elif len(endpoint.queue) + endpoint.active >= endpoint.room(
            self._per_endpoint, self._lease_ms / 2000
        ):
            put_off.append(self._later(event, now + BUSY_PUT_OFF_MS))
        else:
            self._hold(event)
            endpoint.queue.append(event)
            self._pump(endpoint)

    def _hold(self, event: store.DueEvent) -> None:
        self._held += 1
        self._holding.add(event.id)

    def _release(self, event: store.DueEvent) -> None:
        self._held -= 1
        self._holding.discard(event.id)

    def _later(self, event: store.DueEvent, at: int) -> store.Outcome:
        spread = round(BUSY_PUT_OFF_MS * self._draw())  # so they do not all come back at once
        return store.Outcome(event.id, store.PENDING, at + spread, None)

    async def _put_off(self, outcomes: list[store.Outcome]) -> None:
        try:
            await asyncio.gather(*(self._batcher.submit_bulk(OUTCOMES, outcome) for outcome in outcomes))
        except Exception as error:  # they stay claimed: due again when the lease ends
            log_failure(logger, error, f"callbacks: putting off {len(outcomes)} events failed")
            return
        self.counts["put_off"] += len(outcomes)

    def _pump(self, endpoint: Endpoint) -> None:
        limit = self._per_endpoint if endpoint.failures == 0 else 1  # a failing endpoint: probed
        # Answers not recorded yet are what a crash sends again: bounded, so a slow commit (a
        # SQLite writer busy elsewhere) holds attempts back instead of widening that window.
        unrecorded_limit = UNRECORDED_ROUNDS * self._per_endpoint
        while (
            endpoint.queue
            and endpoint.active < limit
            and endpoint.active + endpoint.unrecorded < unrecorded_limit
        ):
            endpoint.active += 1
            self._start(endpoint, endpoint.queue.popleft())
        if endpoint.queue and endpoint.active < limit:  # held back by the bound: commit, no linger
            self._batcher.hurry()

    def _start(self, endpoint: Endpoint | None, event: store.DueEvent) -> None:
        self._spawn(self._deliver(endpoint, event))

    async def _deliver(self, endpoint: Endpoint | None, event: store.DueEvent) -> None:
        try:
            try:
                result = await self._attempt(endpoint, event)
            finally:
                # The endpoint's slot is free once it answered: the outcome's commit (a group
                # commit, an fsync on SQLite) is not the partner's time.
                if endpoint is not None:
                    endpoint.active -= 1
            outcome = self._outcome(event, result)
            if endpoint is not None:
                endpoint.unrecorded += 1
                self._learn(endpoint, result)
                self._pump(endpoint)
            recorded = False
            try:
                await self._batcher.submit_bulk(OUTCOMES, outcome)
                recorded = True
            except Exception as error:  # still claimed: attempted again after the lease (at least once)
                log_failure(logger, error, f"callbacks: recording the attempt of {event.id} failed")
            finally:
                if endpoint is not None:
                    endpoint.unrecorded -= 1
            if endpoint is not None:
                self._pump(endpoint)  # room again if the bound on unrecorded answers held it back
            if not recorded:
                return
            # Counted once recorded: what the counts say is what the store holds.
            self.counts["delivered" if outcome.state == store.DELIVERED else "failed"] += 1
            seconds = outcome.attempt.duration_ms / 1000 if outcome.attempt is not None else 0.0
            if outcome.state == store.DELIVERED:
                self._on_attempt("delivered", seconds)
            elif outcome.state == store.GIVEN_UP:
                self._on_attempt("gave_up", seconds)
            elif result[1].url_refused:
                self._on_attempt("refused_url", seconds)  # retried too: the name may resolve elsewhere later
            else:
                self._on_attempt("failed", seconds)
            if outcome.state == store.GIVEN_UP:
                self.counts["given_up"] += 1
                logger.warning("callbacks: %s given up after %d attempts", event.id, event.attempts + 1)
        finally:
            self._release(event)

    async def _attempt(self, endpoint: Endpoint | None, event: store.DueEvent) -> tuple[str, AttemptResult]:
        if endpoint is None or event.url is None:
            return "", AttemptResult(None, "no callback URL: the company's default URL was cleared", 0)
        try:
            secrets = await self._signing_secrets(event.company_id, event.secrets_rotated_at)
        except UnreadableSecret:
            return event.url, AttemptResult(
                None,
                "the signing secret does not open with this key (PARTNER_GATEWAY_CALLBACK_SECRET_KEY)",
                0,
            )
        return event.url, await attempt(
            endpoint.client, self._urls, event.url, event.body, event.id, secrets, timeout=self._timeout
        )

    def _outcome(self, event: store.DueEvent, attempted: tuple[str, AttemptResult]) -> store.Outcome:
        url, result = attempted
        now = now_ms()
        record = store.AttemptRecord(event.id, now - result.duration_ms, url, result.status, result.error,
                                     result.duration_ms)  # fmt: skip
        if result.delivered:
            return store.Outcome(event.id, store.DELIVERED, None, record)
        retry_at = None
        if url:  # without a URL there is nothing to retry
            retry_at = self.schedule.after_failure(event.pending_since, now, event.attempts + 1, self._draw)
        if retry_at is None:
            return store.Outcome(event.id, store.GIVEN_UP, None, record)
        return store.Outcome(event.id, store.PENDING, retry_at, record)

    def _learn(self, endpoint: Endpoint, attempted: tuple[str, AttemptResult]) -> None:
        """An endpoint's health from an attempt: a success ends its pause and probing; failures
        in a row pause it, and what it holds is put off until the pause ends."""
        result = attempted[1]
        endpoint.latency += 0.2 * (max(result.duration_ms / 1000, 0.001) - endpoint.latency)
        if result.delivered:
            endpoint.failures, endpoint.paused_until = 0, 0
            return
        endpoint.failures += 1
        pause = self.schedule.endpoint_pause(endpoint.failures, self._draw)
        if pause <= 0:
            return
        endpoint.paused_until = now_ms() + round(pause * 1000)
        waiting = list(endpoint.queue)
        endpoint.queue.clear()
        for event in waiting:
            self._release(event)
        if waiting:
            self._spawn(self._put_off([self._later(event, endpoint.paused_until) for event in waiting]))

    async def _signing_secrets(self, company_id: str, rotated_at: int | None) -> tuple[str, ...]:
        """The company's secrets (cached a few seconds, and read again when the event's claim saw
        a rotation the cache has not); made on first use when it has none."""
        cached = self._secrets.get(company_id)
        if (
            cached is not None
            and cached[0] > time.monotonic()
            and (rotated_at is None or (cached[2] is not None and cached[2] >= rotated_at))
        ):
            return cached[1]
        now = now_ms()
        async with self._database.read() as connection:
            secrets = await CallbackSettingsRepository(connection, self._box).signing_secrets(company_id, now)
        if not secrets:
            await self._batcher.submit(
                lambda c: CallbackSettingsRepository(c, self._box).ensure_secret(company_id, now)
            )
            async with self._database.read() as connection:
                secrets = await CallbackSettingsRepository(connection, self._box).signing_secrets(
                    company_id, now
                )
        self._secrets[company_id] = (time.monotonic() + SECRETS_TTL_SECONDS, secrets, rotated_at)
        return secrets

    def _forget_idle(self) -> None:
        horizon = time.monotonic() - ENDPOINT_IDLE_SECONDS
        for key, endpoint in list(self._endpoints.items()):
            if (
                endpoint.last_used < horizon
                and endpoint.active == 0
                and not endpoint.queue
                and not endpoint.unrecorded
            ):
                del self._endpoints[key]
                self._spawn(endpoint.client.close())
