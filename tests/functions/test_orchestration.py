"""Seed pipelines through their whole lifecycle: launch order, failure, retry, plan, live updates."""

from __future__ import annotations

import json
import threading

from shared import runtime
from shared.adapters.state import open_store
from shared.services.service import QueueService
from tests.factories import telemetry


def _start(client, payload, **headers):
    r = client("start").post("/queues/start", json=payload, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]["queue_id"]


def _state(client, queue_id):
    return client("status").get(f"/queues/{queue_id}").json()["data"]


def _statuses(client, queue_id):
    return [j["status"] for j in _state(client, queue_id)["jobs"]]


def _report(client, queue_id, index, status, **extra):
    job_id = _state(client, queue_id)["jobs"][index]["id"]
    r = client("telemetry").post("/", json=telemetry(queue_id, job_id=job_id, status=status, **extra))
    assert r.status_code == 200, r.text


def test_historical_pipeline_launches_in_data_order(client, historical):
    q = _start(client, historical)
    assert _statuses(client, q) == ["launched"] * 4 + ["pending"] * 2
    waiting = _state(client, q)["jobs"][4]["waiting"]
    assert "arango-connector/api_candles_5m to finish" in waiting and "btc_trades_2024_06" in waiting
    for i in range(4):
        _report(client, q, i, "loading")
    assert _statuses(client, q)[4:] == ["pending", "pending"]
    for i in range(4):
        _report(client, q, i, "finished", records_written=100)
    assert _statuses(client, q)[4:] == ["launched", "pending"]
    _report(client, q, 4, "finished", records_written=7)
    assert _statuses(client, q)[5] == "launched"
    _report(client, q, 5, "finished", records_written=1)
    state = _state(client, q)
    assert state["status"] == "finished" and state["records_written"] == 408 and state["progress"] == 1.0


def test_realtime_pipeline_launches_dependents_once_inputs_run(client, realtime):
    q = _start(client, realtime)
    assert _statuses(client, q) == ["launched"] * 4 + ["pending"] * 3
    _report(client, q, 2, "loading")
    assert _statuses(client, q)[4] == "pending"
    _report(client, q, 3, "loading")
    assert _statuses(client, q)[4:] == ["launched", "pending", "pending"]
    _report(client, q, 4, "running")
    assert _statuses(client, q)[5:] == ["launched", "launched"]
    assert client("stop").post(f"/queues/{q}/stop").json()["data"]["status"] == "stopped"


def test_connector_failure_skips_its_dependents_and_retry_reruns_only_those(client, historical):
    q = _start(client, {**historical, "on_failure": "continue"})
    for i in (0, 1, 3):
        _report(client, q, i, "finished", records_written=10)
    _report(client, q, 2, "error", error_message="arango timeout")
    state = _state(client, q)
    assert [j["status"] for j in state["jobs"]] == ["finished", "finished", "error", "finished",
                                                     "skipped", "skipped"]
    assert state["status"] == "error" and "arango timeout" in state["error_message"]
    assert "failed" in state["jobs"][4]["error_message"]
    finished_ids = [j["id"] for j in state["jobs"][:2]]
    r = client("start").post(f"/queues/{q}/retry")
    assert r.status_code == 200, r.text
    state = _state(client, q)
    assert [j["status"] for j in state["jobs"]] == ["finished", "finished", "launched", "finished",
                                                     "pending", "pending"]
    assert [j["id"] for j in state["jobs"][:2]] == finished_ids
    assert [j["attempt"] for j in state["jobs"]] == [0, 0, 1, 0, 1, 1]
    for i in (2, 4, 5):
        _report(client, q, i, "finished", records_written=5)
    assert _state(client, q)["status"] == "finished"
    assert client("start").post(f"/queues/{q}/retry").status_code == 409


