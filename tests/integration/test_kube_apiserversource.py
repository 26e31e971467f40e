"""Knative's real ApiServerSource adapter (eventing/apiserver-source.yaml) on the real control plane.

What it delivers and how (the product relies on both), and the stop it confirms: the adapter
runs as the ServiceAccount the manifest names, with eventing/rbac.yaml's permissions, its
configuration rendered from the manifest as the eventing controller renders it
(tests/infra/apiserver_source.py). Events go either to a small recording sink of the test's
own, or to the functions as a real server (kubeutil.Reconciler).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client as k8s

from shared import runtime
from shared.adapters.launch.kube import KubeLauncher
from shared.core import cluster, constants
from tests.infra import apiserver_source as ass
from tests.infra.children import free_port
from tests.integration.kubeutil import (
    JOB_SOURCE,
    KEEP_RUNNING,
    NOWHERE,
    Kube,
    PatchingLauncher,
    Reconciler,
    job_source,
    phase,
    queue_state,
    start_queue,
    use_launcher,
)

MANAGED = {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}
HOLD = "streamforge.test/hold"  # a finalizer: the pod takes its time to go (a slow kubelet)
TWO_JOBS = {"symbol": "ETHUSDT", "time_range": "2024-01-01:2024-01-03", "mode": "parallel",
            "requests": [{"target": "loader-producer", "type": t} for t in ("api_trades", "api_candles_5m")]}


# ---------------------------------------------------------------------------------------------
# A sink of the test's own: records every request, answers chosen codes.
# ---------------------------------------------------------------------------------------------


class RecordingSink:
    """Records every request; answers ``answers[name]`` (one code per attempt, then 200) to the
    first event about the object called ``name``, 200 to everything else."""

    def __init__(self, answers: dict[str, list[int]] | None = None) -> None:
        self.answers = answers or {}
        self.requests: list[dict[str, Any]] = []
        self._first: dict[str, str] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code = sink._answer(headers, body)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="recording-sink")

    def _answer(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            name, event_id = headers.get("ce-name", ""), headers.get("ce-id", "")
            first = self._first.setdefault(name, event_id)
            code = 200
            if event_id == first and name in self.answers:
                tried = sum(1 for r in self.requests if r["id"] == event_id)
                codes = self.answers[name]
                code = codes[tried] if tried < len(codes) else 200
            self.requests.append({"id": event_id, "name": name, "type": headers.get("ce-type"),
                                  "subject": headers.get("ce-subject"), "headers": headers, "body": body,
                                  "code": code, "at": time.monotonic()})
            return code

    def __enter__(self) -> RecordingSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def about(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["name"] == name]

    def attempts(self, name: str) -> list[dict[str, Any]]:
        """Every attempt at delivering the first event about ``name`` (same ce-id)."""
        with self._lock:
            first = self._first.get(name)
            return [r for r in self.requests if first and r["id"] == first]


@pytest.fixture
def adapter(kube: Kube, tmp_path: Any) -> Iterator[Any]:
    """adapter(sink_url) -> the real adapter for kube.namespace, started (stopped afterwards)."""
    started: list[ass.ApiServerSourceAdapter] = []

    def start(sink: str) -> ass.ApiServerSourceAdapter:
        started.append(job_source(kube, sink, tmp_path).start())
        return started[-1]

    yield start
    for a in started:
        a.stop()


def a_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod no node takes: it stays Pending, and goes at once when deleted."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeSelector": dict(NOWHERE), "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "registry.invalid/streamforge/test:1"}]}}


def a_suspended_job(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"suspend": True, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "registry.invalid/streamforge/test:1"}]}}}}


# ---------------------------------------------------------------------------------------------
# The configuration, as the controller renders it.
# ---------------------------------------------------------------------------------------------


def test_the_source_config_is_rendered_as_the_controller_does() -> None:
    source = {"metadata": {"name": "s", "annotations": {ass.SKIP_PERMISSIONS: "true"}},
              "spec": {"resources": [
                  {"apiVersion": "v1", "kind": "Pod", "selector": {
                      "matchLabels": {"z": "1", "a": "2"},
                      "matchExpressions": [{"key": "m", "operator": "In", "values": ["y", "x"]},
                                           {"key": "gone", "operator": "DoesNotExist"}]}},
                  {"apiVersion": "apps/v1", "kind": "ReplicaSet"},
                  {"apiVersion": "v1", "kind": "Endpoints", "selector": {}},
                  {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}]}}
    config = json.loads(ass.source_config(source, ["ns"]))
    assert config == {
        "namespaces": ["ns"], "allNamespaces": False,
        "resources": [
            {"gvr": {"Group": "", "Version": "v1", "Resource": "pods"}, "selector": "a=2,!gone,m in (x,y),z=1"},
            {"gvr": {"Group": "apps", "Version": "v1", "Resource": "replicasets"}},
            {"gvr": {"Group": "", "Version": "v1", "Resource": "endpoints"}},
            {"gvr": {"Group": "networking.k8s.io", "Version": "v1", "Resource": "ingresses"}},
        ],
        "mode": "Reference",  # the API's default when the manifest says nothing
        "failFast": True,
    }
    assert ass.service_account(source) == "default"


def test_the_manifest_renders_one_watch_per_resource_it_names() -> None:
    source = ass.load_source(JOB_SOURCE)
    env = ass.adapter_env(source, namespace="streamforge", sink="http://sink")
    config = json.loads(env["K_SOURCE_CONFIG"])
    assert config["namespaces"] == ["streamforge"] and config["allNamespaces"] is False
    assert config["mode"] == source["spec"]["mode"]
    wanted = [(r["apiVersion"], r["kind"], r["selector"]["matchLabels"]) for r in source["spec"]["resources"]]
    assert len(config["resources"]) == len(wanted)
    for (api_version, kind, labels), watch in zip(wanted, config["resources"], strict=True):
        gvr = watch["gvr"]
        assert "/".join(p for p in (gvr["Group"], gvr["Version"]) if p) == api_version
        assert gvr["Resource"] == kind.lower() + "s"
        assert watch["selector"] == ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    assert (env["NAME"], env["NAMESPACE"], env["K_SINK"]) == (source["metadata"]["name"], "streamforge", "http://sink")
    assert ass.service_account(source) == source["spec"]["serviceAccountName"]


# ---------------------------------------------------------------------------------------------
# What it delivers.
# ---------------------------------------------------------------------------------------------


@pytest.mark.kube
def test_what_the_adapter_delivers(kube: Kube, adapter: Any) -> None:
    ns = kube.namespace
    kube.core.create_namespaced_pod(ns, a_pod("before", MANAGED))  # exists before the adapter starts
    with RecordingSink() as sink:
        started = adapter(sink.url)
        kube.core.create_namespaced_pod(ns, a_pod("stranger", {"app": "other"}))  # not selected
        kube.core.create_namespaced_pod(ns, a_pod("during", MANAGED))
        kube.batch.create_namespaced_job(ns, a_suspended_job("job-during", MANAGED))
        kube.core.delete_namespaced_pod("before", ns, grace_period_seconds=0)
        kube.wait("the pod's and the Job's add, the earlier pod's delete", lambda: {
            (r["name"], r["type"]) for r in sink.requests} >= {
            ("during", cluster.ADD), ("job-during", cluster.ADD), ("before", cluster.DELETE)})
        time.sleep(1)

        # An object that existed at start gets no add: only its later changes are delivered.
        kinds = [r["type"] for r in sink.about("before")]
        assert cluster.ADD not in kinds and kinds[-1] == cluster.DELETE, kinds
        assert sink.about("stranger") == []  # the selector holds
        assert {r["type"] for r in sink.requests} <= {cluster.ADD, cluster.UPDATE, cluster.DELETE}

        [pod_add] = [r for r in sink.about("during") if r["type"] == cluster.ADD]
        h = pod_add["headers"]
        assert (h["ce-specversion"], h["ce-source"], h["ce-subject"]) == (
            "1.0", kube.cp.server, f"/apis/v1/namespaces/{ns}/pods/during")  # sic: /apis/v1, not /api/v1
        assert (h["ce-kind"], h["ce-name"], h["ce-namespace"], h["ce-apiversion"]) == ("Pod", "during", ns, "v1")
        assert h["content-type"] == "application/json" and h["kn-namespace"] == ns
        uuid.UUID(h["ce-id"])  # a fresh UUID per event (so a redelivery is not a duplicate by id)
        assert len({r["id"] for r in sink.requests}) == len(sink.requests)
        pod = json.loads(pod_add["body"])
        assert (pod["kind"], pod["apiVersion"], pod["metadata"]["name"]) == ("Pod", "v1", "during")
        assert pod["metadata"]["labels"] == MANAGED

        [job_add] = [r for r in sink.about("job-during") if r["type"] == cluster.ADD]
        assert job_add["headers"]["ce-subject"] == f"/apis/batch/v1/namespaces/{ns}/jobs/job-during"
        assert json.loads(job_add["body"])["kind"] == "Job"
        assert started.refused() == [] and started.alive()
        assert len(started.sent()) == len(sink.requests)


@pytest.mark.kube
def test_a_500_is_not_retried_a_503_is(kube: Kube, adapter: Any) -> None:
    """The sink answers the first attempt of each pod's first event with a code; then 200."""
    once = {"code-500": 500, "code-503": 503, "code-502": 502, "code-504": 504, "code-429": 429,
            "code-404": 404, "code-413": 413, "code-409": 409, "code-422": 422, "code-400": 400}
    answers = {name: [code] for name, code in once.items()} | {"always-503": [503] * 10}
    with RecordingSink(answers) as sink:
        started = adapter(sink.url)
        for name in answers:
            kube.core.create_namespaced_pod(kube.namespace, a_pod(name, MANAGED))
        kube.wait("every pod's first event answered 200 or given up",
                  lambda: all(sink.attempts(n) and (sink.attempts(n)[-1]["code"] == 200 or len(
                      sink.attempts(n)) == (6 if n == "always-503" else 1)) for n in answers), timeout=60)
        time.sleep(2)  # a retry would have come 100 ms after the first attempt

        attempts = {name: len(sink.attempts(name)) for name in answers}
        retried = {name for name, code in once.items() if code in (404, 413, 429, 502, 503, 504)}
        assert attempts == {name: 2 if name in retried else 1 for name in once} | {"always-503": 6}, attempts
        # A retry is the same request again (same ce-id, same body).
        assert all(len({(r["id"], r["body"]) for r in sink.attempts(n)}) == 1 for n in answers)
        # What was given up on is gone: logged once, never delivered again.
        given_up = sorted(r["subject"].rsplit("/", 1)[-1] for r in started.refused())
        assert given_up == sorted([*(n for n in once if n not in retried), "always-503"])
        tries = sink.attempts("always-503")
        span = tries[-1]["at"] - tries[0]["at"]
        print(f"always-503: 6 attempts over {span:.2f}s")
        assert 2.5 < span < 8.0  # 5 retries after 50 ms * 2^n, n = 1..5: 3.1 s in all


