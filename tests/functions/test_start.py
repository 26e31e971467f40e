import json
from pathlib import Path

import pytest

from shared.core import constants
from tests.factories import binary_event, structured_event


def _env(manifest: dict) -> dict[str, str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def _manifests(local: Path, queue_id: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((local / "jobs" / queue_id).glob("*.json"))]


def test_legacy_payload_starts_one_loader(client, legacy, isolate_environment):
    r = client("start").post("/queues/start", json=legacy)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and body["message"] == "Queue started"
    queue_id = body["data"]["queue_id"]
    [manifest] = _manifests(isolate_environment, queue_id)
    env = _env(manifest)
    assert env["SYMBOL"] == "BTCUSDT" and env["TYPE"] == "api"
    assert env["TIME_RANGE"] == "2024-01-01:2024-01-03"
    assert env["QUEUE_ID"] == queue_id


@pytest.mark.parametrize("example, count", [("historical", 6), ("realtime", 7)])
def test_seed_examples_carry_every_field_to_their_job(client, example, count, isolate_environment, request):
    payload = {**request.getfixturevalue(example), "mode": "parallel"}  # every Job at once
    r = client("start").post("/queues/start", json=payload)
    assert r.status_code == 200, r.text
    queue_id = r.json()["data"]["queue_id"]
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert len(state["jobs"]) == count
    manifests = {m["metadata"]["name"]: m for m in _manifests(isolate_environment, queue_id)}
    assert len(manifests) == count
    for job, req in zip(state["jobs"], payload["requests"], strict=True):
        assert (job["target"], job["type"]) == (req["target"], req["type"])
        params = {k: v for k, v in req.items() if k not in ("target", "type")}
        assert job["params"] == params
        env = _env(manifests[job["job_name"]])
        assert env["TARGET"] == req["target"] and env["TYPE"] == req["type"]
        assert json.loads(env["REQUEST_PARAMS"]) == params
        for key, value in params.items():
            assert env[key.upper()] == (value if isinstance(value, str) else json.dumps(value))


def test_idempotency_key_returns_same_queue_and_launches_nothing_twice(client, historical, isolate_environment):
    start = client("start")
    first = start.post("/queues/start", json=historical, headers={"Idempotency-Key": "k-1"})
    queue_id = first.json()["data"]["queue_id"]
    folder = isolate_environment / "jobs" / queue_id
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = start.post("/queues/start", json=historical, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.json()["data"]["queue_id"] == queue_id
    assert "already started" in again.json()["message"]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    listed = client("status").get("/queues").json()
    assert listed["page"]["total"] == 1


def test_idempotency_key_reused_with_other_payload_is_409(client, historical, realtime):
    start = client("start")
    assert start.post("/queues/start", json=historical, headers={"Idempotency-Key": "k"}).status_code == 200
    r = start.post("/queues/start", json=realtime, headers={"Idempotency-Key": "k"})
    assert r.status_code == 409
    assert "different" in r.json()["message"]


@pytest.mark.parametrize("encode", [binary_event, structured_event])
def test_start_as_cloudevent_replies_with_event_and_dedupes_by_id(client, historical, encode):
    start = client("start")
    headers, body = encode(constants.CE_START_QUEUE, historical, id_="evt-1")
    r = start.post("/", headers=headers, content=body)
    assert r.status_code == 200, r.text
    assert r.headers["ce-type"] == constants.CE_QUEUE_STARTED
    queue_id = r.json()["data"]["queue_id"]
    again = start.post("/", headers=headers, content=body)
    assert again.json()["data"]["queue_id"] == queue_id
    assert client("status").get("/queues").json()["page"]["total"] == 1


def test_start_function_refuses_other_command_types(client, historical):
    headers, body = binary_event(constants.CE_STOP_QUEUE, {"queue_id": "x"})
    r = client("start").post("/", headers=headers, content=body)
    assert r.status_code == 400
    assert constants.CE_START_QUEUE in r.json()["message"]


def test_started_event_is_published_locally(client, historical, isolate_environment):
    queue_id = client("start").post("/queues/start", json=historical).json()["data"]["queue_id"]
    rows = client("status").get(f"/queues/{queue_id}/events").json()["data"]
    types = [r["event"]["type"] for r in rows]
    assert constants.CE_QUEUE_STARTED in types
    assert constants.CE_QUEUE_STATUS_CHANGED in types
    assert all(r["key"] == queue_id for r in rows)


def test_legacy_payload_takes_queue_options_too(client, legacy):
    r = client("start").post("/queues/start", json={**legacy, "priority": 9, "allow_overlap": True})
    assert r.status_code == 200, r.text
    state = client("status").get(f"/queues/{r.json()['data']['queue_id']}").json()["data"]
    assert state["priority"] == 9 and state["type"] == "api"
    bad = client("start").post("/queues/start", json={**legacy, "priority": 11})
    assert bad.status_code == 422 and "priority" in bad.text
