"""Helpers for the integration tests against the real control plane."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kubernetes import client

from shared import runtime
from shared.adapters.launch.kube import KubeLauncher
from shared.core import constants, jobs
from tests.conftest import ROOT
from tests.infra import kube
from tests.infra.kube import ControlPlane

if TYPE_CHECKING:
    from tests.infra.apiserver_source import ApiServerSourceAdapter

T = TypeVar("T")
KEEP_RUNNING = {"streamforge.test/kwok-keep-running": "true"}
NOWHERE = {"streamforge.test/no-such-node": "true"}  # a nodeSelector no node matches: pods stay Pending


def running_or_pending(manifest: dict[str, Any]) -> None:
    """Even requests: pods Running forever; odd ones: Pending forever (no node matches)."""
    template = manifest["spec"]["template"]
    if int(manifest["metadata"]["labels"][constants.LABEL_JOB_INDEX]) % 2 == 0:
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
# The functions as a real server fed by Knative's real ApiServerSource adapter
# (test_kube_reconcile, _admission, _apiserversource).
# ---------------------------------------------------------------------------------------------

RBAC = ROOT / "eventing" / "rbac.yaml"
JOB_SOURCE = ROOT / "eventing" / "apiserver-source.yaml"


def apply_rbac(kube: Kube, account: str) -> None:
    """eventing/rbac.yaml in the test's namespace, as users apply it, unless ``account`` exists."""
    from kubernetes.client.exceptions import ApiException

    try:
        kube.core.read_namespaced_service_account(account, kube.namespace)
        return
    except ApiException as e:
        if e.status != 404:
            raise
    apply(kube.api, RBAC, kube.namespace)


def adapter_binary_or_skip() -> None:
    """The adapter binary (built by tests/infra/dataplane/build.sh): FAIL under $CI, skip otherwise."""
    from tests.infra.apiserver_source import AdapterError, binary
    from tests.infra.missing import unavailable

    try:
        binary()
    except AdapterError as e:
        unavailable(f"ApiServerSource adapter unavailable: {e}")


def job_source(kube: Kube, sink: str, workdir: Any) -> ApiServerSourceAdapter:
    """The ApiServerSource of eventing/apiserver-source.yaml for ``kube.namespace``, delivering to
    ``sink``, running as the ServiceAccount it names (with eventing/rbac.yaml's permissions)."""
    from tests.infra.apiserver_source import ApiServerSourceAdapter, load_source, service_account

    adapter_binary_or_skip()
    source = load_source(JOB_SOURCE)
    apply_rbac(kube, service_account(source))
    token = kube.cp.service_account_token(kube.namespace, service_account(source), create=False)
    return ApiServerSourceAdapter(source, namespace=kube.namespace, sink=sink, server=kube.cp.server,
                                  ca_path=kube.cp.ca_path, token=token, workdir=workdir)


class Reconciler:
    """Functions-framework serving target `all` with the test's environment (same state store as
    the in-process functions: another instance), and the real ApiServerSource adapter of
    eventing/apiserver-source.yaml delivering the namespace's Job and Pod events to it."""

    def __init__(self, kube: Kube, log_dir: Any) -> None:
        import os

        from tests.servers import FunctionServer

        self.kube = kube
        self.log_dir = log_dir
        self.server = FunctionServer("all", dict(os.environ), log_dir)
        self.adapter: ApiServerSourceAdapter | None = None

    def start(self, *, watch: bool = True) -> Reconciler:
        self.server.start()
        if watch:
            try:  # the sink is the Service's address: its root path
                self.adapter = job_source(self.kube, self.server.url, self.log_dir).start()
            except BaseException:
                self.server.stop()
                raise
        return self

    def stop_watching(self) -> None:
        """No Job or Pod event reaches the functions after this returns."""
        if self.adapter is not None:
            self.adapter.stop()

    def job_events(self) -> list[str]:
        """The subjects of the Job events the functions acknowledged so far."""
        assert self.adapter is not None
        return [s for s in self.adapter.sent() if s.startswith("/apis/batch/v1/")]

    def pod_events(self) -> list[str]:
        assert self.adapter is not None
        return [s for s in self.adapter.sent() if s.startswith("/apis/v1/")]  # sic: not /api/v1

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.server.call(method, path, body)

    def log_tail(self, chars: int = 3000) -> str:
        tail = self.server.log_path.read_text(errors="replace")[-chars:]
        if self.adapter is not None:
            tail += "\n----- adapter -----\n" + self.adapter.log_tail()[-chars:]
        return tail

    def close(self) -> None:
        self.stop_watching()
        self.server.stop()


def queue_state(client: Any, queue_id: str) -> dict[str, Any]:
    r = client("status").get(f"/queues/{queue_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def job_targets(found: list[Any]) -> list[str]:
    """The targets of Jobs (from their labels), sorted."""
    from shared.core import constants

    return sorted(job_labels(j)[constants.LABEL_TARGET] for j in found)


def confirm_stopped(client: Any, kube: Kube, queue_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait for the cluster to drop every Job and pod of the queue, then let the sweep confirm it."""
    kube.wait("every Job and pod of the queue gone",
              lambda: not kube.queue_jobs(queue_id) and not kube.queue_pods(queue_id), timeout=timeout)
    if queue_state(client, queue_id)["status"] == "stopping":
        swept = client("stop").post("/sweep")
        assert swept.status_code == 200, swept.text
    return queue_state(client, queue_id)
