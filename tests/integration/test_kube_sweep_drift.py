"""The sweep finishes what Knative's real ApiServerSource adapter never delivered.

The adapter (eventing/apiserver-source.yaml, as the ServiceAccount of eventing/rbac.yaml)
drops an event its sink answered 500, gives up on a 503 after ~3 s and, restarted, sends
nothing for what changed while it was down. Here it is stopped while a Job completes (kwok
plays the kubelet); the sweep, called as the PingSource of eventing/apiserver-source.yaml
calls the `stop` function (a real functions-framework process), finds the Job Complete in
the cluster and finishes the job and the queue.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared import runtime
from tests.integration.kubeutil import (
    JOB_SOURCE,
    KEEP_RUNNING,
    Kube,
    Reconciler,
    is_complete,
    queue_state,
    start_queue,
    yaml_documents,
)
from tests.servers import FunctionServer

pytestmark = pytest.mark.kube

TWO_JOBS = {"symbol": "ETHUSDT", "time_range": "2024-01-01:2024-01-03", "mode": "parallel",
            "requests": [{"target": "loader-producer", "type": t} for t in ("api_trades", "api_candles_5m")]}
DRIFT_AFTER_S = 1


def ping_source() -> dict[str, Any]:
    [source] = [d for d in yaml_documents(JOB_SOURCE) if d["kind"] == "PingSource"]
    return source


def ping(server: FunctionServer, namespace: str) -> tuple[int, Any]:
    """What the PingSource of eventing/apiserver-source.yaml sends its sink each minute
    (knative.dev/eventing pkg/adapter/mtping: a binary CloudEvent with the spec's data)."""
    source = ping_source()
    spec = source["spec"]
    assert spec["sink"]["ref"]["name"] == "queue-stop"
    headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-type": "dev.knative.sources.ping",
               "ce-source": f"/apis/v1/namespaces/{namespace}/pingsources/{source['metadata']['name']}",
               "content-type": spec["contentType"]}
    return server.call("POST", spec["sink"].get("uri", "/"), headers=headers, raw=spec["data"].encode())


@pytest.fixture
def served(kube_env: Kube, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Any) -> Iterator[tuple[Reconciler, FunctionServer]]:
    """Pods that run until told otherwise; the functions and the adapter; the `stop` function."""
    monkeypatch.setenv("JOB_POD_ANNOTATIONS", json.dumps(KEEP_RUNNING))
    monkeypatch.setenv("DRIFT_AFTER_SECONDS", str(DRIFT_AFTER_S))
    runtime.reset()
    reconciler = Reconciler(kube_env, tmp_path).start()
    try:
        with FunctionServer("stop", dict(os.environ), tmp_path) as stop:
            yield reconciler, stop
    finally:
        reconciler.close()


def let_complete(kube: Kube, pod_name: str) -> None:
    """kwok runs the pod to Succeeded once it no longer says to keep running."""
    key = next(iter(KEEP_RUNNING)).replace("/", "~1")
    kube.core.patch_namespaced_pod(pod_name, kube.namespace, [{"op": "remove", "path": f"/metadata/annotations/{key}"}])


def test_a_job_that_completed_while_the_adapter_was_down_is_finished_by_the_sweep(
        served: tuple[Reconciler, FunctionServer], kube_env: Kube, client: Any) -> None:
    kube, (reconciler, stop) = kube_env, served
    queue_id = start_queue(client, TWO_JOBS)
    kube.wait("2 Jobs running (their Job events)",
              lambda: [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 2)
    jobs = queue_state(client, queue_id)["jobs"]
    time.sleep(DRIFT_AFTER_S)
    code, body = ping(stop, kube.namespace)  # in sync: compared, nothing to repair
    assert code == 200 and (body["data"]["drift_checked"], body["data"]["repaired"]) == ([queue_id], []), body
    assert [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 2

    reconciler.stop_watching()
    seen = len(reconciler.job_events())

    for job in jobs:
        [pod] = [p for p in kube.queue_pods(queue_id) if p.metadata.labels.get("job-name") == job["job_name"]]
        let_complete(kube, pod.metadata.name)
    kube.wait("both Jobs Complete in the cluster", lambda: len(found := kube.queue_jobs(queue_id)) == 2 and all(
        is_complete(j) for j in found))
    time.sleep(DRIFT_AFTER_S)
    assert len(reconciler.job_events()) == seen, "the adapter is down: nothing delivered"
    before = queue_state(client, queue_id)
    assert (before["status"], [j["status"] for j in before["jobs"]]) == ("loading", ["running"] * 2)

    started = time.monotonic()
    code, body = ping(stop, kube.namespace)
    took = time.monotonic() - started
    assert code == 200, (code, body, stop.log_path.read_text()[-3000:])
    report = body["data"]
    print(f"sweep with 1 drift check on the real API server: {took * 1000:.0f} ms; report {report}")
    after = queue_state(client, queue_id)
    assert (after["status"], [j["status"] for j in after["jobs"]]) == ("finished", ["finished"] * 2), report
    assert after["finished_at"]
    assert (report["drift_checked"], report["repaired"], report["failed"]) == ([queue_id], [queue_id], [])

    code, body = ping(stop, kube.namespace)  # nothing left to compare
    assert code == 200 and body["data"]["drift_checked"] == [], body


def test_a_job_deleted_while_the_adapter_was_down_fails_its_queue_on_the_sweep(
        served: tuple[Reconciler, FunctionServer], kube_env: Kube, client: Any) -> None:
    kube, (reconciler, stop) = kube_env, served
    queue_id = start_queue(client, {**TWO_JOBS, "requests": TWO_JOBS["requests"][:1]})
    kube.wait("the Job running", lambda: queue_state(client, queue_id)["jobs"][0]["status"] == "running")
    reconciler.stop_watching()
    [job] = queue_state(client, queue_id)["jobs"]
    kube.batch.delete_namespaced_job(job["job_name"], kube.namespace, propagation_policy="Background")
    kube.wait("the Job gone", lambda: kube.queue_jobs(queue_id) == [])
    time.sleep(DRIFT_AFTER_S)
    assert queue_state(client, queue_id)["status"] == "loading"

    code, body = ping(stop, kube.namespace)
    assert code == 200, body
    after = queue_state(client, queue_id)
    assert after["status"] == "error" and "deleted outside" in after["error_message"], body
    assert body["data"]["repaired"] == [queue_id], body
