"""The metrics' own rules: label values bounded, the HTTP histogram's buckets cumulative with
Prometheus' `le` (at most) semantics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from partner_gateway.observability.http import DURATION_BUCKETS, HttpMetrics
from partner_gateway.observability.metrics import OTHER, BoundedLabel


def test_a_bounded_label_keeps_its_first_values_and_folds_the_rest() -> None:
    label = BoundedLabel(3)
    assert [label(v) for v in ("a", "b", "a", "c", "d", "e", "b")] == ["a", "b", "a", "c", OTHER, OTHER, "b"]


def test_request_durations_are_cumulative_buckets_with_their_count_and_sum() -> None:
    metrics = HttpMetrics()
    for seconds in (0.0004, 0.0005, 0.003, 20.0):  # 0.0005 is in its own bucket: le means "at most"
        metrics.observe("GET", "/r", 200, seconds)
    metrics.observe("BREW", "/r", 418, 0.001)  # an unusual method counts as "other"
    registry = CollectorRegistry()
    registry.register(metrics)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}

    requests = {
        (s.labels["method"], s.labels["status"]): s.value
        for s in families["partner_gateway_http_requests"].samples
    }
    assert requests == {("GET", "200"): 4, ("other", "418"): 1}
    histogram = families["partner_gateway_http_request_duration_seconds"].samples
    buckets = {
        s.labels["le"]: s.value
        for s in histogram
        if s.name.endswith("_bucket") and s.labels["method"] == "GET"
    }
    assert buckets["0.0005"] == 2
    assert buckets["0.001"] == 2
    assert buckets["0.005"] == 3
    assert buckets[str(DURATION_BUCKETS[-1])] == 3
    assert buckets["+Inf"] == 4
    count = next(s.value for s in histogram if s.name.endswith("_count") and s.labels["method"] == "GET")
    total = next(s.value for s in histogram if s.name.endswith("_sum") and s.labels["method"] == "GET")
    assert count == 4
    assert abs(total - 20.0039) < 1e-9
    assert metrics.count("BREW", "/r", 418) == 1
