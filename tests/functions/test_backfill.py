"""Partitioned backfills through the functions: one Job per period, skip what is covered, force,
repair, retry per period, limits per period, events per period (both backends)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import runtime

LOADER = "loader-producer"


def backfill(time_range: str, **extra: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "time_range": time_range, "partition": "month", "on_failure": "continue",
            **extra, "requests": extra.pop("requests", None) or [
                {"target": "loader-producer", "type": "api_candles_1d"},
                {"target": "arango-connector", "type": "api_candles_1d"}]}


def start(client: Any, payload: dict[str, Any], code: int = 200, **headers: str) -> dict[str, Any]:
    r = client("start").post("/queues/start", json=payload, headers=headers)
    assert r.status_code == code, r.text
    return r.json()


def state(client: Any, queue_id: str) -> dict[str, Any]:
    r = client("status").get(f"/queues/{queue_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def report(client: Any, queue_id: str, job: dict[str, Any], status: str, **extra: Any) -> None:
    body = {"type": "telemetry", "queue_id": queue_id, "job_id": job["id"], "status": status, **extra}
    r = client("telemetry").post("/", json=body)
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "applied", r.text


def finish(client: Any, queue_id: str, periods: set[str] | None = None, **extra: Any) -> None:
    for job in state(client, queue_id)["jobs"]:
        if job["status"] in ("launched", "running") and (periods is None or job["period"] in periods):
            if job["target"] == "arango-connector":
                write_collection(job["kafka_topic"])
            report(client, queue_id, job, "finished", records_written=int(job["period"][-2:]) * 1000, **extra)


def write_collection(name: str) -> None:
    """What a connector does on ArangoDB: its collection exists (coverage checks the catalog)."""
    store = runtime.get().service.store
    if store.backend == "arango" and name not in store.collection_names():  # type: ignore[attr-defined]
        store._db.create_collection(name)  # type: ignore[attr-defined]


def periods_of(data: dict[str, Any]) -> list[str]:
    return sorted({j["period"] for j in data["jobs"]})


def test_the_seed_examples_still_make_one_job_per_request(client: Any, historical: dict, realtime: dict) -> None:
    for example in (historical, realtime):
        data = start(client, example)["data"]
        assert len(data["jobs"]) == len(example["requests"])
        assert all("period" not in j for j in data["jobs"]) and "skipped" not in data
        stored = state(client, data["queue_id"])
        assert all(j.get("period") is None and j.get("time_range") is None for j in stored["jobs"])


def test_a_second_request_loads_only_the_months_nobody_covers(client: Any) -> None:
    first = start(client, backfill("2024-01-01:2024-06-30"))["data"]
    assert len(first["jobs"]) == 12 and periods_of(first)[0] == "2024_01"
    finish(client, first["queue_id"], {"2024_01", "2024_02", "2024_03"})  # the rest still loading

    second = start(client, backfill("2024-03-01:2024-09-30"))
    data = second["data"]
    assert periods_of(data) == ["2024_07", "2024_08", "2024_09"]
    assert [(s["period"], s["status"], s["queue_id"]) for s in data["skipped"]] == [
        ("2024_03", "loaded", first["queue_id"]), ("2024_04", "in_flight", first["queue_id"]),
        ("2024_05", "in_flight", first["queue_id"]), ("2024_06", "in_flight", first["queue_id"])]
    assert data["skipped"][0]["records"] == 3000
    assert data["covering"] == [first["queue_id"]]
    assert [s["period"] for s in state(client, data["queue_id"])["skipped"]] == ["2024_03", "2024_04", "2024_05",
                                                                              "2024_06"]

    covered = start(client, backfill("2024-02-01:2024-08-31"))
    assert covered["data"]["queue_id"] is None and covered["data"]["status"] == "covered"
    assert covered["data"]["covering"] == sorted([first["queue_id"], data["queue_id"]])
    assert "Nothing to load" in covered["message"]

    forced = start(client, backfill("2024-02-01:2024-08-31", force=True))["data"]
    assert len(periods_of(forced)) == 7 and "skipped" not in forced


def test_unpartitioned_overlap_stays_a_409_naming_the_queue(client: Any) -> None:
    first = start(client, backfill("2024-01-01:2024-03-31"))["data"]
    whole = backfill("2024-02-01:2024-02-29")
    del whole["partition"]
    refused = start(client, whole, 409)
    assert first["queue_id"] in refused["message"]


def test_a_downstream_request_on_a_period_still_loading_is_a_409(client: Any) -> None:
    first = start(client, backfill("2024-01-01:2024-02-29"))["data"]
    finish(client, first["queue_id"], {"2024_01"})
    graph = {"target": "graph-builder", "type": "gnn_graph", "collection_inputs": ["btc_candles_1d_{period}"],
             "collection_output": "btc_graph_{period}"}
    payload = backfill("2024-01-01:2024-02-29", requests=backfill("x:y")["requests"] + [graph])
    refused = start(client, payload, 409)
    assert "btc_candles_1d_2024_02" in refused["message"] and first["queue_id"] in refused["message"]
    # January is loaded: its graph runs alone, reading the collection that is there.
    january = start(client, backfill("2024-01-01:2024-01-31", requests=payload["requests"]))["data"]
    assert [(j["target"], j["period"]) for j in january["jobs"]] == [("graph-builder", "2024_01")]
    assert january["jobs"][0]["status"] == "launched"


def test_one_failed_period_fails_alone_and_retry_reruns_only_it(client: Any) -> None:
    q = start(client, backfill("2024-01-01:2024-04-30"))["data"]["queue_id"]
    jobs = state(client, q)["jobs"]
    march_loader = next(j for j in jobs if j["period"] == "2024_03" and j["target"] == "loader-producer")
    report(client, q, march_loader, "error", error_message="exchange 502")
    finish(client, q)
    after = state(client, q)
    assert after["status"] == "error"
    assert {(j["period"], j["status"]) for j in after["jobs"] if j["status"] != "finished"} == {("2024_03", "error")}
    r = client("start").post(f"/queues/{q}/retry")
    assert r.status_code == 200, r.text
    retried = state(client, q)["jobs"]
    again = [(j["period"], j["target"]) for j in retried if j["attempt"] == 1]
    assert again == [("2024_03", "loader-producer"), ("2024_03", "arango-connector")]  # the connector read it
    finish(client, q)
    done = state(client, q)
    assert done["status"] == "finished"
    assert {j["period"]: j["records_written"] for j in done["jobs"] if j["target"] == "loader-producer"} == {
        "2024_01": 1000, "2024_02": 2000, "2024_03": 3000, "2024_04": 4000}
    assert done["records_written"] == 2 * (1000 + 2000 + 3000 + 4000)


def test_gaps_show_in_coverage_and_repair_reruns_only_that_period(client: Any) -> None:
    q = start(client, backfill("2024-01-01:2024-03-31"))["data"]["queue_id"]
    gap = {"from": "2024-02-10T00:00:00Z", "to": "2024-02-10T06:00:00Z"}
    finish(client, q, {"2024_02"}, gaps=[gap])
    finish(client, q)
    service = runtime.get().service
    import datetime as dt

    answer = service.coverage("BTCUSDT", "api_candles_1d", dt.date(2024, 1, 1), dt.date(2024, 3, 31), "month")
    assert [(p["period"], p["status"], "gaps" in p) for p in answer["periods"]] == [
        ("2024_01", "loaded", False), ("2024_02", "loaded", True), ("2024_03", "loaded", False)]
    assert answer["periods"][1]["gaps"] == [gap]

    # A start with repair: true reloads only the period with gaps; without, nothing.
    assert start(client, backfill("2024-01-01:2024-03-31"))["data"]["status"] == "covered"
    repairing = start(client, backfill("2024-01-01:2024-03-31", repair=True))["data"]
    assert periods_of(repairing) == ["2024_02"]
    client("stop").post(f"/queues/{repairing['queue_id']}/stop")

    state_, rerun = service.repair(q)
    assert [j.period for j in state_.jobs if j.id in rerun] == ["2024_02", "2024_02"]
    assert all(j.attempt == (1 if j.period == "2024_02" else 0) for j in state_.jobs)
    assert all(j.status.value == "launched" for j in state_.jobs if j.id in rerun)


def test_the_limit_takes_the_oldest_periods_first_or_the_newest(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_LIMITS", json.dumps({"loader-producer": 2}))
    runtime.reset()
    q = start(client, backfill("2024-01-01:2024-06-30"))["data"]["queue_id"]
    launched = [j["period"] for j in state(client, q)["jobs"] if j["status"] == "launched"]
    assert launched == ["2024_01", "2024_01", "2024_02", "2024_02"]
    finish(client, q, {"2024_01"})
    launched = sorted({j["period"] for j in state(client, q)["jobs"] if j["status"] == "launched"})
    assert launched == ["2024_02", "2024_03"]
    client("stop").post(f"/queues/{q}/stop")
    newest = start(client, backfill("2023-01-01:2023-06-30", newest_first=True))["data"]["queue_id"]
    assert sorted({j["period"] for j in state(client, newest)["jobs"] if j["status"] == "launched"}) == [
        "2023_05", "2023_06"]


def test_a_replayed_partitioned_start_is_the_same_queue(client: Any) -> None:
    payload = backfill("2024-01-01:2024-03-31")
    first = start(client, payload, **{"Idempotency-Key": "backfill-1"})["data"]
    again = start(client, payload, **{"Idempotency-Key": "backfill-1"})
    assert again["data"]["queue_id"] == first["queue_id"] and "already started" in again["message"]
    assert "skipped" not in again["data"], "its own periods do not cover it"


def test_bad_gaps_are_a_400_and_change_nothing(client: Any) -> None:
    q = start(client, backfill("2024-01-01:2024-01-31"))["data"]["queue_id"]
    job = state(client, q)["jobs"][0]
    backwards = {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}
    for gaps in ([{"from": "yesterday", "to": "today"}], [backwards], [{"from": "2024-01-02T00:00:00Z"}], "2024-01-02"):
        body = {"type": "telemetry", "queue_id": q, "job_id": job["id"], "status": "running", "gaps": gaps}
        r = client("telemetry").post("/", json=body)
        assert r.status_code in (400, 422), r.text
        assert r.json()["status"] == "error" and "gaps" in r.text
    assert state(client, q)["jobs"][0]["status"] == "launched" and not state(client, q)["jobs"][0]["gaps"]


def test_events_and_the_plan_carry_the_periods(client: Any) -> None:
    first = start(client, backfill("2024-01-01:2024-01-31"))["data"]
    finish(client, first["queue_id"])
    plan = client("start").post("/queues/plan", json=backfill("2024-01-01:2024-03-31"))
    assert plan.status_code == 200, plan.text
    data = plan.json()["data"]
    assert [(j["period"], j["time_range"]) for j in data["jobs"]][::2] == [
        ("2024_02", "2024-02-01:2024-02-29"), ("2024_03", "2024-03-01:2024-03-31")]
    container = data["jobs"][0]["manifest"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["START_DATE"], env["END_DATE"], env["PERIOD"]) == ("2024-02-01", "2024-02-29", "2024_02")
    assert [s["period"] for s in data["skipped"]] == ["2024_01"] and data["covering"] == [first["queue_id"]]
    q = start(client, backfill("2024-02-01:2024-02-29"))["data"]["queue_id"]
    events = client("status").get(f"/queues/{q}/events").json()["data"]
    started = next(e for e in events if e["event"]["type"].endswith("queue.started"))
    assert {j["period"] for j in started["event"]["data"]["jobs"]} == {"2024_02"}
    launched = [e["event"]["data"] for e in events if e["event"]["type"].endswith("job.status.changed")]
    assert {(d["period"], d["time_range"], d["status"]) for d in launched} == {
        ("2024_02", "2024-02-01:2024-02-29", "launched")}


@pytest.mark.backend("arango", reason="only ArangoDB has a collection catalog to check coverage against")
def test_on_arangodb_coverage_is_checked_against_the_collections_there(client: Any) -> None:
    import datetime as dt

    q = start(client, backfill("2024-01-01:2024-02-29"))["data"]["queue_id"]
    finish(client, q)
    store = runtime.get().service.store
    store._db.delete_collection("btc_candles_1d_2024_02")  # type: ignore[attr-defined]
    write_collection("btc_candles_1d_2023_12")  # loaded by something else, never recorded
    answer = runtime.get().service.coverage("BTCUSDT", "api_candles_1d", dt.date(2023, 12, 1), dt.date(2024, 2, 29),
                                            "month")
    # February's collection is gone: only its Kafka topic still holds the month.
    assert [(p["period"], p["status"], p.get("kind"), p.get("exists")) for p in answer["periods"]] == [
        ("2023_12", "present", None, True), ("2024_01", "loaded", "collection", True),
        ("2024_02", "loaded", "topic", None)]
    again = start(client, backfill("2024-01-01:2024-02-29"))["data"]
    assert periods_of(again) == ["2024_02"], "the dropped month loads again"
    assert [s["period"] for s in again["skipped"]] == ["2024_01"]


def test_a_day_is_another_dataset_than_its_month(client: Any) -> None:
    """June loaded by month is `btc_candles_1d_2024_06`: a day of June, another collection
    (`…_2024_06_03`), is not covered by it, so its loader, connector and graph all run."""
    month = start(client, backfill("2024-06-01:2024-06-30"))["data"]["queue_id"]
    finish(client, month)
    graph = {"target": "graph-builder", "type": "gnn_graph", "collection_inputs": ["btc_candles_1d_{period}"],
             "collection_output": "btc_graph_{period}"}
    days = start(client, backfill("2024-06-03:2024-06-04", partition="day",
                                  requests=backfill("x:y")["requests"] + [graph]))["data"]
    assert "skipped" not in days
    assert sorted((j["period"], j["target"]) for j in days["jobs"] if j["status"] == "launched") == [
        ("2024_06_03", "arango-connector"), ("2024_06_03", "loader-producer"),
        ("2024_06_04", "arango-connector"), ("2024_06_04", "loader-producer")]


def test_a_wait_by_depends_on_for_a_period_loading_elsewhere_is_a_409(client: Any) -> None:
    loading = start(client, backfill("2024-01-01:2024-01-31"))["data"]["queue_id"]
    train = {"target": "gnn-trainer", "type": "gnn_train", "depends_on": [1], "model_output": "btc_model_{period}"}
    refused = start(client, backfill("2024-01-01:2024-01-31", requests=backfill("x:y")["requests"] + [train]), 409)
    assert loading in refused["message"] and "depends_on" in refused["message"]
    finish(client, loading)
    after = start(client, backfill("2024-01-01:2024-01-31", requests=backfill("x:y")["requests"] + [train]))["data"]
    assert [(j["target"], j["status"]) for j in after["jobs"]] == [("gnn-trainer", "launched")]


def test_repair_of_a_failed_queue_runs_the_failure_again_with_the_gaps(client: Any) -> None:
    payload = backfill("2024-01-01:2024-02-29")
    del payload["on_failure"]  # the default: a failure stops the queue
    q = start(client, payload)["data"]["queue_id"]
    finish(client, q, {"2024_01"}, gaps=[{"from": "2024-01-05T00:00:00Z", "to": "2024-01-05T01:00:00Z"}])
    february = next(j for j in state(client, q)["jobs"] if j["period"] == "2024_02" and j["target"] == LOADER)
    report(client, q, february, "error", error_message="exchange 502")
    assert state(client, q)["status"] == "error"
    r = client("start").post(f"/queues/{q}/repair")
    assert r.status_code == 200, r.text
    after = state(client, q)
    assert after["status"] == "loading"
    assert sorted((j["period"], j["status"]) for j in after["jobs"] if j["attempt"] == 1) == [
        ("2024_01", "launched"), ("2024_01", "launched"), ("2024_02", "launched"), ("2024_02", "launched")]
    finish(client, q)
    assert state(client, q)["status"] == "finished"


def test_a_period_reports_progress_through_its_own_range(client: Any) -> None:
    q = start(client, backfill("2024-01-01:2024-02-29"))["data"]["queue_id"]
    january = state(client, q)["jobs"][0]
    report(client, q, january, "running", last_loaded_timestamp="2024-01-16T12:00:00Z")
    shown = state(client, q)["jobs"][0]
    assert shown["period"] == "2024_01" and shown["progress"] == 0.5  # half of January, not of the queue


def test_the_last_month_of_the_calendar_plans_and_answers(client: Any) -> None:
    plan = client("start").post("/queues/plan", json=backfill("9999-11-15:9999-12-31"))
    assert plan.status_code == 200, plan.text
    assert [j["period"] for j in plan.json()["data"]["jobs"]][::2] == ["9999_11", "9999_12"]
    for partition in ("month", "day"):
        r = client("status").get("/coverage", params={"symbol": "BTCUSDT", "type": "api_candles_1d",
                                                      "from": "9999-12-01", "to": "9999-12-31", "partition": partition})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["summary"] == {"missing": 1 if partition == "month" else 31}
