"""Job status from the cluster (ApiServerSource, mode Resource) moves queues too."""

from __future__ import annotations

import json

from shared.core import cluster
from tests.factories import binary_event


def _job(state, index, *, conditions=(), active=0, ready=0):
    job = state["jobs"][index]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job["job_name"], "namespace": "streamforge",
                     "labels": {"app.kubernetes.io/managed-by": "streamforge-queue-manager",
                                "streamforge.dev/queue-id": state["id"]}},
        "status": {"active": active, "ready": ready,
                   "conditions": [dict(c, status="True") for c in conditions]},
    }


def _send(client, type_, obj):
    headers, body = binary_event(type_, obj, source="https://10.96.0.1:443")
    headers["ce-subject"] = f"/apis/batch/v1/namespaces/streamforge/jobs/{obj['metadata']['name']}"
    r = client("telemetry").post("/", headers=headers, content=body)
    assert r.status_code == 200, r.text
    return r.json()


def _queue(client, payload):
    queue_id = client("start").post("/queues/start", json=payload).json()["data"]["queue_id"]
    return client("status").get(f"/queues/{queue_id}").json()["data"]


def test_job_that_exhausts_its_backoff_limit_fails_the_queue_with_the_reason(client, legacy):
    state = _queue(client, legacy)
    failed = _job(state, 0, conditions=[{"type": "Failed", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit"}])
    assert _send(client, cluster.UPDATE, failed)["data"]["outcome"] == "applied"
    after = client("status").get(f"/queues/{state['id']}").json()["data"]
    assert after["status"] == "error"
    assert "BackoffLimitExceeded" in after["error_message"]
    assert _send(client, cluster.UPDATE, failed)["data"]["outcome"] == "duplicate"


def test_active_then_complete_moves_the_job_through_running_to_finished(client, realtime):
    state = _queue(client, realtime)
    _send(client, cluster.UPDATE, _job(state, 2, active=1))  # a Pending pod is not running yet
    assert client("status").get(f"/queues/{state['id']}").json()["data"]["jobs"][2]["status"] == "launched"
    _send(client, cluster.UPDATE, _job(state, 2, active=1, ready=1))
    _send(client, cluster.UPDATE, _job(state, 3, active=1, ready=1))
    after = client("status").get(f"/queues/{state['id']}").json()["data"]
    assert [j["status"] for j in after["jobs"][2:5]] == ["running", "running", "launched"]
    _send(client, cluster.UPDATE, _job(state, 0, conditions=[{"type": "Complete"}]))
    assert client("status").get(f"/queues/{state['id']}").json()["data"]["jobs"][0]["status"] == "finished"


def test_a_job_deleted_by_hand_is_noticed(client, legacy):
    state = _queue(client, legacy)
    outcome = _send(client, cluster.DELETE, _job(state, 0))["data"]["outcome"]
    assert outcome == "applied"
    after = client("status").get(f"/queues/{state['id']}").json()["data"]
    assert after["status"] == "error" and "deleted outside" in after["error_message"]


def test_deletes_after_a_stop_are_expected(client, legacy):
    state = _queue(client, legacy)
    client("stop").post(f"/queues/{state['id']}/stop")
    assert _send(client, cluster.DELETE, _job(state, 0))["data"]["outcome"] == "duplicate"
    assert client("status").get(f"/queues/{state['id']}").json()["data"]["status"] == "stopped"


def test_other_objects_are_ignored(client):
    r = _send(client, cluster.UPDATE, {"kind": "Job", "metadata": {"name": "x", "labels": {}}})
    assert r["message"].startswith("Ignored")
    headers, body = binary_event(cluster.ADD, {"kind": "Pod"})
    assert client("all").post("/", headers=headers, content=json.dumps({"kind": "Pod"}).encode()).status_code == 200


def test_drift_check_reports_a_missing_job_and_repairs_it(client, historical, isolate_environment):
    state = _queue(client, historical)
    status = client("status")
    clean = status.get(f"/queues/{state['id']}/drift").json()
    assert clean["data"]["in_sync"] and clean["message"] == "In sync with the cluster"
    gone = state["jobs"][1]["job_name"]
    (isolate_environment / "jobs" / state["id"] / f"{gone}.json").unlink()
    report = status.get(f"/queues/{state['id']}/drift").json()["data"]
    assert report["differences"] == [{"job": gone, "stored": "launched", "cluster": "missing"}]
    assert status.get(f"/queues/{state['id']}").json()["data"]["status"] == "loading", "a GET repairs nothing"
    repaired = status.post(f"/queues/{state['id']}/drift").json()["data"]
    assert repaired["repaired"] == 1
    after = status.get(f"/queues/{state['id']}").json()["data"]
    assert after["status"] == "error" and "deleted outside" in after["error_message"]