def test_default_failure_policy_stops_the_queue(client, historical, isolate_environment):
    q = _start(client, historical)
    _report(client, q, 0, "error", error_message="exchange down")
    state = _state(client, q)
    assert state["status"] == "error"
    assert [j["status"] for j in state["jobs"]] == ["error", "stopped", "stopped", "stopped",
                                                     "skipped", "skipped"]
    left = sorted(p.stem for p in (isolate_environment / "jobs" / q).glob("*.json"))
    assert left == [state["jobs"][0]["job_name"]], "stopped Jobs are deleted, the failed one kept"


def test_plan_launches_nothing(client, historical, isolate_environment):
    r = client("start").post("/queues/plan", json=historical)
    assert r.status_code == 200, r.text
    plan = r.json()["data"]
    assert [j["starts"] == "at start" for j in plan["jobs"]] == [True] * 4 + [False] * 2
    assert plan["jobs"][5]["needs"] == [{"job": 4, "until": "finished", "reason": "collection btc_graph_2024_06"}]
    assert plan["jobs"][4]["manifest"]["kind"] == "Job"
    assert client("status").get("/queues").json()["page"]["total"] == 0
    assert not (isolate_environment / "jobs").exists()
    dry = client("start").post("/queues/start?dry_run=true", json=historical)
    assert dry.json()["message"] == "Queue plan (nothing launched)"


def test_cycle_and_dangling_input_are_422(client, historical):
    cyclic = json.loads(json.dumps(historical))
    cyclic["requests"][0]["depends_on"] = [5]
    r = client("start").post("/queues/start", json=cyclic)
    assert r.status_code == 422 and "cycle" in r.json()["message"]
    dangling = json.loads(json.dumps(historical))
    dangling["requests"][4]["collection_inputs"] = ["btc_candles_1h_2024_06"]
    r = client("start").post("/queues/start", json=dangling)
    assert r.status_code == 422 and "btc_candles_1h_2024_06" in r.text


class CountingLauncher:
    kind = "counting"
    note = "counting"

    def __init__(self):
        self.lock = threading.Lock()
        self.created: list[str] = []

    def launch(self, manifests):
        with self.lock:
            self.created += [m["metadata"]["name"] for m in manifests]
        return [m["metadata"]["name"] for m in manifests]

    def delete_queue(self, queue_id):
        return 0

    def delete_jobs(self, names):
        return None

    def ping(self):
        return None


