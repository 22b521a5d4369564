"""What the rate limits cost one single look-up, in-process: the app's ASGI call with limits on
against off, alternated (issue 16).

wrk's figures on a 2-core machine shared with other work swing by tens of percent from one 10-s
run to the next, more than the few percent looked for. This measures the same request below the
HTTP server: the gateway's ASGI app (api/front.py) answering `GET /messages/status/{id}` for one
company from a SQLite store of --messages messages, in batches of --batch requests, limits on
(too high to refuse anything: the counting and the two headers) and off in turn, --rounds times.
Each batch gives µs per request; the figures are the median and the minimum of each side, and
the difference. uvicorn's share (parsing, writing two more header lines) is not in it; `run.py
--scenarios limits` measures the whole server.

    .venv/bin/python bench/limits_cost.py                     # 2,000 messages, 40 rounds of 2,000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from partner_gateway.api.app import create_app
from partner_gateway.api.rate_limits.limiter import RateLimiter
from partner_gateway.config import Settings
from partner_gateway.domain.rate_limits import Traffic
from partner_gateway.domain.timefmt import now_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.repositories.companies import CompanyRepository


async def seed(runtime: Runtime, messages: int) -> tuple[str, list[str]]:
    from partner_gateway.domain.ids import new_message_id
    from partner_gateway.domain.messages import NewMessage
    from partner_gateway.domain.statuses import Channel
    from partner_gateway.store.repositories.messages import MessageRepository

    async with runtime.database.write() as connection:
        repository = CompanyRepository(connection)
        company = await repository.create("bench", now_ms())
        issued = await repository.issue_key(company.id, now_ms())
        ids = []
        stamp = now_ms() - messages
        for number in range(messages):
            message = NewMessage(
                id=new_message_id(stamp + number),
                company_id=company.id,
                channel=Channel("SMS"),
                to="+4915112345678",
                sender=None,
                reference=None,
                created_at=stamp + number,
                expires_at=stamp + number + 86_400_000,
                callback_url=None,
                body="{}",
            )
            await MessageRepository(connection).add_accepted(message)
            ids.append(message.id)
    return issued.plain_key, ids


async def batch(app: Any, key: str, ids: list[str], count: int) -> float:
    """µs per request over `count` look-ups, each a different message."""
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())]
    received = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return received

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for number in range(count):
        scope = {
            "type": "http",
            "method": "GET",
            "path": f"/partner-gateway/v1/messages/status/{ids[number % len(ids)]}",
            "query_string": b"channel=SMS",
            "headers": headers,
        }
        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected answers: {sorted(set(statuses))}")
    return elapsed / count * 1e6


async def measure(args: argparse.Namespace, folder: Path) -> None:
    settings = Settings(
        data_dir=folder,
        rate_limit_reads_per_second=1_000_000,
        rate_limit_sends_per_second=1_000_000,
    )
    runtime = await Runtime.start(settings)
    try:
        key, ids = await seed(runtime, args.messages)
        app = create_app(settings, runtime)
        on = RateLimiter.from_settings(settings)
        off = RateLimiter.from_settings(settings.model_copy(update={"rate_limit_enabled": False}))
        figures: dict[str, list[float]] = {"on": [], "off": []}
        await batch(app, key, ids, args.batch)  # warm: caches, the key, the statements
        for _ in range(args.rounds):
            for state, limiter in (("on", on), ("off", off)):
                runtime.rate_limits = limiter
                figures[state].append(await batch(app, key, ids, args.batch))
        admitted = on.counts()
        assert sum(admitted.values()) == args.rounds * args.batch, admitted
        assert not on.refused
        print(f"{args.rounds} rounds of {args.batch:,} single look-ups each, on and off alternated")
        print("limits  median µs  min µs")
        for state, values in figures.items():
            print(f"{state:6}  {statistics.median(values):9.2f}  {min(values):6.2f}")
        median_on, median_off = statistics.median(figures["on"]), statistics.median(figures["off"])
        print(
            f"on - off: {median_on - median_off:+.2f} µs per request (median), "
            f"{min(figures['on']) - min(figures['off']):+.2f} µs (min); on / off {median_on / median_off:.1%}"
        )
        limiter = on
        company = next(iter(admitted))[0]
        started = time.perf_counter()
        for _ in range(100_000):
            limiter.admit(company, Traffic.READS)
        print(f"RateLimiter.admit alone: {(time.perf_counter() - started) * 10:.2f} µs per call")
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(measure(args, Path(folder)))


if __name__ == "__main__":
    main()
