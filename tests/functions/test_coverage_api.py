"""GET /coverage and POST /queues/{id}/repair, over a month-partitioned backfill."""

from __future__ import annotations

from typing import Any

import pytest

SYMBOL, TYPE = "BTCUSDT", "api_candles_5m"
GAP = {"from": "2024-03-10T00:00:00Z", "to": "2024-03-11T12:00:00Z"}
RECORDS = {"2024_01": 8928, "2024_02": 8352, "2024_03": 8900}


def _start(client) -> dict[str, Any]:
    body = {"symbol": SYMBOL, "time_range": "2024-01-01:2024-06-30", "partition": "month",
            "on_failure": "continue",
            "requests": [{"target": "loader-producer", "type": TYPE, "interval": "5m"},
                         {"target": "arango-connector", "type": TYPE}]}
    reply = client("start").post("/queues/start", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert len(data["jobs"]) == 12
    return data


def _finish(client, queue_id: str, job: dict[str, Any], records: int, **extra: Any) -> None:
    body = {"type": "telemetry", "queue_id": queue_id, "job_id": job["id"], "status": "finished",
            "records_written": records, **extra}
    reply = client("telemetry").post("/", json=body)
    assert reply.status_code == 200 and reply.json()["data"]["outcome"] == "applied", reply.text


def _by_period(jobs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        out.setdefault(job["period"], []).append(job)
    return out


def _coverage(client, query: str) -> Any:
    return client("status").get(f"/coverage?{query}")


def _finish_three_months(client) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    data = _start(client)
    periods = _by_period(data["jobs"])
    for period, records in RECORDS.items():
        gaps = {"gaps": [GAP]} if period == "2024_03" else {}
        for job in periods[period]:
            _finish(client, data["queue_id"], job, records, **gaps)
    return data["queue_id"], periods


def test_coverage_shows_loaded_gapped_in_flight_and_missing_months(client, backend):
    queue_id, _ = _finish_three_months(client)
    reply = _coverage(client, f"symbol=btcusdt&type={TYPE}&from=2023-11-15&to=2024-08-31")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["message"] == "Coverage"
    data = body["data"]
    assert (data["symbol"], data["type"], data["partition"]) == (SYMBOL, TYPE, "month")
    assert (data["from"], data["to"]) == ("2023-11-15", "2024-08-31")
    by = {p["period"]: p for p in data["periods"]}
    assert list(by) == ["2023_11", "2023_12", "2024_01", "2024_02", "2024_03", "2024_04", "2024_05",
                        "2024_06", "2024_07", "2024_08"]
    assert {k: by[k]["status"] for k in by} == {
        "2023_11": "missing", "2023_12": "missing", "2024_01": "loaded", "2024_02": "loaded",
        "2024_03": "loaded", "2024_04": "in_flight", "2024_05": "in_flight", "2024_06": "in_flight",
        "2024_07": "missing", "2024_08": "missing"}
    assert data["summary"] == {"missing": 4, "loaded": 3, "in_flight": 3}
    for period, records in RECORDS.items():
        assert by[period]["records"] == records and by[period]["queue_id"] == queue_id
        if backend == "sqlite":  # the records are the truth: the connector loaded the collection
            assert by[period]["kind"] == "collection" and by[period]["datasets"] == [f"btc_candles_5m_{period}"]
        else:  # ArangoDB: no connector really made the collection, so the loaded topic covers
            assert by[period]["kind"] == "topic" and len(by[period]["datasets"]) == 1
    assert by["2024_03"]["gaps"] == [GAP]
    assert not by["2024_01"].get("gaps") and not by["2024_02"].get("gaps")
    assert by["2024_04"]["queue_id"] == queue_id and "records" not in by["2024_04"]
    assert "queue_id" not in by["2023_12"]


def test_coverage_by_day(client):
    _finish_three_months(client)
    reply = _coverage(client, f"symbol=BTCUSDT&type={TYPE}&from=2024-03-30&to=2024-04-02&partition=day")
    assert reply.status_code == 200, reply.text
    days = {p["period"]: p["status"] for p in reply.json()["data"]["periods"]}
    assert days == {"2024_03_30": "loaded", "2024_03_31": "loaded", "2024_04_01": "in_flight",
                    "2024_04_02": "in_flight"}


@pytest.mark.parametrize(("query", "message"), [
    (f"type={TYPE}&from=2024-01-01&to=2024-02-01", "symbol is required"),
    (f"symbol=B&type={TYPE}&from=2024-01-01&to=2024-02-01", "symbol must be 2-20 letters or digits"),
    ("symbol=BTCUSDT&from=2024-01-01&to=2024-02-01", "type is required"),
    ("symbol=BTCUSDT&type=Candles&from=2024-01-01&to=2024-02-01", "type must match"),
    (f"symbol=BTCUSDT&type={TYPE}&to=2024-02-01", "from is required"),
    (f"symbol=BTCUSDT&type={TYPE}&from=2023-02-29&to=2024-02-01", "from must be a real date, YYYY-MM-DD"),
    (f"symbol=BTCUSDT&type={TYPE}&from=2024-01-01&to=2024-2-1", "to must be a real date, YYYY-MM-DD"),
    (f"symbol=BTCUSDT&type={TYPE}&from=2024-03-01&to=2024-02-01", "from (2024-03-01) is after to (2024-02-01)"),
    (f"symbol=BTCUSDT&type={TYPE}&from=1900-01-01&to=2024-02-01", "1,490 months; ask at most 1,200"),
    (f"symbol=BTCUSDT&type={TYPE}&from=2010-01-01&to=2024-02-01&partition=day", "days; ask at most 3,700"),
    (f"symbol=BTCUSDT&type={TYPE}&from=2024-01-01&to=2024-02-01&partition=week", "partition must be one of "
                                                                                  "month, day"),
])
def test_bad_coverage_parameters_are_400_with_a_message(client, query, message):
    reply = _coverage(client, query)
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["status"] == "error" and message in body["message"], body


def test_the_period_bound_is_inclusive(client):
    months = _coverage(client, f"symbol=BTCUSDT&type={TYPE}&from=1925-01-01&to=2024-12-31")
    days = _coverage(client, f"symbol=BTCUSDT&type={TYPE}&from=2015-01-01&to=2025-02-16&partition=day")
    assert months.status_code == 200 and len(months.json()["data"]["periods"]) == 1200
    assert days.status_code == 200 and len(days.json()["data"]["periods"]) == 3700


def test_repair_reruns_exactly_the_gap_month(client):
    queue_id, periods = _finish_three_months(client)
    repair = client("start").post(f"/queues/{queue_id}/repair")
    assert repair.status_code == 409 and "repair it once it has ended" in repair.json()["message"], repair.text
    for period in ("2024_04", "2024_05", "2024_06"):
        for job in periods[period]:
            _finish(client, queue_id, job, 8000)
    assert client("status").get(f"/queues/{queue_id}").json()["data"]["status"] == "finished"

    repair = client("start").post(f"/queues/{queue_id}/repair")
    assert repair.status_code == 200, repair.text
    data = repair.json()["data"]
    assert data["queue_id"] == queue_id and data["status"] not in ("finished", "error")
    old = {j["id"] for j in periods["2024_03"]}
    assert len(data["repaired"]) == 2 and not old & set(data["repaired"])
    jobs = {j["id"]: j for j in client("status").get(f"/queues/{queue_id}").json()["data"]["jobs"]}
    rerun = [jobs[i] for i in data["repaired"]]
    assert sorted(j["target"] for j in rerun) == ["arango-connector", "loader-producer"]
    assert all(j["period"] == "2024_03" and j["attempt"] == 1 and j["status"] != "finished" for j in rerun)
    others = [j for j in jobs.values() if j["id"] not in data["repaired"]]
    assert len(others) == 10 and all(j["status"] == "finished" and j["attempt"] == 0 for j in others)

    again = client("start").post(f"/queues/{queue_id}/repair")
    assert again.status_code == 409, again.text


def test_repair_of_a_queue_without_gaps_or_unknown(client):
    data = _start(client)
    for job in data["jobs"]:
        _finish(client, data["queue_id"], job, 10)
    none = client("start").post(f"/queues/{data['queue_id']}/repair")
    assert none.status_code == 409 and "no period with gaps" in none.json()["message"], none.text
    unknown = client("start").post("/queues/no-such-queue/repair")
    assert unknown.status_code == 404 and unknown.json()["status"] == "error", unknown.text
