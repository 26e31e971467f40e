"""The schedule metrics of shared/adapters/metrics.py, read through prometheus_client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from shared.adapters import metrics
from shared.adapters.metrics import ScheduleGauges

NEXT = "queue_manager_schedule_next_run_timestamp_seconds"
LAST = "queue_manager_schedule_last_run_timestamp_seconds"
ELAPSED = "queue_manager_schedule_run_elapsed_seconds"
ESTIMATE = "queue_manager_schedule_run_estimate_seconds"
FAMILIES = (NEXT, LAST, ELAPSED, ESTIMATE)
_SAMPLE = re.compile(r'^(\w+)\{schedule="([^"]*)"\} (\S+)$')


def _row(schedule: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"schedule": schedule, "paused": False, "next_run": None, "last_run": None,
                           "run_elapsed": None, "run_estimate": None}
    row.update(values)
    return row


def _exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def _samples(text: str) -> dict[tuple[str, str], float]:
    """(family, schedule) -> value of every schedule gauge sample in an exposition."""
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) in FAMILIES:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def _scrape(read: Any) -> str:
    registry = CollectorRegistry()
    registry.register(ScheduleGauges(read))
    return _exposition(registry)


def test_rows_render_one_sample_per_known_value() -> None:
    text = _scrape(lambda: [
        _row("nightly", next_run=1_800_000_000.0, last_run=1_799_913_600.0, run_elapsed=125.5, run_estimate=600.0),
        _row("hourly", next_run=1_799_999_999.25),
    ])
    assert _samples(text) == {
        (NEXT, "nightly"): 1_800_000_000.0, (LAST, "nightly"): 1_799_913_600.0,
        (ELAPSED, "nightly"): 125.5, (ESTIMATE, "nightly"): 600.0,
        (NEXT, "hourly"): 1_799_999_999.25,
    }
    for name in FAMILIES:
        assert f"# TYPE {name} gauge" in text


def test_none_values_give_no_sample() -> None:
    samples = _samples(_scrape(lambda: [_row("idle"), _row("done", last_run=1_700_000_000.0)]))
    assert samples == {(LAST, "done"): 1_700_000_000.0}


def test_a_paused_schedule_has_no_next_run_but_keeps_its_latest_run() -> None:
    samples = _samples(_scrape(lambda: [
        _row("paused", paused=True, next_run=1_800_000_000.0, last_run=1_799_000_000.0,
             run_elapsed=30.0, run_estimate=60.0),
        _row("active", next_run=1_800_000_060.0),
    ]))
    assert (NEXT, "paused") not in samples
    assert samples[(NEXT, "active")] == 1_800_000_060.0
    assert samples[(LAST, "paused")] == 1_799_000_000.0
    assert samples[(ELAPSED, "paused")] == 30.0 and samples[(ESTIMATE, "paused")] == 60.0


def test_integer_values_render_as_floats() -> None:
    samples = _samples(_scrape(lambda: [_row("n", next_run=1_800_000_000, run_estimate=0)]))
    assert samples == {(NEXT, "n"): 1_800_000_000.0, (ESTIMATE, "n"): 0.0}


def test_a_raising_read_gives_the_families_empty() -> None:
    def read() -> list[dict[str, Any]]:
        raise ConnectionError("state store down")

    text = _scrape(read)  # does not raise
    assert _samples(text) == {}
    for name in FAMILIES:
        assert f"# TYPE {name} gauge" in text


def test_a_bad_row_gives_the_families_empty_rather_than_a_partial_scrape() -> None:
    text = _scrape(lambda: [_row("good", next_run=1.0), {"paused": False, "next_run": 2.0}])
    assert _samples(text) == {}
    assert f"# TYPE {NEXT} gauge" in text


def test_describe_yields_the_empty_families() -> None:
    described = list(ScheduleGauges(lambda: [_row("x", next_run=1.0)]).describe())
    assert [f.name for f in described] == list(FAMILIES)
    assert all(f.type == "gauge" and f.samples == [] for f in described)


def test_the_schedule_gauges_are_listed_with_the_state_gauges() -> None:
    # tests/eventing/test_prometheus_rules.py checks the alerts against STATE_GAUGES
    for name in FAMILIES:
        assert metrics.STATE_GAUGES[name] == ("schedule",)


def test_tick_outcomes_are_the_documented_ones_and_exposed_from_the_start() -> None:
    text = _exposition(metrics.REGISTRY)
    [help_line] = [x for x in text.splitlines() if x.startswith("# HELP queue_manager_schedule_ticks_total ")]
    [listed] = re.findall(r"\(([a-z_, ]+)\)", help_line)
    assert tuple(listed.split(", ")) == metrics.SCHEDULE_TICK_OUTCOMES
    for outcome in metrics.SCHEDULE_TICK_OUTCOMES:
        assert re.search(rf'^queue_manager_schedule_ticks_total\{{outcome="{outcome}"\}} \d', text, re.M), outcome


def test_tick_counter_counts_by_outcome() -> None:
    before = metrics.SCHEDULE_TICKS.labels("missed")._value.get()
    metrics.SCHEDULE_TICKS.labels("missed").inc(2)
    text = _exposition(metrics.REGISTRY)
    [value] = re.findall(r'^queue_manager_schedule_ticks_total\{outcome="missed"\} (\S+)$', text, re.M)
    assert float(value) == before + 2


# --------------------------------------------------------------------------------------------
# bind_state
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def rebinding() -> Iterator[None]:
    """Restore the collectors bound before the test."""
    saved = list(metrics._collectors)
    yield
    for collector in metrics._collectors:
        metrics.REGISTRY.unregister(collector)
    metrics._collectors[:] = saved
    for collector in saved:
        metrics.REGISTRY.register(collector)


def _count() -> dict[str, int]:
    return {"pending": 1}


def test_bind_state_with_schedules_exposes_them(rebinding: None) -> None:
    metrics.bind_state(_count, schedules=lambda: [_row("nightly", next_run=1_800_000_000.0)])
    text = _exposition(metrics.REGISTRY)
    assert _samples(text) == {(NEXT, "nightly"): 1_800_000_000.0}
    assert 'queue_manager_queues{status="pending"} 1.0' in text


def test_a_second_bind_state_replaces_the_schedule_gauges(rebinding: None) -> None:
    metrics.bind_state(_count, schedules=lambda: [_row("old", next_run=1.0)])
    metrics.bind_state(_count, lambda: {("gnn-trainer", "pending"): 2},
                       schedules=lambda: [_row("new", last_run=2.0)])  # no duplicate-timeseries error
    text = _exposition(metrics.REGISTRY)
    assert _samples(text) == {(LAST, "new"): 2.0}
    assert text.count(f"# TYPE {NEXT} gauge") == 1
    assert sum(isinstance(c, ScheduleGauges) for c in metrics._collectors) == 1


def test_bind_state_without_schedules_drops_them(rebinding: None) -> None:
    metrics.bind_state(_count, schedules=lambda: [_row("old", next_run=1.0)])
    metrics.bind_state(_count)
    text = _exposition(metrics.REGISTRY)
    assert NEXT not in text
    assert 'queue_manager_queues{status="pending"} 1.0' in text
