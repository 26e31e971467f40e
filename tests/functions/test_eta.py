"""Expected finish times from the history of finished jobs (shared/core/eta.py), through the
functions, on both backends: the history counters, a queue's ETA under a limit, a running
job's blend of history and progress, the plan's estimate, and an unknown kind said so."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from shared import runtime
from shared.core import clock
from tests.functions.test_backfill import backfill, start, state

LOADER, CONNECTOR = "loader-producer", "arango-connector"
MINUTE = 60.0


def stamp(seconds_ago: float) -> str:
    return clock.format(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago))


def report(client: Any, queue_id: str, job: dict[str, Any], status: str, **extra: Any) -> None:
    body = {"type": "telemetry", "queue_id": queue_id, "job_id": job["id"], "status": status, **extra}
    r = client("telemetry").post("/", json=body)
    assert r.status_code == 200, r.text


def history(client: Any, days: int = 4, seconds: float = MINUTE) -> str:
    """A finished day-partitioned backfill whose every Job took `seconds` for its day."""
    q = start(client, backfill(f"2023-01-01:2023-01-{days:02d}", partition="day"))["data"]["queue_id"]
    for job in state(client, q)["jobs"]:
        report(client, q, job, "finished", started_at=stamp(1000 + seconds), finished_at=stamp(1000),
               records_written=600)
    assert state(client, q)["status"] == "finished"
    return q


def test_history_counts_each_kind_and_a_queue_under_a_limit_waits_its_turns(client: Any, monkeypatch) -> None:
    history(client)
    monkeypatch.setenv("JOB_LIMITS", json.dumps({LOADER: 2}))
    runtime.reset()
    q = start(client, backfill("2024-01-01:2024-01-06", partition="day"))["data"]["queue_id"]
    shown = state(client, q)
    eta = shown["eta"]
    # six days, two at a time, a minute each: three turns
    assert eta["seconds"] == pytest.approx(3 * MINUTE, abs=1.5), eta
    assert eta["rates"][f"{LOADER}/api_candles_1d"]["seconds_per_job"] == pytest.approx(MINUTE, abs=0.01)
    assert eta["rates"][f"{LOADER}/api_candles_1d"]["records_per_second"] == pytest.approx(10, abs=0.01)
    pending = [j for j in shown["jobs"] if j["status"] == "pending"]
    # each pending job ends after its turn: the second pair of days at 2 minutes, the third at 3
    assert sorted(eta["jobs"][j["id"]] for j in pending) == pytest.approx([2 * MINUTE] * 4 + [3 * MINUTE] * 4,
                                                                          abs=1.5)
    assert clock.seconds_between(stamp(0), eta["finish_at"]) == pytest.approx(3 * MINUTE, abs=5)


def test_a_running_job_blends_its_progress_with_the_history(client: Any) -> None:
    history(client)
    q = start(client, backfill("2024-01-01:2024-01-01", partition="day"))["data"]["queue_id"]
    loader, connector = state(client, q)["jobs"]
    # half of its day loaded in 40 s: its own pace says 40 s more, the history 20 s; weighted by
    # the progress (0.5): 30 s
    report(client, q, loader, "running", started_at=stamp(40), last_loaded_timestamp="2024-01-01T12:00:00Z")
    report(client, q, connector, "running", started_at=stamp(40), last_loaded_timestamp="2024-01-01T12:00:00Z")
    eta = state(client, q)["eta"]
    assert eta["jobs"][loader["id"]] == pytest.approx(30, abs=2), eta
    assert eta["seconds"] == pytest.approx(30, abs=2)


def test_the_plan_estimates_a_duration_and_an_unknown_kind_says_so(client: Any) -> None:
    history(client)
    plan = client("start").post("/queues/plan", json=backfill("2024-02-01:2024-02-10", partition="day"))
    assert plan.status_code == 200, plan.text
    assert plan.json()["data"]["estimate"]["seconds"] == pytest.approx(MINUTE, abs=1)  # all ten at once
    graph = {"target": "graph-builder", "type": "gnn_graph", "collection_inputs": ["btc_candles_1d_{period}"],
             "collection_output": "btc_graph_{period}"}
    other = backfill("2024-03-01:2024-03-02", partition="day", requests=backfill("x:y")["requests"] + [graph])
    unknown = client("start").post("/queues/plan", json=other).json()["data"]["estimate"]
    assert unknown["seconds"] is None and "graph-builder/gnn_graph" in unknown["basis"]


def test_an_ended_queue_has_no_eta(client: Any) -> None:
    q = history(client)
    assert "eta" not in state(client, q)


def test_a_streaming_queue_has_no_finish_and_a_bad_start_stamp_is_no_history(client: Any) -> None:
    q = start(client, backfill("2023-01-01:2023-01-01", partition="day"))["data"]["queue_id"]
    loader, connector = state(client, q)["jobs"]
    report(client, q, loader, "finished", started_at="0001-01-01T00:00:00Z", records_written=5)
    took = runtime.get().store.counters("h.")["h.loader-producer.api_candles_1d.ms"]
    assert 0 <= took < 10_000, "a start 2,000 years before its launch is a bad stamp: from the launch"
    ws = start(client, {"symbol": "ETHUSDT", "time_range": "2024-01-01:2024-01-31", "requests": [
        {"target": "loader-producer", "type": "ws_trades"}]})["data"]["queue_id"]
    eta = state(client, ws)["eta"]
    assert eta["seconds"] is None and "until stopped" in eta["basis"]
    ancient = start(client, backfill("0001-01-01:0021-12-31"))["data"]["queue_id"]
    assert state(client, ancient)["eta"]["seconds"] is None  # no history: unknown, not a 500
