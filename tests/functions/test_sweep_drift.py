"""The sweep notices Jobs whose end no event announced (local launcher, in process).

Knative's ApiServerSource adapter drops an event its sink answered 500, gives up on a 503
after ~3 s and sends nothing for what changed while it was down. The embedded default's
launcher keeps each Job as a manifest file and reports it back as the cluster's Job
(`observe`): writing a status into the file is the cluster's Job changing without an event.
"""

from __future__ import annotations

import json
import time

import pytest

from shared import runtime
from shared.core import clock
from shared.core.errors import BackendUnavailable
from shared.services import sweep


def _legacy(symbol: str, **extra):
    return {"symbol": symbol, "time_range": "2024-01-01:2024-01-03",
            "requests": [{"target": "loader-producer", "type": "api_trades"}], **extra}


def _start(client, payload) -> str:
    r = client("start").post("/queues/start", json=payload)
    assert r.status_code == 200, r.text
    return r.json()["data"]["queue_id"]


def _state(client, queue_id):
    return client("status").get(f"/queues/{queue_id}").json()["data"]


def _manifest(local, state, index=0):
    return local / "jobs" / state["id"] / f"{state['jobs'][index]['job_name']}.json"


def _cluster_says(local, state, *, status, index=0):
    """The Job as the cluster has it now: `status` is its .status (or None: the Job is gone)."""
    path = _manifest(local, state, index)
    if status is None:
        path.unlink()
        return
    job = json.loads(path.read_text())
    job["status"] = status
    path.write_text(json.dumps(job))


def _sweep(client):
    r = client("stop").post("/sweep")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _counting_observe(monkeypatch):
    launcher = runtime.get().service.launcher
    calls: list[str] = []
    real = launcher.observe

    def observe(queue_id):
        calls.append(queue_id)
        return real(queue_id)

    monkeypatch.setattr(launcher, "observe", observe)
    return calls


@pytest.fixture
def drift_after_1s(monkeypatch):
    monkeypatch.setenv("DRIFT_AFTER_SECONDS", "1")
    runtime.reset()


