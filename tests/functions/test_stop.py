from shared.core import constants
from tests.factories import binary_event, telemetry


def test_stop_marks_stopped_sends_command_and_deletes_jobs(client, historical, isolate_environment):
    queue_id = client("start").post("/queues/start", json=historical).json()["data"]["queue_id"]
    assert (isolate_environment / "jobs" / queue_id).is_dir()
    r = client("stop").post(f"/queues/stop?queue_id={queue_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "message": "Queue stopped",
                        "data": {"queue_id": queue_id, "status": "stopped", "reason": "stopped by user"}}
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert state["status"] == "stopped"
    assert [j["status"] for j in state["jobs"]] == ["stopped"] * 4 + ["skipped"] * 2
    assert not (isolate_environment / "jobs" / queue_id).exists()
    rows = client("status").get(f"/queues/{queue_id}/events").json()["data"]
    commands = [r for r in rows if r["channel"] == "control"]
    assert [c["event"]["type"] for c in commands] == [constants.CE_STOP_COMMAND]
    assert commands[0]["event"]["data"]["queue_id"] == queue_id


def test_stop_twice_is_fine_and_emits_once(client, historical):
    queue_id = client("start").post("/queues/start", json=historical).json()["data"]["queue_id"]
    stop = client("stop")
    stop.post(f"/queues/stop?queue_id={queue_id}")
    r = stop.post(f"/queues/{queue_id}/stop")
    assert r.status_code == 200 and r.json()["message"] == "Queue already stopped"
    rows = client("status").get(f"/queues/{queue_id}/events").json()["data"]
    assert [r["event"]["type"] for r in rows].count(constants.CE_QUEUE_STOPPED) == 1


def test_stop_as_cloudevent_and_with_body(client, historical):
    start, stop = client("start"), client("stop")
    a = start.post("/queues/start", json=historical).json()["data"]["queue_id"]
    headers, body = binary_event(constants.CE_STOP_QUEUE, {"queue_id": a, "reason": "maintenance"})
    r = stop.post("/", headers=headers, content=body)
    assert r.status_code == 200 and r.headers["ce-type"] == constants.CE_QUEUE_STOPPED
    assert client("status").get(f"/queues/{a}").json()["data"]["stop_reason"] == "maintenance"
    b = start.post("/queues/start", json=historical).json()["data"]["queue_id"]
    assert stop.post("/queues/stop", json={"queue_id": b}).json()["data"]["status"] == "stopped"


def test_stopping_a_finished_queue_changes_nothing(client, legacy):
    queue_id = client("start").post("/queues/start", json=legacy).json()["data"]["queue_id"]
    client("telemetry").post("/", json=telemetry(queue_id, status="finished", records_written=3))
    r = client("stop").post(f"/queues/stop?queue_id={queue_id}")
    assert r.status_code == 200 and "already finished" in r.json()["message"]
    assert client("status").get(f"/queues/{queue_id}").json()["data"]["status"] == "finished"


def test_telemetry_after_stop_keeps_stopped_but_takes_final_counts(client, legacy):
    queue_id = client("start").post("/queues/start", json=legacy).json()["data"]["queue_id"]
    client("stop").post(f"/queues/stop?queue_id={queue_id}")
    client("telemetry").post("/", json=telemetry(queue_id, status="finished", records_written=42))
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert (state["status"], state["records_written"]) == ("stopped", 42)


def test_stop_without_queue_id_is_400(client):
    r = client("stop").post("/queues/stop")
    assert r.status_code == 400 and "queue_id" in r.json()["message"]


def test_stopping_counts_each_stopped_and_skipped_job_once(client, historical):
    from shared.adapters import metrics

    def count(target, status):
        return metrics.JOB_RESULTS.labels(target, status)._value.get()

    queue_id = client("start").post("/queues/start", json=historical).json()["data"]["queue_id"]
    jobs = client("status").get(f"/queues/{queue_id}").json()["data"]["jobs"]
    keys = {(j["target"], s) for j in jobs for s in ("stopped", "skipped")}
    before = {k: count(*k) for k in keys}
    client("stop").post(f"/queues/stop?queue_id={queue_id}")
    client("stop").post(f"/queues/stop?queue_id={queue_id}")  # again: nothing more
    after = client("status").get(f"/queues/{queue_id}").json()["data"]["jobs"]
    expected = {k: 0 for k in keys}
    for j in after:
        expected[(j["target"], j["status"])] += 1
    assert {k: count(*k) - before[k] for k in keys} == expected
    assert sum(expected.values()) == len(jobs) == 6
