"""Helpers for the integration tests against the real control plane."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes import client

from shared import constants, jobs, runtime
from shared.launch.kube import KubeLauncher
from tests.infra import kube
from tests.infra.kube import ControlPlane

T = TypeVar("T")
KEEP_RUNNING = {"streamforge.test/kwok-keep-running": "true"}
NOWHERE = {"streamforge.test/no-such-node": "true"}  # a nodeSelector no node matches: pods stay Pending


def running_or_pending(manifest: dict[str, Any]) -> None:
    """Even requests: pods Running forever; odd ones: Pending forever (no node matches)."""
    template = manifest["spec"]["template"]
    if int(manifest["metadata"]["labels"][constants.LABEL_JOB_ID]) % 2 == 0:
        template.setdefault("metadata", {}).setdefault("annotations", {}).update(KEEP_RUNNING)
    else:
        template["spec"]["nodeSelector"] = dict(NOWHERE)


def wait_for(cp: ControlPlane, what: str, fn: Callable[[], T], timeout: float = 60.0,
             interval: float = 0.2) -> T:
    return kube.wait_for(cp, what, fn, timeout, interval, log_lines=20)


def start_queue(client: Any, payload: dict[str, Any]) -> str:
    """Start through the in-process `start` function; the queue id."""
    r = client("start").post("/queues/start", json=payload)
    assert r.status_code == 200, r.text
    return r.json()["data"]["queue_id"]


def close_launcher() -> None:
    """Close the KubeLauncher the current runtime built (its sockets and threads)."""
    current = runtime._current
    launcher = current.service._launcher if current is not None else None
    close = getattr(launcher, "close", None)
    if close is not None:
        close()


def use_launcher(launcher: Any) -> None:
    """Make the current runtime's QueueService launch with ``launcher``."""
    close_launcher()
    runtime.get().service._launcher = launcher


@dataclass
class Kube:
    """The control plane, seen from one test's namespace (admin credentials)."""

    cp: ControlPlane
    namespace: str
    api: Any
    extra_namespaces: list[str] = field(default_factory=list)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def queue_jobs(self, queue_id: str, namespace: str | None = None) -> list[Any]:
        return list(self.batch.list_namespaced_job(
            namespace or self.namespace, label_selector=jobs.queue_selector(queue_id)).items)

    def queue_pods(self, queue_id: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(
            self.namespace, label_selector=jobs.queue_selector(queue_id)).items)

    def new_namespace(self, prefix: str = "it") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        self.extra_namespaces.append(name)
        return name

    def wait(self, what: str, fn: Callable[[], T], timeout: float = 60.0) -> T:
        return wait_for(self.cp, what, fn, timeout)


class PatchingLauncher(KubeLauncher):
    """The real launcher, with ``patch(manifest)`` applied to a copy of each manifest first.

    Stands in for what the test harness needs and the product has no knob for
    (kwok pod annotations, a nodeSelector nobody matches)."""

    def __init__(self, *args: Any, patch: Callable[[dict[str, Any]], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._patch = patch

    def launch(self, manifests: list[dict[str, Any]]) -> list[str]:
        patched = [copy.deepcopy(m) for m in manifests]
        for m in patched:
            self._patch(m)
        return super().launch(patched)


def pod_template(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]


def job_labels(job: Any) -> dict[str, str]:
    return dict(job.metadata.labels or {})


def is_complete(job: Any) -> bool:
    conditions = (job.status.conditions if job.status else None) or []
    return any(c.type == "Complete" and c.status == "True" for c in conditions)


def phase(pod: Any) -> str | None:
    return pod.status.phase if pod.status else None


def names(objs: list[Any]) -> list[str]:
    return sorted(o.metadata.name for o in objs)


def yaml_documents(path: Any) -> list[dict[str, Any]]:
    import yaml

    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def apply(api: Any, path: Any, namespace: str, **kwargs: Any) -> list[Any]:
    """Create every document of a YAML file in ``namespace``; the API server's answers."""
    from kubernetes import utils

    created = []
    for doc in yaml_documents(path):
        created.extend(utils.create_from_dict(api, doc, namespace=namespace, **kwargs))
    return created


def status_of(fn: Callable[[], Any]) -> int:
    """The HTTP status of an API call: 200 when it succeeds, else the ApiException's."""
    from kubernetes.client.exceptions import ApiException

    try:
        fn()
    except ApiException as e:
        return int(e.status)
    return 200


# ---------------------------------------------------------------------------------------------
# The functions as a real server fed by a real Job watch (test_kube_reconcile, _admission).
# ---------------------------------------------------------------------------------------------


class Reconciler:
    """Functions-framework serving target `all` with the test's environment (same state store as
    the in-process functions: another instance), and a JobWatcher posting the namespace's Job
    events to it as ApiServerSource does."""

    def __init__(self, kube: Kube, log_dir: Any) -> None:
        import os

        from tests.servers import FunctionServer

        self.kube = kube
        self.server = FunctionServer("all", dict(os.environ), log_dir)
        self.watcher: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *, watch: bool = True) -> Reconciler:
        self.server.start()
        if watch:
            from shared.kube_watch import JobWatcher

            self.watcher = JobWatcher(self.kube.cp.api_client(), self.kube.namespace, self.server.url + "/")
            self._thread = threading.Thread(target=self.watcher.run, args=(self._stop,), daemon=True,
                                            name="job-watcher")
            self._thread.start()
        return self

    def stop_watching(self) -> None:
        """No Job event reaches the functions after this returns."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=20)
            assert not self._thread.is_alive(), "the JobWatcher did not stop"
            self._thread = None
        if self.watcher is not None:
            self.watcher.sink.close()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.server.call(method, path, body)

    def log_tail(self, chars: int = 3000) -> str:
        return self.server.log_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        self.stop_watching()
        self.server.stop()


def queue_state(client: Any, queue_id: str) -> dict[str, Any]:
    r = client("status").get(f"/queues/{queue_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def job_targets(found: list[Any]) -> list[str]:
    """The targets of Jobs (from their labels), sorted."""
    from shared import constants

    return sorted(job_labels(j)[constants.LABEL_TARGET] for j in found)


def confirm_stopped(client: Any, kube: Kube, queue_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait for the cluster to drop every Job and pod of the queue, then let the sweep confirm it."""
    kube.wait("every Job and pod of the queue gone",
              lambda: not kube.queue_jobs(queue_id) and not kube.queue_pods(queue_id), timeout=timeout)
    if queue_state(client, queue_id)["status"] == "stopping":
        swept = client("stop").post("/sweep")
        assert swept.status_code == 200, swept.text
    return queue_state(client, queue_id)