# ---------------------------------------------------------------------------------------------
# The stop it confirms.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def reconciler(kube_env: Kube, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Reconciler]:
    monkeypatch.setenv("JOB_POD_ANNOTATIONS", json.dumps(KEEP_RUNNING))
    runtime.reset()
    served = Reconciler(kube_env, tmp_path).start()
    try:
        yield served
    finally:
        served.close()


def release(kube: Kube, pod_name: str) -> None:
    pod = kube.core.read_namespaced_pod(pod_name, kube.namespace)
    kube.core.patch_namespaced_pod(pod_name, kube.namespace, [{"op": "replace", "path": "/metadata/finalizers",
                                                                "value": [f for f in pod.metadata.finalizers
                                                                          if f != HOLD]}])


@pytest.mark.kube
def test_stop_is_confirmed_by_the_pod_delete_events(reconciler: Reconciler, kube_env: Kube, client: Any) -> None:
    """`stopping` -> `stopped` on the adapter's Pod delete event alone: no sweep, and no
    confirmation loop (the stop is the service's own, not the stop function's request)."""
    kube, served = kube_env, reconciler
    queue_id = start_queue(client, TWO_JOBS)
    kube.wait("2 Jobs running (their Job events)",
              lambda: [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 2)
    held, other = sorted(p.metadata.name for p in kube.queue_pods(queue_id))
    kube.core.patch_namespaced_pod(held, kube.namespace, {"metadata": {"finalizers": [HOLD]}})
    held_subject = f"/apis/v1/namespaces/{kube.namespace}/pods/{held}"

    state, changed = runtime.get().service.stop(queue_id, reason="user stop")  # STOP_GRACE_SECONDS=0
    assert changed and state.status.value == "stopping"
    kube.wait("the Jobs and the other pod gone",
              lambda: not kube.queue_jobs(queue_id) and [p.metadata.name for p in kube.queue_pods(queue_id)] == [held])
    time.sleep(2)  # their delete events came and went: one pod is left, so still stopping
    assert queue_state(client, queue_id)["status"] == "stopping", served.log_tail()
    seen = served.pod_events().count(held_subject)

    release(kube, held)
    state = kube.wait("stopped", lambda: (s := queue_state(client, queue_id))["status"] == "stopped" and s,
                      timeout=15)
    assert served.pod_events().count(held_subject) > seen  # the held pod's delete is what did it
    assert (state["stop_reason"], [j["status"] for j in state["jobs"]]) == ("user stop", ["stopped"] * 2)
    assert kube.queue_pods(queue_id) == [] and kube.queue_jobs(queue_id) == []


@pytest.mark.kube
def test_what_changed_while_the_adapter_was_down_is_never_delivered_drift_repair_finds_it(
        reconciler: Reconciler, kube_env: Kube, client: Any, tmp_path: Any) -> None:
    """A restarted adapter (a rescheduled pod) lists what exists and sends nothing for it."""
    kube, served = kube_env, reconciler
    queue_id = start_queue(client, {**TWO_JOBS, "on_failure": "continue"})
    kube.wait("2 Jobs running", lambda: [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 2)
    served.stop_watching()
    failing = queue_state(client, queue_id)["jobs"][0]["job_name"]
    kube.batch.patch_namespaced_job(failing, kube.namespace, {"spec": {"activeDeadlineSeconds": 1}})
    kube.wait("the Job Failed", lambda: any(c.type == "Failed" and c.status == "True" for c in (
        kube.batch.read_namespaced_job(failing, kube.namespace).status.conditions or [])))

    restarted = job_source(kube, served.server.url, tmp_path / "restarted").start()
    try:
        time.sleep(3)
        assert [s for s in restarted.sent() if s.endswith(f"/jobs/{failing}")] == []
        assert [j["status"] for j in queue_state(client, queue_id)["jobs"]] == ["running"] * 2

        r = client("status").post(f"/queues/{queue_id}/drift")
        assert r.status_code == 200 and r.json()["data"]["repaired"] == 1, r.text
        state = queue_state(client, queue_id)
        assert [j["status"] for j in state["jobs"]] == ["error", "running"]
        assert "DeadlineExceeded" in state["jobs"][0]["error_message"]
    finally:
        restarted.stop()


# ---------------------------------------------------------------------------------------------
# What the telemetry function answers to a cluster event: 503 when it must be retried, never 500.
# ---------------------------------------------------------------------------------------------


def dead_api() -> Any:
    """An ApiClient for an API server that is not there."""
    cfg = k8s.Configuration()
    cfg.host = f"https://127.0.0.1:{free_port()}"
    cfg.verify_ssl = False
    cfg.retries = 0
    return k8s.ApiClient(configuration=cfg)


@pytest.mark.kube
def test_the_last_pod_delete_during_a_kubernetes_outage_is_a_503(kube_env: Kube, client: Any, adapter: Any) -> None:
    """The real event, replayed to `telemetry` while it cannot reach the API server."""
    kube = kube_env
    use_launcher(PatchingLauncher(runtime.get().settings.jobs, patch=lambda m: m["spec"]["template"].setdefault(
        "metadata", {}).setdefault("annotations", {}).update(KEEP_RUNNING)))
    queue_id = start_queue(client, {**TWO_JOBS, "requests": TWO_JOBS["requests"][:1]})
    [pod] = kube.wait("the pod Running", lambda: [p for p in kube.queue_pods(queue_id) if phase(p) == "Running"])
    name = pod.metadata.name
    kube.core.patch_namespaced_pod(name, kube.namespace, {"metadata": {"finalizers": [HOLD]}})
    try:
        with RecordingSink() as sink:
            adapter(sink.url)
            state, _ = runtime.get().service.stop(queue_id, reason="outage")
            assert state.status.value == "stopping"
            release(kube, name)
            [deleted] = kube.wait("the pod's delete event", lambda: [
                r for r in sink.about(name) if r["type"] == cluster.DELETE])
    finally:
        with contextlib.suppress(Exception):
            release(kube, name)

    headers = {k: v for k, v in deleted["headers"].items() if k.startswith("ce-") or k == "content-type"}
    use_launcher(KubeLauncher(runtime.get().settings.jobs, api=dead_api()))
    r = client("telemetry").post("/", headers=headers, content=deleted["body"])
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text  # the adapter retries a 503
    assert queue_state(client, queue_id)["status"] == "stopping"

    use_launcher(KubeLauncher(runtime.get().settings.jobs, api=kube.cp.api_client()))
    r = client("telemetry").post("/", headers=headers, content=deleted["body"])  # the retry, once it is back
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "applied", r.text
    assert queue_state(client, queue_id)["status"] == "stopped"


def job_event(obj: Any, type_: str = cluster.UPDATE) -> tuple[dict[str, str], bytes]:
    """A cluster event with the headers the real adapter sends (see test_what_the_adapter_delivers)."""
    meta = obj.get("metadata") if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) else {}
    name = str(meta.get("name", "x"))
    return {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-source": "https://10.96.0.1:443",
            "ce-type": type_, "ce-subject": f"/apis/batch/v1/namespaces/streamforge/jobs/{name}",
            "ce-kind": "Job", "ce-name": name, "ce-namespace": "streamforge", "ce-apiversion": "batch/v1",
            "content-type": "application/json", "kn-namespace": "streamforge"}, json.dumps(obj).encode()


def test_a_job_event_during_a_state_store_outage_is_a_503(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARANGO_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    runtime.reset()
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "q-1", "labels": {**MANAGED, constants.LABEL_QUEUE_ID: "q"}},
           "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}
    for type_ in (cluster.UPDATE, cluster.DELETE):
        headers, body = job_event(job, type_)
        r = client("telemetry").post("/", headers=headers, content=body)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text


@pytest.mark.parametrize("obj", [
    {"kind": "Job", "metadata": "not an object"},
    {"kind": "Job", "metadata": {"name": "q-1", "labels": ["a", "b"]}},
    {"kind": "Job", "metadata": {"name": "q-1", "labels": MANAGED, "annotations": "x"}},
    {"kind": "Job", "metadata": {"name": "q-1", "labels": {**MANAGED, constants.LABEL_QUEUE_ID: "q"}},
     "status": "Failed"},
    {"kind": "Job", "metadata": {"name": "q-1", "labels": {**MANAGED, constants.LABEL_QUEUE_ID: "q"}},
     "status": {"conditions": ["Failed"]}},
    {"kind": "Job", "metadata": {"name": "q-1", "labels": {**MANAGED, constants.LABEL_QUEUE_ID: "q"}},
     "status": {"conditions": "Failed"}},
    {"kind": "Job", "metadata": {"name": "q-1", "labels": {**MANAGED, constants.LABEL_QUEUE_ID: "q"}},
     "status": {"ready": "1"}},
    {"kind": "Pod", "metadata": {"name": ["p"], "labels": {**MANAGED, constants.LABEL_QUEUE_ID: "q"}}},
    {"kind": "Job", "metadata": {"name": "q-1", "labels": {**MANAGED, constants.LABEL_QUEUE_ID: 7}}},
])
def test_a_malformed_object_in_a_cluster_event_is_a_client_error(client: Any, obj: Any) -> None:
    for type_ in (cluster.UPDATE, cluster.DELETE):
        headers, body = job_event(obj, type_)
        r = client("telemetry").post("/", headers=headers, content=body)
        assert r.status_code < 500, (r.status_code, r.text)  # bad input: acknowledged or refused, never a 500
