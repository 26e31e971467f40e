"""The alerts of eventing/prometheus-rule.yaml, checked and unit-tested with the real promtool.

The PrometheusRule's ``spec.groups`` are written, as they are in the file, to a plain rule
file; ``promtool check rules`` lints it and ``promtool test rules`` runs
tests/eventing/prometheus-rule-tests.yaml against it. Every alert must have a firing and a
silent case there, and the metric names and labels the alerts (and the tests' input
series) use must be the ones shared/adapters/metrics.py exposes.

promtool is built (or reused) by ``tests/infra/dataplane/build.sh promtool``. When it cannot
be built the promtool tests fail if ``CI`` is set and are skipped otherwise; the checks that
need no binary always run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from shared.adapters import metrics
from shared.core.models import JobStatus, QueueStatus
from tests.conftest import ROOT
from tests.infra.missing import unavailable

RULE = ROOT / "eventing" / "prometheus-rule.yaml"
TESTS = Path(__file__).resolve().parent / "prometheus-rule-tests.yaml"
RULES_NAME = "prometheus-rule.rules.yaml"  # what TESTS' rule_files names
DATAPLANE_BUILD = ROOT / "tests" / "infra" / "dataplane" / "build.sh"
BUILD_TIMEOUT = int(os.environ.get("DATAPLANE_BUILD_TIMEOUT", "3600"))

# Metrics the alerts read that another exporter serves, and which one.
EXTERNAL = {"kafka_topic_partition_current_offset": "kafka-exporter"}
# Labels Prometheus' scrape configuration (PodMonitor/ServiceMonitor) adds to every series.
TARGET_LABELS = {"namespace", "pod", "instance", "job", "service", "container", "endpoint"}


def _rule_doc() -> dict:
    [doc] = [d for d in yaml.safe_load_all(RULE.read_text()) if d]
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return doc


def _alerts() -> dict[str, dict]:
    return {r["alert"]: r for g in _rule_doc()["spec"]["groups"] for r in g["rules"] if "alert" in r}


def _tests() -> dict:
    return yaml.safe_load(TESTS.read_text())


# --------------------------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> Path:
    if shutil.which("go") is None:
        unavailable("Go toolchain not found in PATH; cannot build promtool")
    try:
        proc = subprocess.run(["bash", str(DATAPLANE_BUILD), "promtool"], capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        unavailable(f"{DATAPLANE_BUILD} promtool timed out after {BUILD_TIMEOUT}s")
    if proc.returncode != 0:
        unavailable(f"{DATAPLANE_BUILD} promtool failed (rc={proc.returncode}):\n"
                     f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    cache = subprocess.run(["bash", str(DATAPLANE_BUILD), "--print-dir"], capture_output=True, text=True,
                           check=True).stdout.strip()
    binary = Path(cache) / "bin" / "promtool"
    assert binary.is_file(), f"{DATAPLANE_BUILD} did not produce {binary}"
    return binary


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    """tmp_path with the PrometheusRule's groups as a plain rule file and a copy of TESTS."""
    (tmp_path / RULES_NAME).write_text(yaml.safe_dump({"groups": _rule_doc()["spec"]["groups"]}, sort_keys=False))
    shutil.copyfile(TESTS, tmp_path / TESTS.name)
    return tmp_path


