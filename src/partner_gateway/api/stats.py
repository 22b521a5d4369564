"""Aggregates of a company's messages: counts by status, delivery rate, error codes and latency
per hour or day of acceptance, read from the rows kept as statuses change (store/message_stats.py)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from partner_gateway.api.deps import CompanyId, RuntimeDep
from partner_gateway.api.problems import invalid, problem_responses
from partner_gateway.api.query_params import ChannelFilter, parse_channel, parse_date
from partner_gateway.api.schemas import ChannelStats, ErrorCodeCount, LatencyMs, StatsBucket, StatsPage
from partner_gateway.domain.statuses import FINAL_STATUSES, DeliveryStatus
from partner_gateway.domain.timefmt import format_ms
from partner_gateway.runtime import Runtime
from partner_gateway.store.message_stats import DAY_MS, HOUR_MS, percentile_ms, read_stats

BUCKETS = {"hour": HOUR_MS, "day": DAY_MS}
MAX_BUCKETS = {"hour": 7 * 24, "day": 31}
"""The longest window: 7 days by hour, 31 days by day."""
TOP_ERROR_CODES = 10
_FINAL = tuple(status.value for status in FINAL_STATUSES)


class StatsController(Controller):
    tags = ["History"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/messages/stats",
        summary="Message statistics",
        description="Per hour or day of acceptance (UTC) and channel: the messages by current "
        "deliveryStatus, the delivery rate (DELIVERED over messages whose status is final), the most "
        "frequent error codes and the time from acceptance to the first final status (p50, p95). "
        "startDate and endDate fall on whole buckets; a window spans at most 7 days by hour, 31 by day.",
        responses=problem_responses(400, 401, 429, 500, 503),
        operation_id="getMessageStats",
    )
    async def stats(
        self,
        company_id: CompanyId,
        runtime: RuntimeDep,
        start_date: Annotated[
            str | None,
            QueryParameter(
                name="startDate",
                description="First bucket's start (inclusive), required: RFC 3339 or YYYY-MM-DD",
            ),
        ] = None,
        end_date: Annotated[
            str | None,
            QueryParameter(
                name="endDate", description="Last bucket's end (exclusive), required: RFC 3339 or YYYY-MM-DD"
            ),
        ] = None,
        channel: ChannelFilter = None,
        bucket: Annotated[
            str | None, QueryParameter(name="bucket", description="hour or day (default day)")
        ] = None,
    ) -> StatsPage:
        return await stats_page(runtime, company_id, start_date, end_date, channel, bucket)


async def stats_page(
    runtime: Runtime,
    company_id: str,
    start_date: str | None,
    end_date: str | None,
    channel: str | None,
    bucket: str | None,
) -> StatsPage:
    """The company's aggregates, or the 400 problem: the API's GET /messages/stats and the
    console's charts."""
    problems: list[tuple[str, str]] = []
    size_name = "day" if bucket is None else bucket
    if size_name not in BUCKETS:
        problems.append(("bucket", "must be hour or day"))
        size_name = "day"
    size = BUCKETS[size_name]
    # Not parse_window: a stats window is required, on whole buckets, and not empty.
    start = parse_date(start_date, "startDate", problems)
    end = parse_date(end_date, "endDate", problems)
    for value, raw, field in ((start, start_date, "startDate"), (end, end_date, "endDate")):
        if raw is None:
            problems.append((field, "is required"))
        elif value is not None and value % size:
            problems.append((field, f"must fall on a whole {size_name} (UTC)"))
    if start is not None and end is not None and not start % size and not end % size:
        if start >= end:
            problems.append(("startDate", "must be before endDate"))
        elif (end - start) // size > MAX_BUCKETS[size_name]:
            problems.append(("endDate", f"at most {MAX_BUCKETS[size_name]} {size_name}s after startDate"))
    wanted_channel = parse_channel(runtime, channel, problems)
    if problems or start is None or end is None:
        raise invalid(problems)

    async with runtime.database.read() as connection:
        rows = await read_stats(
            connection, company_id, start, end, size, wanted_channel.value if wanted_channel else None
        )
    counts: dict[tuple[int, str], dict[str, int]] = {}
    errors: dict[tuple[int, str], dict[str, int]] = {}
    latencies: dict[tuple[int, str], dict[int, int]] = {}
    for channel_name, bucket_start, status, error_code, count in rows.counts:
        key = (bucket_start, channel_name)
        by_status = counts.setdefault(key, {})
        by_status[status] = by_status.get(status, 0) + count
        if error_code:
            by_code = errors.setdefault(key, {})
            by_code[error_code] = by_code.get(error_code, 0) + count
    for channel_name, bucket_start, bin_, count in rows.latencies:
        by_bin = latencies.setdefault((bucket_start, channel_name), {})
        by_bin[bin_] = by_bin.get(bin_, 0) + count
    buckets = []
    by_bucket: dict[int, list[str]] = {}
    for at, name in sorted(counts):
        by_bucket.setdefault(at, []).append(name)
    for bucket_start in range(start, end, size):
        channels = []
        for channel_name in by_bucket.get(bucket_start, []):
            key = (bucket_start, channel_name)
            by_status = {status: n for status, n in counts[key].items() if n}
            if not by_status:
                continue
            final = sum(by_status.get(status, 0) for status in _FINAL)
            top = sorted(errors.get(key, {}).items(), key=lambda item: (-item[1], item[0]))
            by_bin = latencies.get(key, {})
            channels.append(
                ChannelStats(
                    channel=channel_name,
                    total=sum(by_status.values()),
                    counts=by_status,
                    delivery_rate=by_status.get(DeliveryStatus.DELIVERED.value, 0) / final if final else None,
                    error_codes=[ErrorCodeCount(code, n) for code, n in top[:TOP_ERROR_CODES] if n],
                    latency_ms=LatencyMs(percentile_ms(by_bin, 0.5), percentile_ms(by_bin, 0.95)),
                )
            )
        buckets.append(StatsBucket(format_ms(bucket_start), format_ms(bucket_start + size), channels))
    return StatsPage(size_name, format_ms(start), format_ms(end), buckets)
