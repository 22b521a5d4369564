"""Charts of the company's statistics over time: the API's /messages/stats, drawn by Chart.js
(installed by npm from package.json, served from where npm put it). Without the library the page
says charts are unavailable and still shows every figure in its table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from litestar import Response, get
from litestar.response import Redirect

from partner_gateway.api.deps import RuntimeDep
from partner_gateway.api.problems import ProblemError
from partner_gateway.api.stats import stats_page
from partner_gateway.console.common import AnyRequest, render, session_or_none, to_sign_in

CHART_JS = Path(__file__).resolve().parents[3] / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
"""Where `npm ci` (scripts/bootstrap) puts Chart.js in a checkout; absent in an installed wheel."""


def _default_window(bucket: str) -> tuple[str, str]:
    """The last 7 days by day, or the last 24 hours by hour, ending with the current bucket."""
    now = datetime.now(UTC)
    if bucket == "hour":
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start = end - timedelta(hours=24)
        return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")
    end_day = now.date() + timedelta(days=1)
    return (end_day - timedelta(days=7)).isoformat(), end_day.isoformat()


@get("/stats")
async def stats(request: AnyRequest, runtime: RuntimeDep) -> Response[str] | Redirect:
    session = await session_or_none(runtime, request)
    if session is None:
        return to_sign_in()
    query = request.query_params
    bucket = query.get("bucket") or "day"
    start_default, end_default = _default_window(bucket if bucket in ("hour", "day") else "day")
    form = {
        "bucket": bucket,
        "startDate": query.get("startDate") or start_default,
        "endDate": query.get("endDate") or end_default,
        "channel": query.get("channel") or "",
    }
    errors: list[tuple[str, str]] = []
    figures = None
    try:
        page = await stats_page(
            runtime, session.company_id, form["startDate"], form["endDate"], form["channel"] or None, bucket
        )
        figures = msgspec.to_builtins(page)
    except ProblemError as problem:
        if problem.status != 400:
            raise
        errors = problem.errors or [("query", problem.detail)]
    return await render(
        runtime,
        session,
        "stats.html",
        "stats",
        status_code=400 if errors else 200,
        form=form,
        channels=runtime.channels.names,
        figures=figures,
        errors=errors,
    )


@get("/vendor/chart.umd.min.js", sync_to_thread=False)
def chart_js() -> Response[bytes]:
    if not CHART_JS.is_file():
        return Response(content=b"", status_code=404, media_type="text/javascript")
    return Response(
        content=CHART_JS.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
