"""eventing/rbac.yaml, proven against a real API server with the RBAC authorizer.

The documents are applied as they are (in the test's namespace), tokens are
requested for their ServiceAccounts, and the functions' launcher runs with
nothing but the `queue-manager` token: enough to run a queue's Jobs, nothing
more.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from shared import runtime
from shared.adapters.launch.kube import KubeLauncher
from shared.core.errors import BackendUnavailable
from shared.examples import load
from tests.conftest import ROOT
from tests.integration.kubeutil import KEEP_RUNNING, Kube, PatchingLauncher, apply, phase, status_of, use_launcher

pytestmark = pytest.mark.kube

RBAC = ROOT / "eventing" / "rbac.yaml"


def keep_running(manifest: dict[str, Any]) -> None:
    manifest["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {}).update(KEEP_RUNNING)


def a_job(name: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "registry.invalid/streamforge/rbac:test"}]}}}}


def a_deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/x:1"}]}}}}


def a_secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"password": "s3cret"}}


def test_rbac_yaml_applies_as_is(kube: Kube) -> None:
    created = apply(kube.api, RBAC, kube.namespace)
    assert sorted((o.kind, o.metadata.name) for o in created) == sorted([
        ("Role", "queue-manager-jobs"), ("Role", "queue-manager-job-watcher"),
        ("RoleBinding", "queue-manager-jobs"), ("RoleBinding", "queue-manager-job-watcher"),
        ("ServiceAccount", "queue-manager"), ("ServiceAccount", "queue-manager-job-watcher"),
    ])
    assert all(o.metadata.namespace == kube.namespace for o in created)


def test_queue_manager_account_runs_queues_and_nothing_else(kube_env: Kube, client: Any) -> None:
    kube = kube_env
    apply(kube.api, RBAC, kube.namespace)
    token = kube.cp.service_account_token(kube.namespace, "queue-manager", create=False)
    sa = kube.cp.api_client(token=token)
    settings = runtime.get().settings.jobs
    use_launcher(PatchingLauncher(settings, api=sa, patch=keep_running))

    ready = client("start").get("/health/ready")  # the launcher's ping lists Jobs as the account
    assert ready.status_code == 200, ready.text

    # start: create (and, for a replay, get) Jobs
    r = client("start").post("/queues/start", json={**load("historical"), "mode": "parallel"})
    assert r.status_code == 200, r.text
    queue_id = r.json()["data"]["queue_id"]
    assert len(kube.queue_jobs(queue_id)) == 6
    service = runtime.get().service
    state = service.get(queue_id)
    again = service.launcher.launch([service.render(state, j) for j in state.jobs])  # every create a 409
    assert len(again) == 6 and len(kube.queue_jobs(queue_id)) == 6
    kube.wait("6 pods Running", lambda: [phase(p) for p in kube.queue_pods(queue_id)] == ["Running"] * 6,
              timeout=90)

    # stop: list and delete Jobs, delete the queue's pods
    stopped = client("stop").post(f"/queues/{queue_id}/stop")
    assert stopped.status_code == 200, stopped.text
    kube.wait("Jobs and pods gone", lambda: not kube.queue_jobs(queue_id) and not kube.queue_pods(queue_id))

    # ... and nothing else, even in its own namespace
    ns = kube.namespace
    kube.core.create_namespaced_secret(ns, a_secret("streamforge-kafka"))
    core, batch, apps = k8s.CoreV1Api(sa), k8s.BatchV1Api(sa), k8s.AppsV1Api(sa)
    assert status_of(lambda: core.read_namespaced_secret("streamforge-kafka", ns)) == 403
    assert status_of(lambda: core.list_namespaced_secret(ns)) == 403
    assert status_of(lambda: core.create_namespaced_secret(ns, a_secret("mine"))) == 403
    assert status_of(lambda: apps.create_namespaced_deployment(ns, a_deployment("mine"))) == 403
    assert status_of(lambda: core.create_namespaced_pod(ns, a_job("p")["spec"]["template"] | {
        "metadata": {"name": "p"}})) == 403
    assert status_of(lambda: batch.patch_namespaced_job("x", ns, {"metadata": {"labels": {"a": "b"}}})) == 403
    assert status_of(lambda: core.list_namespace()) == 403

    # ... and nowhere else: another namespace's Jobs are out of reach
    other = kube.new_namespace("other")
    kube.batch.create_namespaced_job(other, a_job("theirs"))
    assert status_of(lambda: batch.list_namespaced_job(other)) == 403
    assert status_of(lambda: batch.read_namespaced_job("theirs", other)) == 403
    assert status_of(lambda: batch.create_namespaced_job(other, a_job("mine"))) == 403
    assert status_of(lambda: batch.delete_namespaced_job("theirs", other)) == 403
    assert status_of(lambda: core.delete_collection_namespaced_pod(other)) == 403
    elsewhere = KubeLauncher(dataclasses.replace(settings, namespace=other), api=kube.cp.api_client(token=token))
    try:
        with pytest.raises(BackendUnavailable, match=r"forbidden \(403\)"):
            elsewhere.launch([service.render(state, state.jobs[0])])
        with pytest.raises(BackendUnavailable, match=r"forbidden \(403\)"):
            elsewhere.delete_queue(queue_id)
        with pytest.raises(BackendUnavailable, match=r"forbidden \(403\)"):
            elsewhere.ping()
    finally:
        elsewhere.close()
    assert kube.batch.read_namespaced_job("theirs", other).metadata.name == "theirs"


def test_job_watcher_account_watches_jobs_and_creates_none(kube: Kube) -> None:
    apply(kube.api, RBAC, kube.namespace)
    token = kube.cp.service_account_token(kube.namespace, "queue-manager-job-watcher", create=False)
    batch, core = k8s.BatchV1Api(kube.cp.api_client(token=token)), k8s.CoreV1Api(kube.cp.api_client(token=token))
    ns = kube.namespace
    kube.batch.create_namespaced_job(ns, a_job("before"))

    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def follow() -> None:
        for event in w.stream(batch.list_namespaced_job, ns, timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if ("ADDED", "during") in seen:
                w.stop()

    watcher = threading.Thread(target=follow)
    watcher.start()
    time.sleep(0.5)
    kube.batch.create_namespaced_job(ns, a_job("during"))
    watcher.join(30)
    assert not watcher.is_alive()
    assert ("ADDED", "before") in seen and ("ADDED", "during") in seen, seen
    assert [j.metadata.name for j in batch.list_namespaced_job(ns).items] == ["before", "during"]

    assert status_of(lambda: batch.create_namespaced_job(ns, a_job("mine"))) == 403
    assert status_of(lambda: batch.delete_namespaced_job("before", ns)) == 403
    core.list_namespaced_pod(ns)  # it watches pods too: their deletion confirms a stop
    assert status_of(lambda: core.delete_collection_namespaced_pod(ns)) == 403
    assert status_of(lambda: core.read_namespaced_secret("anything", ns)) == 403
    other = kube.new_namespace("other")
    assert status_of(lambda: batch.list_namespaced_job(other)) == 403
