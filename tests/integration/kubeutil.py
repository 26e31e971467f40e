"""Helpers for the integration tests against the real control plane."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from kubernetes import client

from shared import jobs, runtime
from shared.launch.kube import KubeLauncher
from tests.infra.kube import ControlPlane

T = TypeVar("T")
KEEP_RUNNING = {"streamforge.test/kwok-keep-running": "true"}
NOWHERE = {"streamforge.test/no-such-node": "true"}  # a nodeSelector no node matches: pods stay Pending


def wait_for(cp: ControlPlane, what: str, fn: Callable[[], T], timeout: float = 60.0,
             interval: float = 0.2) -> T:
    """Poll ``fn`` until it returns something truthy; fail with the component logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    cp.check_alive()
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last value: {last!r}\n{cp.logs_tail(20)}")


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
