"""Priorities, concurrency slots, deadlines and overlaps (local launcher, in process)."""

from __future__ import annotations

import json
import time

import pytest

from shared import runtime
from shared.adapters import metrics
from tests.factories import telemetry


def _legacy(symbol, priority, **extra):
    return {"symbol": symbol, "time_range": "2024-01-01:2024-01-03", "priority": priority,
            "requests": [{"target": "loader-producer", "type": "api_trades"}], **extra}


def _start(client, payload):
    r = client("start").post("/queues/start", json=payload)
    assert r.status_code == 200, r.text
    return r.json()["data"]["queue_id"]


def _job(client, queue_id):
    return client("status").get(f"/queues/{queue_id}").json()["data"]["jobs"][0]


def _finish(client, queue_id):
    job = _job(client, queue_id)
    r = client("telemetry").post("/", json=telemetry(queue_id, job_id=job["id"], status="finished"))
    assert r.status_code == 200


@pytest.fixture
def limit_one(monkeypatch):
    monkeypatch.setenv("JOB_LIMITS", json.dumps({"loader-producer": 1}))
    runtime.reset()


def test_limit_one_runs_queues_one_after_another_by_priority(client, limit_one):
    low = _start(client, _legacy("ETHUSDT", 3))
    assert _job(client, low)["status"] == "launched"
    high = _start(client, _legacy("BTCUSDT", 9))
    late_low = _start(client, _legacy("SOLUSDT", 3))
    for waiting in (high, late_low):
        job = _job(client, waiting)
        assert job["status"] == "pending"
        assert job["waiting"].startswith("waiting for slot: loader-producer")
        assert job["wait"] == "slot"  # what it waits for, as a value (the text is for people)
    assert "1/1 in use" in _job(client, high)["waiting"]
    _finish(client, low)
    assert _job(client, high)["status"] == "launched", "the higher priority goes first"
    assert _job(client, late_low)["status"] == "pending"
    assert "higher priority" in _job(client, late_low)["waiting"] or "1/1" in _job(client, late_low)["waiting"]
    _finish(client, high)
    assert _job(client, late_low)["status"] == "launched"


def test_equal_priority_goes_by_age(client, limit_one):
    first = _start(client, _legacy("ETHUSDT", 5))
    older = _start(client, _legacy("BTCUSDT", 5))
    newer = _start(client, _legacy("SOLUSDT", 5))
    _finish(client, first)
    assert (_job(client, older)["status"], _job(client, newer)["status"]) == ("launched", "pending")


def test_a_lease_left_by_a_killed_function_expires(client, limit_one, monkeypatch):
    monkeypatch.setenv("LEASE_TTL_SECONDS", "1")
    runtime.reset()
    slots = runtime.get().service.slots
    assert slots.acquire("loader-producer", "dead-instance/claimed-then-died")
    queue = _start(client, _legacy("BTCUSDT", 5))
    assert _job(client, queue)["status"] == "pending"
    before = metrics.LEASE_EXPIRATIONS.labels("loader-producer")._value.get()
    time.sleep(1.2)
    r = client("stop").post("/sweep")
    assert r.status_code == 200, r.text
    assert _job(client, queue)["status"] == "launched"
    assert metrics.LEASE_EXPIRATIONS.labels("loader-producer")._value.get() == before + 1


def test_stopping_releases_the_slot(client, limit_one):
    a = _start(client, _legacy("ETHUSDT", 5))
    b = _start(client, _legacy("BTCUSDT", 5))
    assert client("stop").post(f"/queues/{a}/stop").json()["data"]["status"] == "stopped"
    assert _job(client, b)["status"] == "launched"


def test_queue_past_its_deadline_is_stopped_by_the_sweep(client):
    queue = _start(client, _legacy("BTCUSDT", 5, timeout_seconds=1))
    assert client("stop").post("/sweep").json()["data"]["timed_out"] == []
    time.sleep(1.1)
    report = client("stop").post("/sweep").json()["data"]
    assert report["timed_out"] == [queue]
    state = client("status").get(f"/queues/{queue}").json()["data"]
    assert (state["status"], state["stop_reason"]) == ("stopped", "timeout")


def test_ping_source_event_runs_the_sweep(client):
    from tests.factories import binary_event

    headers, body = binary_event("dev.knative.sources.ping", {"sweep": True})
    r = client("stop").post("/", headers=headers, content=body)
    assert r.status_code == 200 and r.json()["message"] == "Sweep done"


def test_overlapping_start_is_409_naming_the_queue(client, historical):
    first = _start(client, historical)
    shifted = {**historical, "time_range": "2024-06-15:2024-07-15", "requests": historical["requests"][:4]}
    r = client("start").post("/queues/start", json=shifted)
    assert r.status_code == 409
    assert first in r.json()["message"] and "loader-producer/api_trades" in r.json()["message"]
    assert client("start").post("/queues/start", json={**shifted, "allow_overlap": True}).status_code == 200
    later = {**historical, "time_range": "2024-07-16:2024-07-31"}
    later["requests"] = [dict(r) for r in historical["requests"][:4]]
    assert client("start").post("/queues/start", json=later).status_code == 200


def test_priority_maps_to_a_priority_class(client, monkeypatch, isolate_environment):
    monkeypatch.setenv("JOB_PRIORITY_CLASSES", json.dumps({"1-4": "streamforge-low", "8-10": "streamforge-high"}))
    runtime.reset()
    high = _start(client, _legacy("BTCUSDT", 9))
    normal = _start(client, _legacy("ETHUSDT", 5))
    spec = json.loads(next((isolate_environment / "jobs" / high).glob("*.json")).read_text())
    assert spec["spec"]["template"]["spec"]["priorityClassName"] == "streamforge-high"
    spec = json.loads(next((isolate_environment / "jobs" / normal).glob("*.json")).read_text())
    assert "priorityClassName" not in spec["spec"]["template"]["spec"]


def test_sweep_publishes_what_an_outage_left_in_an_ended_queues_outbox(client, legacy, monkeypatch):
    from shared.adapters.bus import LocalBus
    from shared.core.errors import BackendUnavailable

    queue = _start(client, legacy)
    real = LocalBus.publish

    def down(self, channel, event, key):
        raise BackendUnavailable("kafka", "broker down")

    monkeypatch.setattr(LocalBus, "publish", down)
    job = _job(client, queue)
    r = client("telemetry").post("/", json=telemetry(queue, job_id=job["id"], status="finished"))
    assert r.status_code == 503
    assert client("status").get(f"/queues/{queue}").json()["data"]["status"] == "finished"
    monkeypatch.setattr(LocalBus, "publish", real)
    report = client("stop").post("/sweep").json()["data"]
    assert report["flushed"] == [queue]
    types = [r["event"]["type"] for r in client("status").get(f"/queues/{queue}/events").json()["data"]]
    assert "dev.streamforge.queue.status.changed" in types and types.count("dev.streamforge.queue.started") == 1
    assert client("stop").post("/sweep").json()["data"]["flushed"] == []
