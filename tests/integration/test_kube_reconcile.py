"""Reconciliation: what the cluster says about the Jobs, without a word of telemetry.

The functions run as a real server (target `all`, the test's environment, the
same state store as the in-process functions); Knative's ApiServerSource
receive adapter, configured from eventing/apiserver-source.yaml and running as
the ServiceAccount of eventing/rbac.yaml, watches the namespace's Jobs and Pods
on the real API server and delivers every change to it. kwok plays the kubelet:
pods complete, fail (`streamforge.test/kwok-fail`) or run forever
(`kwok-keep-running`), set on every Job through the product's own
JOB_POD_ANNOTATIONS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared import runtime
from shared.core import constants
from shared.examples import load
from tests.integration.kubeutil import (
    KEEP_RUNNING,
    Kube,
    Reconciler,
    confirm_stopped,
    is_complete,
    job_targets,
    names,
    phase,
    queue_state,
    start_queue,
)

pytestmark = pytest.mark.kube

FAIL = {"streamforge.test/kwok-fail": "true", "streamforge.test/kwok-exit-code": "3"}
LEGACY = {"symbol": "ETHUSDT", "time_range": "2024-01-01:2024-01-03",
          "requests": [{"target": "loader-producer", "type": "api_trades"}]}


@pytest.fixture
def serve(kube_env: Kube, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Callable[..., Reconciler]]:
    """serve(**env): set env (in-process runtime too), start the server and the adapter."""
    started: list[Reconciler] = []

    def start(*, watch: bool = True, **env: str) -> Reconciler:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        started.append(Reconciler(kube_env, tmp_path).start(watch=watch))
        return started[-1]

    yield start
    for r in started:
        r.close()


start = start_queue


def wait_status(kube: Kube, client: Any, served: Reconciler, queue_id: str, status: str,
                timeout: float = 60) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        state = queue_state(client, queue_id)
        return state if state["status"] == status else None

    try:
        return kube.wait(f"queue {status}", reached, timeout=timeout)
    except BaseException:
        print(served.log_tail())
        raise


def succeeded_at(job: Any) -> Any:
    """When the cluster first said the Job succeeded (SuccessCriteriaMet, then Complete)."""
    return min(c.last_transition_time for c in job.status.conditions or []
               if c.type in ("SuccessCriteriaMet", "Complete") and c.status == "True")


def condition(job: Any, kind: str) -> Any:
    return next((c for c in job.status.conditions or [] if c.type == kind and c.status == "True"), None)


def test_failing_job_that_never_reports_turns_the_queue_error(serve: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    served = serve(JOB_BACKOFF_LIMIT="0", JOB_POD_ANNOTATIONS=json.dumps(FAIL))
    queue_id = start(client, LEGACY)
    [job] = kube.queue_jobs(queue_id)
    assert job.spec.backoff_limit == 0

    state = wait_status(kube, client, served, queue_id, "error")
    assert "BackoffLimitExceeded" in state["error_message"], state
    [stored] = state["jobs"]
    assert stored["status"] == "error" and stored["error_message"].startswith("Job failed (BackoffLimitExceeded)")
    assert state["records_written"] == 0  # no telemetry: all of it came from the Job's own status
    assert len(served.job_events()) >= 2  # at least the add and the Failed update
    # The cluster agrees, and keeps the failed Job (and its one pod: backoffLimit 0) to inspect.
    [job] = kube.queue_jobs(queue_id)
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    [pod] = kube.queue_pods(queue_id)
    assert phase(pod) == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def test_job_deleted_by_hand_fails_the_queue_and_stops_the_rest(serve: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    served = serve(JOB_POD_ANNOTATIONS=json.dumps(KEEP_RUNNING))
    queue_id = start(client, load("historical"))  # dag: 2 loaders + 2 connectors now, 2 waiting
    assert len(kube.queue_jobs(queue_id)) == 4
    kube.wait("the 4 Jobs reported running by their Job events",
              lambda: [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 4 + ["pending"] * 2)

    victim = queue_state(client, queue_id)["jobs"][3]  # the trades connector
    kube.batch.delete_namespaced_job(victim["job_name"], kube.namespace, propagation_policy="Background")

    state = wait_status(kube, client, served, queue_id, "error")
    assert "deleted outside" in state["error_message"], state
    jobs = state["jobs"]
    assert jobs[3]["status"] == "error" and "deleted outside the queue manager" in jobs[3]["error_message"]
    assert [j["status"] for j in jobs] == ["stopped"] * 3 + ["error"] + ["skipped"] * 2
    # on_failure: stop -> the queue's other Jobs (and so their pods) are deleted too; none was launched later.
    kube.wait("no Job or pod of the queue left",
              lambda: not kube.queue_jobs(queue_id) and not kube.queue_pods(queue_id))


def test_jobs_completing_without_telemetry_drive_the_pipeline_to_finished(serve: Any, kube_env: Kube,
                                                                          client: Any) -> None:
    kube = kube_env
    served = serve()  # no annotation: kwok runs every pod to Succeeded
    queue_id = start(client, load("historical"))
    assert job_targets(kube.queue_jobs(queue_id)) == ["arango-connector"] * 2 + ["loader-producer"] * 2

    state = wait_status(kube, client, served, queue_id, "finished", timeout=120)
    assert [j["status"] for j in state["jobs"]] == ["finished"] * 6
    assert state["records_written"] == 0 and all(j["finished_at"] for j in state["jobs"])
    found = {job.metadata.labels[constants.LABEL_JOB_INDEX]: job for job in kube.queue_jobs(queue_id)}
    assert names(list(found.values())) == sorted(j["job_name"] for j in state["jobs"])
    # The functions act on SuccessCriteriaMet; the Job controller adds Complete in a later update.
    kube.wait("every Job Complete in the cluster", lambda: all(is_complete(j) for j in kube.queue_jobs(queue_id)))
    found = {job.metadata.labels[constants.LABEL_JOB_INDEX]: job for job in kube.queue_jobs(queue_id)}
    # Each wave was created only after the Jobs it reads had succeeded in the cluster.
    for later, inputs in (("4", ("2", "3")), ("5", ("4",))):
        created = found[later].metadata.creation_timestamp
        assert all(succeeded_at(found[i]) <= created for i in inputs), (later, inputs)


def test_drift_report_and_repair(serve: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    served = serve(JOB_POD_ANNOTATIONS=json.dumps(KEEP_RUNNING))
    payload = {"symbol": "SOLUSDT", "time_range": "2024-03-01:2024-03-31", "mode": "parallel",
               "on_failure": "continue",
               "requests": [{"target": "loader-producer", "type": t} for t in ("api_trades", "api_candles_1m",
                                                                               "api_candles_1h")]}
    queue_id = start(client, payload)
    kube.wait("3 Jobs running in the state",
              lambda: [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 3)
    r = client("status").get(f"/queues/{queue_id}/drift")
    assert r.status_code == 200 and r.json()["data"]["in_sync"] is True, r.text

    served.stop_watching()  # from here on, the functions hear nothing from the cluster
    jobs = queue_state(client, queue_id)["jobs"]
    failing, deleted = jobs[0]["job_name"], jobs[1]["job_name"]
    kube.batch.patch_namespaced_job(failing, kube.namespace, {"spec": {"activeDeadlineSeconds": 1}})
    kube.batch.delete_namespaced_job(deleted, kube.namespace, propagation_policy="Background")
    kube.wait("the patched Job Failed", lambda: condition(
        kube.batch.read_namespaced_job(failing, kube.namespace), "Failed"))
    kube.wait("the deleted Job gone", lambda: deleted not in names(kube.queue_jobs(queue_id)))
    assert [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 3  # nobody told it

    r = client("status").get(f"/queues/{queue_id}/drift")
    assert r.status_code == 200, r.text
    report = r.json()["data"]
    assert report["in_sync"] is False and report["repaired"] == 0
    by_job = {d["job"]: d for d in report["differences"]}
    assert sorted(by_job) == sorted([jobs[0]["id"], jobs[1]["id"]]), report
    assert by_job[jobs[0]["id"]]["stored"] == "running" and by_job[jobs[0]["id"]]["cluster"] == "error"
    assert "DeadlineExceeded" in by_job[jobs[0]["id"]]["reason"]
    assert (by_job[jobs[1]["id"]]["stored"], by_job[jobs[1]["id"]]["cluster"]) == ("running", "missing")
    assert [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 3  # a GET changes nothing

    r = client("status").post(f"/queues/{queue_id}/drift")
    assert r.status_code == 200 and r.json()["data"]["repaired"] == 2, r.text
    state = queue_state(client, queue_id)
    assert [j["status"] for j in state["jobs"]] == ["error", "error", "running"]
    assert "DeadlineExceeded" in state["jobs"][0]["error_message"]
    assert "deleted outside" in state["jobs"][1]["error_message"]
    assert state["status"] == "loading"  # on_failure: continue, the third Job still runs
    assert len(kube.queue_jobs(queue_id)) == 2  # the repair deleted nothing (the failed Job is kept)

    again = client("status").get(f"/queues/{queue_id}/drift")
    assert again.status_code == 200 and again.json()["data"]["in_sync"] is True, again.text
    assert again.json()["data"]["differences"] == []


def test_job_whose_pod_is_pending_is_not_running(serve: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    served = serve(JOB_NODE_SELECTOR=json.dumps({"streamforge.test/no-such-node": "true"}))
    queue_id = start(client, load("realtime"))  # dependents launch once their inputs are *running*
    assert len(kube.queue_jobs(queue_id)) == 4
    kube.wait("the 4 Jobs' pods created, all Pending (no node matches)",
              lambda: [phase(p) for p in kube.queue_pods(queue_id)] == ["Pending"] * 4
              and all(j.status.active == 1 for j in kube.queue_jobs(queue_id)))
    time.sleep(3)  # the Job events have long reached the functions
    assert len(served.job_events()) >= 4
    assert all(p.spec.node_name is None for p in kube.queue_pods(queue_id))  # nothing ever ran
    assert [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["launched"] * 4 + ["pending"] * 3
    assert len(kube.queue_jobs(queue_id)) == 4, "dependents launched on inputs that never ran"


def test_stop_seen_by_the_source_ends_with_jobs_stopped(serve: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    served = serve(JOB_POD_ANNOTATIONS=json.dumps(KEEP_RUNNING))
    payload = {**LEGACY, "mode": "parallel", "requests": [
        {"target": "loader-producer", "type": t} for t in ("api_trades", "api_candles_5m")]}
    queue_id = start(client, payload)
    kube.wait("2 Jobs running", lambda: [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 2)
    # One pod takes its time to go (a slow kubelet): the stop stays `stopping` meanwhile, as it should.
    held = kube.queue_pods(queue_id)[0].metadata.name
    kube.core.patch_namespaced_pod(held, kube.namespace, {"metadata": {"finalizers": ["streamforge.test/hold"]}})
    before = len(served.job_events())

    code, body = served.call("POST", f"/queues/{queue_id}/stop", {"reason": "user stop"})
    assert code == 200 and body["data"]["status"] == "stopping", body
    kube.wait("the Jobs deleted", lambda: not kube.queue_jobs(queue_id))
    kube.wait("their delete events delivered", lambda: len(served.job_events()) >= before + 2)
    time.sleep(1)
    assert queue_state(client, queue_id)["status"] == "stopping"

    pod = kube.core.read_namespaced_pod(held, kube.namespace)
    kube.core.patch_namespaced_pod(held, kube.namespace, [{"op": "replace", "path": "/metadata/finalizers", "value": [
        f for f in pod.metadata.finalizers if f != "streamforge.test/hold"]}])
    state = confirm_stopped(client, kube, queue_id)
    assert (state["status"], state["stop_reason"]) == ("stopped", "user stop")
    assert [(j["status"], j["error_message"]) for j in state["jobs"]] == [("stopped", None)] * 2
