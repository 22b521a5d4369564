"""The dashboard, the alert rules and docs/operations.md name only metrics the gateway has, and
docs/operations.md describes every one it has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import partner_gateway.observability.metrics  # noqa: F401 - registers the gateway's metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
_NAME = re.compile(r"\bpartner_gateway_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exposed_names() -> set[str]:
    """Every sample name the process can expose (without values: families are listed as collected)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return {name for name in names if name.startswith("partner_gateway_")}


def families() -> set[str]:
    return {name.removesuffix("_total") for name in exposed_names() if not name.endswith(_SUFFIXES[:3])}


def named_in(text: str) -> set[str]:
    return set(_NAME.findall(text))


def test_the_dashboard_queries_only_metrics_the_gateway_has() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert expressions
    unknown = named_in("\n".join(expressions)) - exposed_names()
    assert not unknown, unknown


def test_the_alert_rules_query_only_metrics_the_gateway_has_and_say_what_to_do() -> None:
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert alerts
    unknown = named_in("\n".join(rule["expr"] for rule in alerts)) - exposed_names()
    assert not unknown, unknown
    operations = (DOCS / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", operations, flags=re.MULTILINE)
    }
    for rule in alerts:
        assert {"alert", "expr", "for", "labels", "annotations"} <= rule.keys(), rule
        runbook = rule["annotations"]["runbook"]
        assert runbook.startswith("docs/operations.md#"), runbook
        assert runbook.split("#", 1)[1] in anchors, runbook
        assert f"`{rule['alert']}`" in operations, rule["alert"]


def test_operations_md_describes_every_metric() -> None:
    operations = (DOCS / "operations.md").read_text()
    described = {
        f"partner_gateway_{name}" for name in re.findall(r"^\| `([a-z_]+)`", operations, re.MULTILINE)
    }
    described |= {name.removesuffix("_total") for name in described}
    assert families() <= described | {"partner_gateway_build_info"}, families() - described
    assert "build_info" in operations