def _promtool(binary: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_promtool_check_rules(promtool: Path, rules_dir: Path) -> None:
    proc = _promtool(promtool, "check", "rules", RULES_NAME, cwd=rules_dir)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"SUCCESS: {len(_alerts())} rules found" in out, out


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_promtool_unit_tests_pass(promtool: Path, rules_dir: Path) -> None:
    junit = rules_dir / "junit.xml"
    proc = _promtool(promtool, "test", f"--junit={junit}", "rules", TESTS.name, cwd=rules_dir)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "SUCCESS" in out and "FAILED" not in out, out
    # every test group of the file ran and passed
    cases = ElementTree.parse(junit).getroot().findall(".//testcase")
    assert sorted(c.get("name") for c in cases) == sorted(g["name"] for g in _tests()["tests"])
    assert not [c for c in cases if c.find("failure") is not None or c.find("error") is not None]


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_promtool_unit_tests_see_a_changed_threshold(promtool: Path, rules_dir: Path) -> None:
    # The unit tests read the extracted rules: a rule changed there (here: a threshold no
    # series reaches) must make them fail, naming the alert.
    groups = _rule_doc()["spec"]["groups"]
    for rule in groups[0]["rules"]:
        if rule.get("alert") == "QueueManagerBackendDown":
            assert rule["expr"].endswith("> 0.1"), rule["expr"]
            rule["expr"] = rule["expr"].removesuffix("> 0.1") + "> 1000"
    (rules_dir / RULES_NAME).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    proc = _promtool(promtool, "test", "rules", TESTS.name, cwd=rules_dir)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "FAILED" in out and "alertname: QueueManagerBackendDown" in out, out


def test_tests_read_the_extracted_rule_file() -> None:
    assert _tests()["rule_files"] == [RULES_NAME]


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    alerts = set(_alerts())
    firing: set[str] = set()
    silent: set[str] = set()
    for group in _tests()["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    assert alerts, "no alerts in eventing/prometheus-rule.yaml"
    assert not (firing | silent) - alerts, f"tests for alerts that do not exist: {(firing | silent) - alerts}"
    assert not alerts - firing, f"alerts without a case where they fire: {sorted(alerts - firing)}"
    assert not alerts - silent, f"alerts without a case where they stay silent: {sorted(alerts - silent)}"


def test_alerts_with_a_for_are_shown_pending_before_it_elapses() -> None:
    # A silent case is only worth something if the alert was not simply inactive: for the
    # alerts that wait (`for:`), one case checks ALERTS{alertstate="pending"}.
    waiting = {name for name, rule in _alerts().items() if rule.get("for")}
    pending: set[str] = set()
    for group in _tests()["tests"]:
        for case in group.get("promql_expr_test", []):
            m = re.fullmatch(r'ALERTS\{alertname="(\w+)"\}', case["expr"].strip())
            if m and any('alertstate="pending"' in s["labels"] for s in case.get("exp_samples") or []):
                pending.add(m.group(1))
    assert not waiting - pending, f"alerts with `for:` never shown pending: {sorted(waiting - pending)}"


def test_firing_cases_state_every_label_and_annotation_of_the_alert() -> None:
    # promtool compares label sets and annotations exactly; this names what is missing.
    alerts = _alerts()
    for group in _tests()["tests"]:
        for case in group.get("alert_rule_test", []):
            rule = alerts[case["alertname"]]
            for exp in case.get("exp_alerts") or []:
                labels = exp.get("exp_labels", {})
                assert {k: labels.get(k) for k in rule.get("labels", {})} == rule.get("labels", {}), (group["name"])
                assert set(exp.get("exp_annotations", {})) == set(rule.get("annotations", {})), group["name"]


# --------------------------------------------------------------------------------------------
# The metrics the alerts read are the ones the functions expose
# --------------------------------------------------------------------------------------------


def _exposed() -> dict[str, set[str]]:
    """Every series name shared/adapters/metrics.py exposes -> its label names."""
    out: dict[str, set[str]] = {}
    for obj in vars(metrics).values():
        if not isinstance(obj, MetricWrapperBase):
            continue
        labels = set(obj._labelnames)
        name = obj._name
        if obj._type == "counter":
            out[name + "_total"] = labels
            out[name + "_created"] = labels
        elif obj._type == "histogram":
            for suffix in ("_count", "_sum", "_created"):
                out[name + suffix] = labels
            out[name + "_bucket"] = labels | {"le"}
        else:
            out[name] = labels
    for name, gauge_labels in metrics.STATE_GAUGES.items():
        out[name] = set(gauge_labels)
    return out


def _documented_values(counter_name: str) -> set[str]:
    """The label values a metric's help text lists, e.g. "by kind (client, backend, internal)"."""
    [family] = [f for f in metrics.REGISTRY.collect() if f.name == counter_name]
    [listed] = re.findall(r"\(([a-z_]+(?:, [a-z_]+)+)\)", family.documentation)
    return set(listed.split(", "))


# Label values the code emits, for the labels the alerts match on.
KNOWN_VALUES: dict[tuple[str, str], set[str]] = {
    ("queue_manager_queues", "status"): {s.value for s in QueueStatus},
    ("queue_manager_jobs", "status"): {s.value for s in JobStatus},
    ("queue_manager_job_results_total", "status"): {s.value for s in JobStatus},
    ("queue_manager_errors_total", "kind"): _documented_values("queue_manager_errors"),
    ("queue_manager_telemetry_total", "outcome"): _documented_values("queue_manager_telemetry"),
    ("queue_manager_schedule_ticks_total", "outcome"): _documented_values("queue_manager_schedule_ticks"),
}

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(?=[{\[)\s]|$)")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "and", "or", "unless",
                 "rate", "increase", "irate", "vector", "group_left", "group_right", "bool", "offset"}


def _selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric name, {label: (op, value)}) for each vector selector of a PromQL expression."""
    # drop grouping clauses and durations first: their contents are labels, not metrics
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)
    found = []
    for m in _SELECTOR.finditer(stripped):
        name = m.group(1)
        if name in _PROMQL_WORDS or re.fullmatch(r"[0-9.e]+", name):
            continue
        matchers = {k: (op, v) for k, op, v in _MATCHER.findall(m.group(2) or "")}
        found.append((name, matchers))
    return found


def test_selector_parser_finds_every_metric() -> None:
    expr = ('sum by (target) (queue_manager_jobs{status="pending"}) > 0 and on() '
            'sum(rate(queue_manager_jobs_launched_total[30m])) == 0')
    assert _selectors(expr) == [("queue_manager_jobs", {"status": ("=", "pending")}),
                                ("queue_manager_jobs_launched_total", {})]


def test_alerts_read_metrics_and_labels_the_functions_expose() -> None:
    exposed = _exposed()
    problems = []
    for alert, rule in _alerts().items():
        selectors = _selectors(rule["expr"])
        assert selectors, f"{alert}: no metric found in {rule['expr']!r}"
        for name, matchers in selectors:
            if name in EXTERNAL:
                continue
            if name not in exposed:
                problems.append(f"{alert}: {name} is not exposed by shared/adapters/metrics.py")
                continue
            for label, (op, value) in matchers.items():
                if label not in exposed[name]:
                    problems.append(f"{alert}: {name} has no label {label!r} (has {sorted(exposed[name])})")
                    continue
                known = KNOWN_VALUES.get((name, label))
                if known is None:
                    continue
                values = value.split("|") if op in ("=~", "!~") else [value]
                problems += [f"{alert}: {name}{{{label}={v!r}}} is never emitted (emitted: {sorted(known)})"
                             for v in values if v not in known]
        for grouping in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]):
            for label in filter(None, (x.strip() for x in grouping.split(","))):
                if not any(label in exposed.get(n, set()) for n, _ in selectors):
                    problems.append(f"{alert}: grouping label {label!r} is on none of its metrics")
    assert not problems, "\n".join(problems)


def test_unit_test_series_are_the_exposed_metrics() -> None:
    # An alert that reads a misspelt metric cannot fire in its firing case when the input
    # series carry the real names: this pins those names to the registry.
    exposed = _exposed()
    problems = []
    for group in _tests()["tests"]:
        for item in group.get("input_series", []):
            m = re.fullmatch(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{(.*)\}\s*", item["series"])
            assert m, item["series"]
            name, labels = m.group(1), {k for k, _, _ in _MATCHER.findall(m.group(2))}
            if name in EXTERNAL:
                continue
            if name not in exposed:
                problems.append(f"{group['name']}: {name} is not exposed by shared/adapters/metrics.py")
            elif labels - TARGET_LABELS != exposed[name]:
                problems.append(f"{group['name']}: {name} labels {sorted(labels - TARGET_LABELS)}, "
                                f"exposed {sorted(exposed[name])}")
            else:
                for label, _, value in _MATCHER.findall(m.group(2)):
                    known = KNOWN_VALUES.get((name, label))
                    if known is not None and value not in known:
                        problems.append(f"{group['name']}: {name}{{{label}={value!r}}} is never emitted")
    assert not problems, "\n".join(problems)
