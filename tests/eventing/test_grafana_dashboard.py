"""eventing/grafana-dashboard.json queries only metrics the functions export, with their labels."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
from prometheus_client.metrics import MetricWrapperBase

from shared import runtime
from shared.adapters import metrics
from tests.servers import ROOT

DASHBOARD = ROOT / "eventing" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}
SCRAPE_LABELS = {"instance", "job", "pod", "namespace", "container", "service"}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


@dataclass
class Query:
    metrics: list[str] = field(default_factory=list)
    matched: dict[str, set[str]] = field(default_factory=dict)  # metric -> label names in its {...}
    grouped: set[str] = field(default_factory=set)  # by (...), without (...), on (...)


def parse(expr: str) -> Query:
    """A small PromQL reader: the metric selectors, their matchers' labels, the grouping labels."""
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), f"unbalanced: {expr}"
    query = Query()
    text = STRING.sub('""', expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries: [5m], [$__rate_interval]
    text = re.sub(r"\boffset\s+-?[0-9A-Za-z_$]+", " ", text)
    for clause in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        query.grouped |= {name.strip() for name in clause.group(1).split(",") if name.strip()}
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    selectors = re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}", text)
    for selector in selectors:
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", selector.group(2)))
        assert selector.group(1), f"a selector without a metric name: {expr}"
        query.matched.setdefault(selector.group(1), set()).update(labels)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", " ", text)  # numbers
    for match in IDENT.finditer(text):
        name = match.group(0)
        called = text[match.end():].lstrip().startswith("(")
        if not called and name.lower() not in KEYWORDS:
            query.metrics.append(name)
    assert query.metrics, f"no metric in {expr}"
    return query


def exported() -> dict[str, set[str]]:
    """Every series name in shared.metrics.REGISTRY -> the labels it carries."""
    runtime.get()  # binds the queue gauges (counted in the state store) to the registry
    labels = {m._name: set(m._labelnames) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    labels.update({name: set(names) for name, names in metrics.STATE_GAUGES.items()})
    names: dict[str, set[str]] = {}
    for family in metrics.REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = labels.get(family.name, set()) | ({"le"} if suffix == "_bucket" else set())
    return names


def panels() -> list[dict]:
    board = json.loads(DASHBOARD.read_text())
    flat = []
    for panel in board["panels"]:
        flat += [panel, *panel.get("panels", [])]
    return [p for p in flat if p.get("type") != "row"]


def test_every_query_names_exported_metrics_and_labels():
    names = exported()
    checked = 0
    for panel in panels():
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            query = parse(target["expr"])
            unknown = [m for m in query.metrics if m not in names]
            assert not unknown, f"{panel['title']!r} queries {unknown}, not in shared.metrics.REGISTRY"
            available = set().union(*(names[m] for m in query.metrics)) | SCRAPE_LABELS
            for metric, used in query.matched.items():
                assert used <= names[metric], f"{panel['title']!r}: {metric} has no label {used - names[metric]}"
            assert query.grouped <= available, f"{panel['title']!r} groups by {query.grouped - available}"
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                assert label in query.grouped | SCRAPE_LABELS, f"{panel['title']!r}: legend {{{{{label}}}}}"
            checked += 1
    assert checked >= 10


def test_the_panels_the_operators_asked_for():
    titles = {p["title"]: p for p in panels()}
    exprs = {t: " ".join(x["expr"] for x in p["targets"]) for t, p in titles.items()}
    assert "queue_manager_queues" in exprs["Queues by status"]
    assert "queue_manager_telemetry_total" in exprs["Telemetry rate by outcome"]
    assert "by (kind)" in exprs["Errors by kind"]
    assert 'histogram_quantile(0.5, ' in exprs["Start latency p50 / p99"]
    assert 'histogram_quantile(0.99, ' in exprs["Start latency p50 / p99"] and 'function="start"' in exprs[
        "Start latency p50 / p99"]
    assert "queue_manager_cold_start_seconds" in exprs["Cold starts"]
    assert "by (target)" in exprs["Jobs launched by target"]
    ids = [p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("expr", "problem"), [
    ("sum(rate(queue_manager_telemetry[5m]))", "queries ['queue_manager_telemetry']"),  # the counter lacks _total
    ("histogram_quantile(0.9, sum by (le) (rate(queue_manager_request_duration_seconds[5m])))", "queries"),
    ('max(queue_manager_queues{state="pending"})', "has no label"),
    ("sum by (tenant) (rate(queue_manager_errors_total[5m]))", "groups by"),
])
def test_the_check_catches_wrong_queries(monkeypatch, expr, problem):
    monkeypatch.setattr(f"{__name__}.panels", lambda: [
        {"title": "bad", "datasource": {"uid": "${datasource}"}, "targets": [{"expr": expr, "legendFormat": ""}]}])
    with pytest.raises(AssertionError, match=re.escape(problem)):
        test_every_query_names_exported_metrics_and_labels()


def test_parse_reads_selectors_and_grouping():
    query = parse('histogram_quantile(0.99, sum by (function, le) (rate(x_bucket{function=~"st.*",code!="500"}[5m])))'
                  ' / on (function) group_left count(up offset 5m)')
    assert query.metrics == ["x_bucket", "up"]
    assert query.matched == {"x_bucket": {"function", "code"}}
    assert query.grouped == {"function", "le"}
