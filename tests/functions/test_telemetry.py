import random

import pytest

from shared.core import constants
from tests.factories import binary_event, kafka_source_event, telemetry


@pytest.fixture
def queue(client, historical):
    r = client("start").post("/queues/start", json=historical)
    data = r.json()["data"]
    return data["queue_id"], [j["id"] for j in data["jobs"]]


def _deliver(tc, value, offset=0):
    headers, body = kafka_source_event(value, offset=offset, key=value.get("queue_id"))
    return tc.post("/", headers=headers, content=body)


def _finish_all(queue_id, job_ids):
    msgs = []
    for n, job_id in enumerate(job_ids):
        msgs.append(telemetry(queue_id, job_id=job_id, status="loading", records_written=10 * n))
        msgs.append(telemetry(queue_id, job_id=job_id, status="loading", records_written=50 + n))
        msgs.append(telemetry(queue_id, job_id=job_id, status="finished", records_written=100 + n,
                              finished_at="2024-07-01T00:00:00Z"))
    return msgs


def test_kafka_source_telemetry_finishes_the_queue(client, queue):
    queue_id, job_ids = queue
    tc = client("telemetry")
    for offset, msg in enumerate(_finish_all(queue_id, job_ids)):
        r = _deliver(tc, msg, offset)
        assert r.status_code == 200, r.text
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert state["status"] == "finished"
    assert state["records_written"] == sum(100 + n for n in range(len(job_ids)))
    assert all(j["status"] == "finished" for j in state["jobs"])
    # the finishing report says when it finished: the queue keeps that, as its job does
    assert state["finished_at"] == "2024-07-01T00:00:00Z" == state["jobs"][-1]["finished_at"]


def test_duplicates_and_reordering_change_nothing(client, queue):
    queue_id, job_ids = queue
    tc = client("telemetry")
    msgs = _finish_all(queue_id, job_ids)
    for msg in msgs:
        _deliver(tc, msg)
    settled = client("status").get(f"/queues/{queue_id}").json()["data"]
    shuffled = msgs * 2
    random.Random(7).shuffle(shuffled)
    outcomes = {_deliver(tc, m).json()["data"]["outcome"] for m in shuffled}
    assert outcomes == {"duplicate"}
    assert client("status").get(f"/queues/{queue_id}").json()["data"] == settled


def test_reordered_delivery_reaches_the_same_state(client, historical):
    start, tc, status = client("start"), client("telemetry"), client("status")
    states = []
    for seed in (1, 2):
        data = start.post("/queues/start", json=historical).json()["data"]
        msgs = _finish_all(data["queue_id"], [j["id"] for j in data["jobs"]])
        random.Random(seed).shuffle(msgs)
        for m in msgs:
            _deliver(tc, m)
        state = status.get(f"/queues/{data['queue_id']}").json()["data"]
        states.append((state["status"], state["records_written"],
                       [(j["status"], j["records_written"]) for j in state["jobs"]]))
    assert states[0] == states[1]
    assert states[0][0] == "finished"


def test_terminal_job_never_regresses_but_counts_still_rise(client, queue):
    queue_id, job_ids = queue
    tc = client("telemetry")
    _deliver(tc, telemetry(queue_id, job_id=job_ids[0], status="error", error_message="exchange 429"))
    _deliver(tc, telemetry(queue_id, job_id=job_ids[0], status="loading", records_written=5))
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    job = state["jobs"][0]
    assert job["status"] == "error" and job["records_written"] == 5
    assert state["status"] == "error"
    assert "exchange 429" in state["error_message"]
    _deliver(tc, telemetry(queue_id, job_id=job_ids[1], status="finished"))
    assert client("status").get(f"/queues/{queue_id}").json()["data"]["status"] == "error"


def test_native_cloudevent_and_plain_json_are_accepted(client, queue):
    queue_id, job_ids = queue
    tc = client("telemetry")
    headers, body = binary_event(constants.CE_TELEMETRY,
                                 {"queue_id": queue_id, "job_id": job_ids[0], "status": "loading",
                                  "records_written": 3})
    assert tc.post("/", headers=headers, content=body).json()["data"]["outcome"] == "applied"
    r = tc.post("/telemetry", json=telemetry(queue_id, job_id=job_ids[0], records_written=4))
    assert r.json()["data"]["outcome"] == "applied"
    assert client("status").get(f"/queues/{queue_id}").json()["data"]["records_written"] == 4


def _count(text: str, outcome: str) -> float:
    prefix = f'queue_manager_telemetry_total{{outcome="{outcome}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0][len(prefix):]) if lines else 0.0


def test_unknown_queue_is_acknowledged_and_counted(client):
    tc = client("telemetry")
    before = _count(tc.get("/metrics").text, "unknown_queue")
    r = _deliver(tc, telemetry("no-such-queue", status="finished"))
    assert r.status_code == 200
    assert r.json()["data"]["outcome"] == "unknown_queue"
    assert _count(tc.get("/metrics").text, "unknown_queue") == before + 1


def test_non_telemetry_messages_are_ignored(client, queue):
    queue_id, _ = queue
    tc = client("telemetry")
    r = _deliver(tc, {"type": "stop", "queue_id": queue_id})
    assert r.status_code == 200 and r.json()["message"].startswith("Ignored")
    headers, body = binary_event(constants.CE_STOP_COMMAND, {"type": "stop", "queue_id": queue_id})
    assert tc.post("/", headers=headers, content=body).json()["message"].startswith("Ignored")
    assert client("status").get(f"/queues/{queue_id}").json()["data"]["status"] == "loading"


