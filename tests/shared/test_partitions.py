"""Partitioned requests: periods, units, the lineage per period, and the coverage answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.core import coverage, facts, lifecycle, lineage, partitions
from shared.core.errors import InvalidInput
from shared.core.models import JobStatus, QueueStart, Telemetry

D = dt.date.fromisoformat
NOW = "2025-01-01T00:00:00.000Z"


def backfill(time_range: str = "2020-01-01:2024-12-31", **extra: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "time_range": time_range, "partition": "month", **extra, "requests": [
        {"target": "loader-producer", "type": "api_candles_5m"},
        {"target": "arango-connector", "type": "api_candles_5m"},
        {"target": "graph-builder", "type": "gnn_graph", "collection_inputs": ["btc_candles_5m_{period}"],
         "collection_output": "btc_graph_{period}"},
        {"target": "gnn-trainer", "type": "gnn_train", "graph_collection": "btc_graph_{period}",
         "model_output": "btc_model_{period}"}]}


def test_periods_are_calendar_months_or_days_clipped_to_the_range() -> None:
    months = partitions.periods(D("2024-01-15"), D("2024-03-10"), "month")
    assert months == [("2024_01", D("2024-01-15"), D("2024-01-31")), ("2024_02", D("2024-02-01"), D("2024-02-29")),
                      ("2024_03", D("2024-03-01"), D("2024-03-10"))]
    days = partitions.periods(D("2024-02-28"), D("2024-03-01"), "day")
    assert [name for name, _, _ in days] == ["2024_02_28", "2024_02_29", "2024_03_01"]
    assert len(partitions.periods(D("2020-01-01"), D("2024-12-31"), "month")) == 60


def test_sixty_months_of_four_requests_pair_each_period_with_its_own_producers() -> None:
    command = QueueStart.parse(backfill())
    units = partitions.units(command)
    assert len(units) == 240
    assert [u.period for u in units[:4]] == ["2020_01"] * 4 and units[-1].period == "2024_12"
    needs = lineage.plan(command, units=units)
    state = lifecycle.new_queue(queue_id="q", command=command, now=NOW, needs=needs, units=units)
    by_index = {j.index: j for j in state.jobs}
    for job in state.jobs:
        for need in job.needs:  # every need is within the same period
            assert by_index[need.job].period == job.period, (job.id, need)
    june = [j for j in state.jobs if j.period == "2024_06"]
    assert [(j.target, j.time_range) for j in june][:2] == [("loader-producer", "2024-06-01:2024-06-30")] * 1 + [
        ("arango-connector", "2024-06-01:2024-06-30")]
    assert june[2].params == {"collection_inputs": ["btc_candles_5m_2024_06"], "collection_output": "btc_graph_2024_06"}
    assert june[0].kafka_topic == june[1].kafka_topic == "btc_candles_5m_2024_06"
    assert [(by_index[n.job].target, n.until) for n in june[3].needs] == [("graph-builder", "finished")]


def test_newest_first_and_a_clipped_first_month_keep_the_seed_names() -> None:
    command = QueueStart.parse(backfill("2024-01-15:2024-03-31", newest_first=True))
    state = lifecycle.new_queue(queue_id="q", command=command, now=NOW, needs=lineage.plan(command))
    loaders = [j for j in state.jobs if j.target == "loader-producer"]
    assert [(j.period, j.time_range, j.kafka_topic) for j in loaders] == [
        ("2024_03", "2024-03-01:2024-03-31", "btc_candles_5m_2024_03"),
        ("2024_02", "2024-02-01:2024-02-29", "btc_candles_5m_2024_02"),
        ("2024_01", "2024-01-15:2024-01-31", "btc_candles_5m_2024_01")]


def test_an_unpartitioned_request_depends_on_every_period_it_names() -> None:
    payload = backfill("2024-01-01:2024-03-31")
    payload["requests"] = payload["requests"][:2] + [
        {"target": "gnn-trainer", "type": "gnn_train", "partition": "none", "depends_on": [1],
         "model_output": "btc_model_q1"}]
    command = QueueStart.parse(payload)
    units = partitions.units(command)
    assert [u.period for u in units] == [None] + ["2024_01"] * 2 + ["2024_02"] * 2 + ["2024_03"] * 2
    needs = lineage.plan(command, units=units)
    assert sorted(n.job for n in needs[0]) == [2, 4, 6]  # the three connectors


def test_too_many_jobs_is_a_400_naming_the_request() -> None:
    payload = backfill("2020-01-01:2024-12-31", partition="day")
    with pytest.raises(InvalidInput) as caught:
        partitions.units(QueueStart.parse(payload))
    assert "more than 1000" in caught.value.message and caught.value.details[0]["loc"] == ["requests", 0, "partition"]


def test_a_period_placeholder_is_validated_as_a_name() -> None:
    bad = backfill()
    bad["requests"][2]["collection_inputs"] = ["btc_{month}"]
    with pytest.raises(ValueError, match="not a valid ArangoDB collection name"):
        QueueStart.parse(bad)


def _state(payload: dict[str, Any], queue_id: str = "q1") -> Any:
    command = QueueStart.parse(payload)
    return lifecycle.new_queue(queue_id=queue_id, command=command, now=NOW, needs=lineage.plan(command))


def _finish(state: Any, period: str, records: int, gaps: list[dict[str, str]] | None = None) -> None:
    for job in state.jobs:
        if job.period == period and job.target in coverage.KINDS:
            lifecycle.apply_telemetry(state, Telemetry(queue_id=state.id, job_id=job.id, status="finished",
                                                       records_written=records, gaps=gaps), NOW)


def test_coverage_entries_follow_the_jobs_and_answer_per_period() -> None:
    state = _state(backfill("2024-01-01:2024-04-30") | {"requests": backfill()["requests"][:2]})
    _finish(state, "2024_01", 100)
    _finish(state, "2024_02", 200, gaps=[{"from": "2024-02-03T10:00:00Z", "to": "2024-02-03T12:00:00Z"}])
    state.jobs[-1].status = JobStatus.ERROR  # April's connector
    found = coverage.entries(state)
    assert len(found) == 8 and {e["k"] for e in found} == {"topic", "collection"}
    answer = coverage.periods(found, D("2023-12-01"), D("2024-05-31"), "month")
    assert [(p["period"], p["status"]) for p in answer] == [
        ("2023_12", "missing"), ("2024_01", "loaded"), ("2024_02", "loaded"), ("2024_03", "in_flight"),
        ("2024_04", "in_flight"), ("2024_05", "missing")]
    assert answer[1]["records"] == 100 and answer[1]["queue_id"] == "q1" and answer[1]["kind"] == "collection"
    assert answer[2]["gaps"] == [{"from": "2024-02-03T10:00:00Z", "to": "2024-02-03T12:00:00Z"}]
    # April: the loader still in flight covers it (a topic); only collections asked: failed.
    collections = [e for e in found if e["k"] == "collection"]
    assert coverage.cover(collections, "2024_04", "2024-04-01", "2024-04-30")["status"] == "failed"
    # A dropped collection (ArangoDB's catalog) no longer covers: its topic still does.
    gone = coverage.periods(collections, D("2024-01-01"), D("2024-01-31"), "month", exists=set())
    assert gone[0]["status"] == "missing"


def test_days_of_several_queues_cover_a_month_together_and_part_of_it_is_partial() -> None:
    days = {"requests": backfill()["requests"][:2], "partition": "day"}
    first = _state(backfill("2024-06-01:2024-06-15") | days, "qa")
    second = _state(backfill("2024-06-16:2024-06-30") | days, "qb")
    for state in (first, second):
        for job in state.jobs:
            job.status = JobStatus.FINISHED
    found = coverage.entries(first) + coverage.entries(second)
    june = coverage.periods(found, D("2024-06-01"), D("2024-06-30"), "month")[0]
    assert (june["status"], june["queues"]) == ("loaded", ["qa", "qb"])
    half = coverage.periods(coverage.entries(first), D("2024-06-01"), D("2024-06-30"), "month")[0]
    assert (half["status"], half["queues"]) == ("partial", ["qa"])


def test_progress_leaves_the_facts_alone_and_a_finish_changes_them() -> None:
    state = _state(backfill("2024-01-01:2024-02-29") | {"requests": backfill()["requests"][:2]})
    job = state.jobs[0]
    job.status = JobStatus.RUNNING
    before = facts.of(state)
    job.records_written = 50  # progress
    assert facts.of(state) == before
    job.status = JobStatus.FINISHED
    after = facts.of(state)
    assert after != before and '"r":50' in after


def test_a_loader_and_its_connector_must_share_one_partition() -> None:
    payload = backfill("2024-06-01:2024-06-30")
    payload["requests"] = payload["requests"][:2]
    payload["requests"][1]["partition"] = "day"
    with pytest.raises(InvalidInput, match="partitioned differently"):
        partitions.units(QueueStart.parse(payload))


def test_sequential_mode_pairs_the_periods_of_consecutive_requests() -> None:
    payload = backfill("2024-01-01:2024-12-31", mode="sequential")
    command = QueueStart.parse(payload)
    units = partitions.units(command)
    needs = lineage.plan(command, units=units)
    assert sum(len(n) for n in needs) == 3 * 12  # each unit after the same month of the request before
    for i, unit in enumerate(units):
        assert all(units[n.job].period == unit.period and units[n.job].request == unit.request - 1 for n in needs[i])


def test_a_leading_period_placeholder_is_refused_like_the_name_it_makes() -> None:
    bad = backfill()
    bad["requests"][2]["collection_output"] = "{period}_graph"
    with pytest.raises(ValueError, match="not a valid ArangoDB collection name"):
        QueueStart.parse(bad)


def test_unpartitioned_requests_count_towards_the_job_limit() -> None:
    payload = backfill("2024-01-01:2025-04-21", partition="day")  # 477 days x 2 = 954 Jobs
    payload["requests"] = payload["requests"][:2] + [
        {"target": "gnn-trainer", "type": f"t{i}", "partition": "none", "model_output": f"m{i}"} for i in range(48)]
    with pytest.raises(InvalidInput, match="more than 1000"):
        partitions.units(QueueStart.parse(payload))


def test_periods_are_counted_before_any_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    for partition, (lo, hi) in {"day": ("2024-02-27", "2025-03-02"), "month": ("2023-11-15", "2025-02-01")}.items():
        start, end = D(lo), D(hi)
        assert partitions.count_periods(start, end, partition) == len(partitions.periods(start, end, partition))

    def made(*args: Any) -> None:
        raise AssertionError(f"periods {args} made for a queue refused for its size")

    monkeypatch.setattr(partitions, "periods", made)  # millions of days are not built to be refused
    with pytest.raises(InvalidInput, match="3120608"):
        partitions.units(QueueStart.parse(backfill("0002-03-27:8546-03-02", partition="day")))