def test_racing_finished_telemetry_launches_each_dependent_once(client, historical, isolate_environment):
    rt = runtime.get()
    launcher = CountingLauncher()
    base = QueueService(rt.settings, rt.store, rt.bus, launcher)
    q = base.start(base_command(historical)).state
    for i in range(4):
        base.telemetry(telemetry_model(q.id, q.jobs[i].id, "finished"))
    graph = base.get(q.id).jobs[4]
    assert graph.status.value == "launched"
    # Eight "instances", each with its own connection to the store, get the same event at once.
    workers = [QueueService(rt.settings, open_store(rt.settings), rt.bus, launcher)
               for _ in range(8)]
    barrier = threading.Barrier(len(workers))
    event = telemetry_model(q.id, graph.id, "finished")

    def deliver(service):
        barrier.wait()
        service.telemetry(event)

    threads = [threading.Thread(target=deliver, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(launcher.created) == sorted(j.job_name for j in q.jobs)
    assert base.get(q.id).jobs[5].status.value == "launched"


def base_command(payload):
    from shared.core.models import QueueStart

    return QueueStart.parse(payload)


def telemetry_model(queue_id, job_id, status):
    from shared.core.models import Telemetry

    return Telemetry(queue_id=queue_id, job_id=job_id, status=status)


def test_progress_follows_the_time_range(client, historical):
    q = _start(client, historical)
    _report(client, q, 0, "loading", last_loaded_timestamp="2024-06-16T00:00:00Z")
    state = _state(client, q)
    assert state["jobs"][0]["progress"] == 0.5
    assert 0 < state["progress"] < 0.2


def test_watch_streams_changes_and_resumes_from_last_event_id(client, legacy):
    q = _start(client, legacy)
    _report(client, q, 0, "loading", records_written=3)
    _report(client, q, 0, "finished", records_written=9)
    with client("status").stream("GET", f"/queues/{q}/watch") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    assert "event: queue" in text and '"status":"finished"' in text
    with client("status").stream("GET", f"/queues/{q}/watch", headers={"Last-Event-ID": "1"}) as r:
        resumed = "".join(r.iter_text())
    ids = [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")]
    assert ids[0] == 2 and ids == sorted(ids)
    assert "event: dev.streamforge.queue.status.changed" in resumed
    assert client("status").get(f"/queues/{q}/watch", headers={"Last-Event-ID": "x"}).status_code == 400


def test_an_instance_remembering_an_old_state_still_sees_a_retry_by_another(client, historical,
                                                                             isolate_environment):
    rt = runtime.get()
    a = QueueService(rt.settings, open_store(rt.settings), rt.bus, CountingLauncher())
    b = QueueService(rt.settings, open_store(rt.settings), rt.bus, CountingLauncher())
    q = a.start(base_command({**historical, "on_failure": "continue"})).state
    for i in (0, 1, 3):
        a.telemetry(telemetry_model(q.id, q.jobs[i].id, "finished"))
    a.telemetry(telemetry_model(q.id, q.jobs[2].id, "error"))  # a remembers the failed state
    retried = b.retry(q.id)
    new_id = retried.jobs[2].id
    assert new_id != q.jobs[2].id
    assert a.telemetry(telemetry_model(q.id, new_id, "finished")) == "applied"
    assert b.get(q.id).jobs[2].status.value == "finished"


class RefusingLauncher(CountingLauncher):
    """A cluster that refuses every Job for good, as the API server does a name another queue
    holds: a ClientError naming each job."""

    def launch(self, manifests):
        from shared.core.errors import ClientError

        raise ClientError("refused", details=[{"job": m["metadata"]["name"], "error": "name taken"}
                                              for m in manifests])


def test_a_refused_launch_is_a_launch_refused_error_naming_each_job(client, historical):
    import pytest

    from shared.core.errors import LaunchRefused
    from shared.core.models import QueueStart

    rt = runtime.get()
    service = QueueService(rt.settings, rt.store, rt.bus, RefusingLauncher())
    with pytest.raises(LaunchRefused) as caught:
        service.start(QueueStart.parse(historical), idempotency_key="refused-once")
    state = service.get(caught.value.queue_id)
    refused = [j for j in state.jobs if j.launch_refused]
    assert caught.value.refused == {j.job_name: "name taken" for j in refused}
    assert len(refused) == 4  # the loaders and their connectors, launched together
    assert state.status.value == "error"
    with pytest.raises(LaunchRefused):  # the same start again: the same answer, from the stored state
        service.start(QueueStart.parse(historical), idempotency_key="refused-once")
    # A document written before `launch_refused` existed says it in the error text only.
    text, rev = rt.store.get(state.id)
    old = json.loads(text)
    for job in old["jobs"]:
        job.pop("launch_refused", None)
    rt.store.replace(state.id, json.dumps(old), rev=rev)
    with pytest.raises(LaunchRefused) as again:
        service.start(QueueStart.parse(historical), idempotency_key="refused-once")
    # the error text is only on the job that failed; the policy stopped the others
    assert again.value.refused and again.value.refused.items() <= caught.value.refused.items()


def test_a_refused_launch_counts_as_a_failed_job(client, historical):
    from shared.adapters import metrics
    from shared.core.errors import LaunchRefused
    from shared.core.models import QueueStart

    rt = runtime.get()
    before = metrics.JOB_RESULTS.labels("loader-producer", "error")._value.get()
    service = QueueService(rt.settings, rt.store, rt.bus, RefusingLauncher())
    try:
        service.start(QueueStart.parse(historical))
    except LaunchRefused:
        pass
    # the first refusal fails the queue (on_failure stop): the others are stopped, not failed
    assert metrics.JOB_RESULTS.labels("loader-producer", "error")._value.get() - before == 1
