"""The gateway's Prometheus metrics, each named once, and the calls the layers make to move them.

Names follow Prometheus' conventions: the `partner_gateway_` prefix, base units (seconds),
`_total` on counters (prometheus_client adds it), histograms for latencies. Every label has a
bounded set of values: channels, statuses, carriers and providers come from configuration or
the code; error codes and company classes pass through `BoundedLabel`, which folds whatever
comes after its first values into "other". No label holds a message id or a company id.
docs/operations.md lists every metric with what it means and what to do about it.

Each process serves its own (GET /metrics, api/operations.py): an API process its requests and
accepted messages, a worker its hand-overs, carrier sessions and receipts. Counters count from
the process's start.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from partner_gateway.observability.http import HttpMetrics

OTHER = "other"
M = TypeVar("M", Counter, Gauge, Histogram)

# No `_created` series beside every counter and histogram: twice the page for a start time that
# `process_start_time_seconds` already gives.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


class BoundedLabel:
    """A label's values as given, up to `limit` distinct ones; later new ones read "other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class _Children(Generic[M]):
    """A labelled metric's children by their label values, remembered: `labels()` costs about
    0.8 µs a call (it checks and joins the values under a lock), a dictionary look-up a tenth of
    that, and a delivered SMS moves seven metrics."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


_error_code = BoundedLabel(200)
_company_class = BoundedLabel(20)
_problem = BoundedLabel(50)

HTTP = HttpMetrics()
REGISTRY.register(HTTP)

BUILD_INFO = Gauge(
    "partner_gateway_build_info", "Always 1: the version and role of this process.", ("version", "role")
)

# -- messages --------------------------------------------------------------------------------------
MESSAGES_ACCEPTED = Counter(
    "partner_gateway_messages_accepted",
    "Messages accepted (answered 202 and stored), by channel. Idempotent replays are not counted.",
    ("channel",),
)
STATUS_CHANGES = Counter(
    "partner_gateway_message_status_changes",
    "Messages whose status changed, by channel and the new status (committed changes only).",
    ("channel", "status"),
)
MESSAGE_ERRORS = Counter(
    "partner_gateway_message_errors",
    "Messages that reached ERROR, EXPIRED or UNKNOWN with an error code, by channel and code.",
    ("channel", "error_code"),
)
HANDOVER_LATENCY = Histogram(
    "partner_gateway_handover_latency_seconds",
    "Time from a message's acceptance to a provider accepting it (its first hand-over that succeeded).",
    ("channel",),
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
FINAL_STATUS_LATENCY = Histogram(
    "partner_gateway_final_status_latency_seconds",
    "Time from a message's acceptance to its final status (DELIVERED, ERROR, EXPIRED), by channel and status.",
    ("channel", "status"),
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
HANDOVERS = Counter(
    "partner_gateway_handovers",
    "Hand-overs to providers by channel and outcome: accepted, retry, throttled, failed, "
    "ambiguous (no answer), fallback (RCS sent as SMS), expired, no_provider, opted_out.",
    ("channel", "outcome"),
)
PROVIDER_THROTTLED = Counter(
    "partner_gateway_provider_throttled",
    "Hand-overs a provider refused as too many (SMPP ESME_RTHROTTLED/ESME_RMSGQFUL, HTTP 429), by provider.",
    ("provider",),
)
REPORTS = Counter(
    "partner_gateway_reports",
    "Provider reports (receipts, webhooks) recorded, by provider and outcome: applied, duplicate, "
    "or parked (its submission not recorded yet).",
    ("provider", "outcome"),
)
HTTP_PROBLEMS = Counter(
    "partner_gateway_http_problems",
    "Problem documents answered, by problem type (the last part of its `type` URI).",
    ("problem",),
)

# -- SMPP ------------------------------------------------------------------------------------------
SMPP_SUBMITS = Counter(
    "partner_gateway_smpp_submits",
    "submit_sm by carrier and result: accepted, rejected, throttled, no_answer, not_connected, invalid.",
    ("carrier", "result"),
)
SMPP_RECEIPTS = Counter(
    "partner_gateway_smpp_receipts", "Delivery receipts (deliver_sm) received, by carrier.", ("carrier",)
)

# -- rate limits and callbacks (the calls below are made by their features) -----------------------
RATE_LIMITED = Counter(
    "partner_gateway_rate_limited_requests",
    "Requests refused with 429, by operation (sends, reads) and company class.",
    ("operation", "company_class"),
)
CALLBACK_ATTEMPTS = Counter(
    "partner_gateway_callback_attempts",
    "Status callbacks attempted, by outcome: delivered (2xx), failed (will retry), gave_up, refused_url.",
    ("outcome",),
)
CALLBACK_DURATION = Histogram(
    "partner_gateway_callback_attempt_duration_seconds",
    "Time one callback attempt took, until the partner's answer or the timeout.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CALLBACK_SENDER_RESTARTS = Counter(
    "partner_gateway_callback_sender_restarts",
    "Times this process started its callback sender process again after it died.",
)
CALLBACK_BACKLOG = Gauge(
    "partner_gateway_callback_backlog", "Status callbacks waiting to be sent (due or waiting for a retry)."
)

# -- read at scrape time (scrape.py) -------------------------------------------------------------
OUTBOX_ITEMS = Gauge(
    "partner_gateway_outbox_items",
    "Outbox items by state: queued, published (to RabbitMQ), claimed, written (being handed over).",
    ("state",),
)
OUTBOX_DUE = Gauge("partner_gateway_outbox_due_items", "Queued outbox items due now: the hand-over backlog.")
OUTBOX_OLDEST_DUE = Gauge(
    "partner_gateway_outbox_oldest_due_age_seconds",
    "How long the oldest due outbox item has been due (0 when none is): the hand-over lag.",
)
PARKED_RECEIPTS = Gauge(
    "partner_gateway_parked_receipts",
    "Provider reports parked until their submission is recorded (unmatched receipts).",
)
QUEUE_MESSAGES = Gauge(
    "partner_gateway_queue_messages",
    "Messages ready in a channel's RabbitMQ work queue, or its dead-letter queue (channel 'dead-letter').",
    ("channel",),
)
BROKER_UP = Gauge(
    "partner_gateway_broker_up",
    "1 while this process's connection to RabbitMQ is up, 0 while it is down (processes that use a broker).",
)
SCRAPE_ERRORS = Counter(
    "partner_gateway_scrape_errors",
    "Scrape-time readings that failed or took too long, by source (store, queue): their gauges keep the last value.",
    ("source",),
)


_accepted = _Children(MESSAGES_ACCEPTED)
_changes = _Children(STATUS_CHANGES)
_errors = _Children(MESSAGE_ERRORS)
_final_latency = _Children(FINAL_STATUS_LATENCY)
_handovers = _Children(HANDOVERS)
_handover_latency = _Children(HANDOVER_LATENCY)
_reports = _Children(REPORTS)
_submits = _Children(SMPP_SUBMITS)
_receipts = _Children(SMPP_RECEIPTS)
_REPORT_OUTCOMES = {"pending": "parked"}  # the store's word for a parked report


def message_accepted(channel: str) -> None:
    _accepted(channel).inc()


def status_changed(
    channel: str, status: str, error_code: str | None, *, became_final: bool, seconds_since_accepted: float
) -> None:
    """A committed status change (store/repositories/delivery/status_batch.py)."""
    _changes(channel, status).inc()
    if error_code is not None and status in ("ERROR", "EXPIRED", "UNKNOWN"):
        _errors(channel, _error_code(error_code)).inc()
    if became_final:
        _final_latency(channel, status).observe(max(0.0, seconds_since_accepted))


def handed_over(channel: str, outcome: str, seconds_since_accepted: float | None = None) -> None:
    _handovers(channel, outcome).inc()
    if seconds_since_accepted is not None:
        _handover_latency(channel).observe(max(0.0, seconds_since_accepted))


def provider_throttled(provider: str) -> None:
    PROVIDER_THROTTLED.labels(provider).inc()


def reports_recorded(outcomes: Iterable[tuple[str, str]]) -> None:
    """(provider, outcome) of each report recorded."""
    for provider, outcome in outcomes:
        _reports(provider, _REPORT_OUTCOMES.get(outcome, outcome)).inc()


def problem_answered(problem_type: str) -> None:
    HTTP_PROBLEMS.labels(_problem(problem_type.rsplit("/", 1)[-1])).inc()


def smpp_submitted(carrier: str, result: str) -> None:
    _submits(carrier, result).inc()


def smpp_receipt(carrier: str) -> None:
    _receipts(carrier).inc()


def rate_limited(operation: str, company_class: str = "default") -> None:
    """A request refused over its company's limit. `operation`: "sends" or "reads";
    `company_class`: a small set of names (the company's limit tier, say), never a company id."""
    RATE_LIMITED.labels(operation, _company_class(company_class)).inc()


def callback_attempted(outcome: str, seconds: float) -> None:
    """One callback attempt: `outcome` delivered, failed, gave_up or refused_url."""
    CALLBACK_ATTEMPTS.labels(outcome).inc()
    CALLBACK_DURATION.observe(seconds)


def callback_sender_restarted() -> None:
    """A delivering process started its callback sender process again after it died."""
    CALLBACK_SENDER_RESTARTS.inc()


def callback_backlog(waiting: int) -> None:
    """How many callbacks wait to be sent; set by the sender whenever it knows (or at scrape time
    through a scrape source, scrape.py)."""
    CALLBACK_BACKLOG.set(waiting)


# -- live objects, read when scraped -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CarrierSessions:
    """One carrier's SMPP sessions held by this process, as they are now."""

    carrier: str
    held: int  # sessions this process holds (its bind leases)
    bound: int  # of those, bound now
    in_flight: int  # submit_sm written and unanswered
    window: int  # the most that may be unanswered: window per session times sessions held


class ReportsCarrierSessions(Protocol):
    def carrier_sessions(self) -> CarrierSessions: ...


class ReportsInFlight(Protocol):
    @property
    def in_flight(self) -> int: ...


class _LiveObjects(Collector):
    """Gauges read from the live objects of this process (SMPP providers, dispatchers) at scrape
    time. Held weakly: an object that is gone no longer counts."""

    def __init__(self) -> None:
        self._carriers: weakref.WeakSet[ReportsCarrierSessions] = weakref.WeakSet()
        self._dispatchers: weakref.WeakSet[ReportsInFlight] = weakref.WeakSet()

    def track_carrier(self, provider: ReportsCarrierSessions) -> None:
        self._carriers.add(provider)

    def track_dispatcher(self, dispatcher: ReportsInFlight) -> None:
        self._dispatchers.add(dispatcher)

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(f"partner_gateway_smpp_{name}", text, labels=("carrier",))
            for name, text in (
                ("binds_held", "SMPP sessions this process holds for the carrier (its bind leases)."),
                ("binds_up", "Of those, the sessions bound now."),
                ("window_in_flight", "submit_sm written to the carrier and not answered yet."),
                ("window_size", "The most submit_sm that may be unanswered: window times sessions held."),
            )
        }
        totals: dict[str, list[int]] = {}
        for provider in list(self._carriers):
            sessions = provider.carrier_sessions()
            row = totals.setdefault(sessions.carrier, [0, 0, 0, 0])
            for index, value in enumerate(
                (sessions.held, sessions.bound, sessions.in_flight, sessions.window)
            ):
                row[index] += value
        for carrier, row in totals.items():
            for family, value in zip(families.values(), row, strict=True):
                family.add_metric((carrier,), value)
        yield from families.values()
        in_flight = GaugeMetricFamily(
            "partner_gateway_dispatch_in_flight", "Hand-overs this process's dispatcher is running now."
        )
        in_flight.add_metric((), sum(dispatcher.in_flight for dispatcher in list(self._dispatchers)))
        yield in_flight


LIVE = _LiveObjects()
REGISTRY.register(LIVE)


INBOUND = Counter(
    "partner_gateway_inbound_messages",
    "Inbound messages (MO SMS, WhatsApp and RBM user messages) by channel and outcome: stored, "
    "duplicate (stored before), unassigned (no company owns the recipient: not stored), part "
    "(a part of a concatenated SMS, kept until its message is whole).",
    ("channel", "outcome"),
)
OPT_CHANGES = Counter(
    "partner_gateway_opt_changes",
    "Opt-out list changes made by inbound keywords, by channel and action (opt_out, opt_in).",
    ("channel", "action"),
)


def inbound_recorded(channel: str, outcome: str, opt: str | None) -> None:
    INBOUND.labels(channel, outcome).inc()
    if opt is not None:
        OPT_CHANGES.labels(channel, opt).inc()