COMPLETE = {"succeeded": 1, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                           {"type": "Complete", "status": "True"}]}
FAILED = {"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                       "message": "Job has reached the specified backoff limit"}]}


@pytest.mark.parametrize(("cluster", "queue", "job", "reason"), [
    (COMPLETE, "finished", "finished", None),
    (FAILED, "error", "error", "BackoffLimitExceeded"),
    (None, "error", "error", "deleted outside"),
], ids=["completed", "failed", "deleted-by-hand"])
def test_a_job_that_ended_without_an_event_is_noticed_by_the_sweep(
        client, isolate_environment, drift_after_1s, cluster, queue, job, reason):
    state = _state(client, _start(client, _legacy("BTCUSDT")))
    assert state["jobs"][0]["status"] == "launched"
    _cluster_says(isolate_environment, state, status=cluster)

    report = _sweep(client)  # launched a moment ago: not compared yet
    assert _state(client, state["id"])["status"] == "loading"
    assert (report.get("drift_checked", []), report.get("repaired", [])) == ([], [])

    time.sleep(1.1)
    report = _sweep(client)
    after = _state(client, state["id"])
    assert (after["status"], after["jobs"][0]["status"]) == (queue, job)
    if reason:
        assert reason in after["error_message"]
    assert (report["drift_checked"], report["repaired"], report["failed"]) == ([state["id"]], [state["id"]], [])
    assert _sweep(client)["drift_checked"] == []  # ended: never compared again


def test_a_running_job_is_compared_only_once_its_status_is_old(client, isolate_environment, monkeypatch):
    """Default threshold (120 s): a Job the cluster shows Complete 2 minutes after it started."""
    state = _state(client, _start(client, _legacy("BTCUSDT")))
    _cluster_says(isolate_environment, state, status=COMPLETE)
    calls = _counting_observe(monkeypatch)
    _sweep(client)
    assert calls == [] and _state(client, state["id"])["status"] == "loading"

    later = clock.plus(clock.now(), 121)
    monkeypatch.setattr(sweep.clock, "now", lambda: later)  # the sweep runs 2 minutes later
    report = _sweep(client)
    assert _state(client, state["id"])["status"] == "finished" and calls == [state["id"]]
    assert report["repaired"] == [state["id"]]


def test_a_slot_held_by_a_job_that_ended_silently_goes_to_the_waiting_queue_in_the_same_sweep(
        client, isolate_environment, monkeypatch):
    monkeypatch.setenv("JOB_LIMITS", json.dumps({"loader-producer": 1}))
    monkeypatch.setenv("DRIFT_AFTER_SECONDS", "0")
    runtime.reset()
    first = _state(client, _start(client, _legacy("ETHUSDT")))
    waiting = _start(client, _legacy("BTCUSDT"))
    assert _state(client, waiting)["jobs"][0]["status"] == "pending"
    _cluster_says(isolate_environment, first, status=COMPLETE)
    report = _sweep(client)
    assert _state(client, first["id"])["status"] == "finished"
    assert _state(client, waiting)["jobs"][0]["status"] == "launched"
    assert report["repaired"] == [first["id"]]


def test_in_sync_queues_are_compared_and_left_alone(client, drift_after_1s):
    queue_id = _start(client, _legacy("BTCUSDT"))
    time.sleep(1.1)
    report = _sweep(client)
    assert (report.get("drift_checked"), report.get("repaired")) == ([queue_id], [])
    assert _state(client, queue_id)["jobs"][0]["status"] == "launched"


def test_at_most_the_budget_per_sweep_stalest_first(client, isolate_environment, monkeypatch):
    monkeypatch.setenv("DRIFT_AFTER_SECONDS", "0")
    monkeypatch.setenv("DRIFT_CHECKS_PER_SWEEP", "4")
    runtime.reset()
    queues = []
    for symbol in ("AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT", "FFFUSDT", "GGGUSDT"):
        queues.append(_state(client, _start(client, _legacy(symbol))))
        time.sleep(0.01)  # distinct launch stamps (milliseconds): the first is the stalest
    for state in queues:
        _cluster_says(isolate_environment, state, status=COMPLETE)
    calls = _counting_observe(monkeypatch)

    report = _sweep(client)
    assert len(calls) == 4 and report.get("drift_checked") == calls == report.get("repaired")
    assert calls[:2] == [queues[0]["id"], queues[1]["id"]], "half the budget to the stalest"
    assert len(set(calls)) == 4
    while len(calls) < len(queues):  # a queue repaired is no longer a candidate
        before = len(calls)
        _sweep(client)
        assert 0 < len(calls) - before <= 4
    assert sorted(calls) == sorted(q["id"] for q in queues)
    assert {_state(client, q["id"])["status"] for q in queues} == {"finished"}


def test_the_turn_reaches_every_candidate_however_stale_the_others_are():
    """Ten queues always the stalest (long healthy Jobs) and a budget of 4: the other 20
    candidates still come up, each within ceil((30 - 2) / 2) = 14 minutes."""
    candidates = {f"long-{i:02}": 10_000.0 + i for i in range(10)} | {f"q-{i:02}": 200.0 for i in range(20)}
    start = "2026-01-01T00:00:00.000Z"
    seen: dict[str, int] = {}
    for minute in range(14):
        picked = sweep.drift_turn(candidates, 4, clock.plus(start, 60 * minute))
        assert len(picked) == 4 == len(set(picked))
        assert picked[:2] == ["long-09", "long-08"]
        for q in picked:
            seen.setdefault(q, minute)
    assert set(seen) == set(candidates)
    assert sweep.drift_turn(candidates, 40, start)[:3] == ["long-09", "long-08", "long-07"]
    assert sweep.drift_turn(candidates, 0, start) == []
    assert len(set().union(*(sweep.drift_turn(candidates, 1, clock.plus(start, 60 * m)) for m in range(30)))) == 30


def test_one_queues_trouble_does_not_stop_the_others(client, isolate_environment, drift_after_1s):
    broken = _state(client, _start(client, _legacy("ETHUSDT")))
    time.sleep(0.01)
    done = _state(client, _start(client, _legacy("BTCUSDT")))
    _cluster_says(isolate_environment, broken, status="Failed")  # not an object: refused, 422-like
    _cluster_says(isolate_environment, done, status=COMPLETE)
    time.sleep(1.1)
    report = _sweep(client)
    assert _state(client, done["id"])["status"] == "finished"
    assert _state(client, broken["id"])["status"] == "loading"
    assert [f.split(":")[0] for f in report["failed"]] == [broken["id"]]
    assert report["repaired"] == [done["id"]]


def test_a_cluster_outage_costs_one_call_not_one_per_queue(client, drift_after_1s, monkeypatch):
    queues = [_start(client, _legacy(symbol)) for symbol in ("ETHUSDT", "BTCUSDT", "SOLUSDT")]
    launcher = runtime.get().service.launcher
    calls: list[str] = []

    def down(queue_id):
        calls.append(queue_id)
        raise BackendUnavailable("kubernetes", "connection refused")

    monkeypatch.setattr(launcher, "observe", down)
    time.sleep(1.1)
    report = _sweep(client)
    assert len(calls) == 1 and report.get("drift_checked") == [] and len(report["failed"]) == 1
    assert "kubernetes unavailable" in report["failed"][0]
    assert {_state(client, q)["status"] for q in queues} == {"loading"}


def test_a_state_store_outage_is_a_503(client, monkeypatch):
    store = runtime.get().service.store

    def down(**kwargs):
        raise BackendUnavailable("arangodb", "connection refused")

    monkeypatch.setattr(store, "list", down)
    r = client("stop").post("/sweep")
    assert r.status_code == 503, r.text


@pytest.mark.parametrize(("name", "value"), [
    ("DRIFT_AFTER_SECONDS", "-1"), ("DRIFT_AFTER_SECONDS", "two minutes"), ("DRIFT_AFTER_SECONDS", "nan"),
    ("DRIFT_CHECKS_PER_SWEEP", "-1"), ("DRIFT_CHECKS_PER_SWEEP", "1.5")])
def test_bad_drift_settings_are_refused_at_startup(name, value):
    from shared.core.config import Settings

    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})
    jobs = Settings.from_env({}).jobs
    assert (jobs.drift_after_seconds, jobs.drift_checks_per_sweep) == (120.0, 50)
