"""Retention: queues that ended longer ago than RETENTION_DAYS leave the hot set for the
archive at a sweep, and stay readable by id and listable with `archived=true` (both backends)."""

from __future__ import annotations

import time

import pytest

from shared import runtime
from tests.factories import telemetry

SECOND_IN_DAYS = 1 / 86400


def _start(client, payload, symbol):
    r = client("start").post("/queues/start", json={**payload, "symbol": symbol})
    assert r.status_code == 200, r.text
    return r.json()["data"]["queue_id"]


@pytest.fixture
def short_retention(monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", str(SECOND_IN_DAYS))
    runtime.reset()


def test_ended_queues_move_to_the_archive_and_stay_readable(client, legacy, short_retention):
    ended = _start(client, legacy, "BTCUSDT")
    assert client("telemetry").post("/", json=telemetry(ended, status="finished", records_written=7)).status_code == 200
    running = _start(client, legacy, "ETHUSDT")
    time.sleep(1.2)
    report = client("stop").post("/sweep").json()["data"]
    assert report["archived"] == [ended]
    status = client("status")
    hot = status.get("/queues").json()
    assert [q["id"] for q in hot["data"]] == [running] and hot["page"]["total"] == 1
    archived = status.get("/queues", params={"archived": "true"}).json()
    assert [q["id"] for q in archived["data"]] == [ended] and archived["page"]["total"] == 1
    by_symbol = status.get("/queues", params={"archived": "true", "symbol": "btcusdt", "status": "finished"}).json()
    assert by_symbol["page"]["total"] == 1
    got = status.get(f"/queues/{ended}").json()["data"]
    assert (got["status"], got["records_written"]) == ("finished", 7)
    assert "finished" not in runtime.get().store.count_by_status()
    assert runtime.get().store.counters("a:") == {"a:q": 1, "a:q.finished": 1, "a:q.finished.BTCUSDT": 1,
                                                  "a:s.BTCUSDT": 1}
    assert 'queue_manager_queues{status="finished"} 0.0' in status.get("/metrics").text
    assert client("stop").post("/sweep").json()["data"]["archived"] == [], "moved once"


def test_retention_zero_keeps_everything_hot(client, legacy, monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "0")
    runtime.reset()
    ended = _start(client, legacy, "BTCUSDT")
    client("telemetry").post("/", json=telemetry(ended, status="finished"))
    assert client("stop").post("/sweep").json()["data"]["archived"] == []
    assert client("status").get("/queues").json()["page"]["total"] == 1


def test_archived_must_be_true_or_false(client):
    r = client("status").get("/queues", params={"archived": "yes"})
    assert r.status_code == 400 and "archived must be true or false" in r.json()["message"]


def test_a_replayed_start_of_an_archived_queue_is_that_queue(client, legacy, short_retention):
    headers = {"Idempotency-Key": "nightly-btc-2024-01-01"}
    first = client("start").post("/queues/start", json=legacy, headers=headers).json()["data"]["queue_id"]
    client("telemetry").post("/", json=telemetry(first, status="finished", records_written=3))
    time.sleep(1.2)
    assert client("stop").post("/sweep").json()["data"]["archived"] == [first]
    again = client("start").post("/queues/start", json=legacy, headers=headers)
    assert again.status_code == 200 and again.json()["data"]["queue_id"] == first
    assert again.json()["data"]["status"] == "finished"
    assert client("status").get("/queues").json()["page"]["total"] == 0, "nothing new in the hot set"
    other = client("start").post("/queues/start", json={**legacy, "symbol": "ETHUSDT"}, headers=headers)
    assert other.status_code == 409 and "different queue payload" in other.json()["message"]


def test_stop_and_retry_of_an_archived_queue_say_what_it_is(client, legacy, short_retention):
    queue_id = _start(client, legacy, "BTCUSDT")
    client("telemetry").post("/", json=telemetry(queue_id, status="failed", error_message="exchange down"))
    time.sleep(1.2)
    assert client("stop").post("/sweep").json()["data"]["archived"] == [queue_id]
    stop = client("stop").post(f"/queues/{queue_id}/stop")
    assert stop.status_code == 200 and stop.json()["data"]["status"] == "error"
    retry = client("start").post(f"/queues/{queue_id}/retry")
    assert retry.status_code == 409 and "archived" in retry.json()["message"]