def test_queue_level_telemetry_applies_to_a_single_job_queue(client, legacy):
    queue_id = client("start").post("/queues/start", json=legacy).json()["data"]["queue_id"]
    tc = client("telemetry")
    _deliver(tc, telemetry(queue_id, status="loading", records_written=200))
    _deliver(tc, telemetry(queue_id, status="finished", records_written=378))
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert (state["status"], state["records_written"]) == ("finished", 378)


def test_queue_level_finish_finishes_every_job(client, queue):
    queue_id, _ = queue
    tc = client("telemetry")
    _deliver(tc, telemetry(queue_id, status="loading", records_written=7))
    _deliver(tc, telemetry(queue_id, status="finished", records_written=9))
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert state["status"] == "finished" and state["records_written"] == 9
    assert {j["status"] for j in state["jobs"]} == {"finished"}


def test_invalid_telemetry_is_4xx(client, queue):
    queue_id, _ = queue
    tc = client("telemetry")
    assert _deliver(tc, telemetry(queue_id, status="exploded")).status_code == 422
    assert _deliver(tc, telemetry(queue_id, records_written="many")).status_code == 422
    assert _deliver(tc, {"type": "telemetry"}).status_code == 422
    headers, _ = kafka_source_event({})
    assert tc.post("/", headers=headers, content=b"{not json").status_code == 400


def test_unknown_job_is_acknowledged(client, queue):
    queue_id, _ = queue
    r = _deliver(client("telemetry"), telemetry(queue_id, job_id="ghost", status="finished"))
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "unknown_job"


def _structured(data, **attrs):
    """A structured-mode CloudEvent as a Job might write it to Kafka, without the header that
    would make KafkaSource pass it through: the dispatcher wraps it."""
    return {"specversion": "1.0", "id": "job-1/loading/10", "source": "/jobs/job-1",
            "type": constants.CE_TELEMETRY, "datacontenttype": "application/json", "data": data, **attrs}


def test_a_wrapped_structured_event_is_read_as_the_event(client, queue):
    queue_id, job_ids = queue
    value = _structured(telemetry(queue_id, job_id=job_ids[0], status="loading", records_written=10))
    headers, body = kafka_source_event(value, key=queue_id)
    r = client("telemetry").post("/", headers=headers, content=body)
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "applied", r.text
    job = client("status").get(f"/queues/{queue_id}").json()["data"]["jobs"][0]
    assert job["records_written"] == 10


def test_a_wrapped_envelope_that_is_not_a_valid_event_is_a_400(client, queue):
    queue_id, job_ids = queue
    value = _structured(telemetry(queue_id, job_id=job_ids[0]), specversion="0.1")
    headers, body = kafka_source_event(value, key=queue_id)
    r = client("telemetry").post("/", headers=headers, content=body)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "error"


def test_a_wrapped_event_of_another_type_is_ignored(client, queue):
    queue_id, _ = queue
    value = _structured({"queue_id": queue_id}, type="dev.streamforge.something.else")
    headers, body = kafka_source_event(value, key=queue_id)
    r = client("telemetry").post("/", headers=headers, content=body)
    assert r.status_code == 200 and r.json()["message"].startswith("Ignored"), r.text


def test_skipped_jobs_count_as_not_done_in_progress(client, queue):
    """A loader fails and the queue stops (on_failure stop): the jobs skipped never loaded
    anything, so they are at 0, and the queue's progress is what was really done."""
    queue_id, job_ids = queue
    tc = client("telemetry")
    assert _deliver(tc, telemetry(queue_id, job_id=job_ids[0], status="finished")).status_code == 200
    assert _deliver(tc, telemetry(queue_id, job_id=job_ids[1], status="error", error_message="exchange 500"),
                    offset=1).status_code == 200
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    skipped = [j for j in state["jobs"] if j["status"] == "skipped"]
    assert skipped and all(j["progress"] == 0 for j in skipped), state["jobs"]
    finished = sum(j["status"] == "finished" for j in state["jobs"])
    assert state["progress"] == round(finished / len(state["jobs"]), 4)  # nothing else loaded anything


def test_a_queue_finishes_when_its_last_job_did_even_if_that_report_came_first(client, queue):
    """Reports arrive out of order: the one that finishes the queue may carry an earlier time
    than another job's. The queue's finished_at is its last job's end, never a time that does
    not parse."""
    queue_id, job_ids = queue
    tc = client("telemetry")
    late = {job_ids[0]: "2024-07-01T10:00:00Z"}
    for n, job_id in enumerate(job_ids[:-1]):
        when = late.get(job_id, f"2024-07-01T0{n}:00:00Z")
        assert _deliver(tc, telemetry(queue_id, job_id=job_id, status="finished", finished_at=when),
                        offset=n).status_code == 200
    last = telemetry(queue_id, job_id=job_ids[-1], status="finished", finished_at="not a time")
    assert _deliver(tc, last, offset=len(job_ids)).status_code == 200
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert state["status"] == "finished" and state["finished_at"] == "2024-07-01T10:00:00Z"
