"""Smoke tests of the real control plane (tests/infra/kube.py): Jobs are
created through the API, their pods scheduled onto the kwok node, run and
complete; the Job, TTL-after-finished and garbage-collector controllers work;
ServiceAccount tokens obey RBAC."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import kubernetes.config
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.infra.kube import ControlPlane, wait_for

pytestmark = pytest.mark.kube

T = TypeVar("T")


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    core = client.CoreV1Api(control_plane.api_client())
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def make_job(
    name: str,
    *,
    ttl: int | None = None,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
) -> client.V1Job:
    return client.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            ttl_seconds_after_finished=ttl,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    node_selector=node_selector,
                    containers=[
                        client.V1Container(
                            name="main",
                            # kwok never pulls or runs it.
                            image="registry.invalid/streamforge/pipeline:smoke",
                            command=["run-pipeline"],
                        )
                    ],
                ),
            ),
        ),
    )


def job_pods(core: client.CoreV1Api, ns: str, job: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items)


# The client's models type every field Optional; these read what the tests assert on.
def condition(job: Any, ctype: str) -> bool:
    return any(c.type == ctype and c.status == "True" for c in (job.status.conditions or []))


def phase(pod: Any) -> str | None:
    return pod.status.phase if pod.status else None


def exit_code(pod: Any) -> int | None:
    statuses = pod.status.container_statuses or []
    terminated = statuses[0].state.terminated if statuses else None
    return terminated.exit_code if terminated else None


def finished_job(batch: client.BatchV1Api, name: str, ns: str, ctype: str) -> Any:
    job = batch.read_namespaced_job_status(name, ns)
    return job if condition(job, ctype) else None


def test_control_plane_is_ready(control_plane: ControlPlane) -> None:
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    node: Any = core.read_node(control_plane.node_name)
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    assert not node.spec.taints
    core.read_namespace("default")
    version = client.VersionApi(api).get_code()
    assert version.git_version.startswith("v1.")
    assert control_plane.kubeconfig_path.is_file()
    assert control_plane.server.startswith("https://127.0.0.1:")
    print(f"control plane {version.git_version} started in {control_plane.startup_seconds}")

    # The admin kubeconfig works with the client's own loader.
    from_kubeconfig = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig_path))
    with from_kubeconfig:
        names = [n.metadata.name for n in client.CoreV1Api(from_kubeconfig).list_namespace().items if n.metadata]
    assert "default" in names and "kube-system" in names


def test_job_runs_to_completion(control_plane: ControlPlane, namespace: str) -> None:
    api = control_plane.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(namespace, make_job("ok", ttl=600))

    job = wait_for(control_plane, "Job ok Complete", lambda: finished_job(batch, "ok", namespace, "Complete"))
    assert job.status.succeeded == 1
    assert not job.status.failed
    pods = job_pods(core, namespace, "ok")
    assert len(pods) == 1
    assert phase(pods[0]) == "Succeeded"
    assert pods[0].spec is not None and pods[0].spec.node_name == control_plane.node_name
    assert exit_code(pods[0]) == 0


def test_ttl_after_finished_deletes_job_and_pods(control_plane: ControlPlane, namespace: str) -> None:
    api = control_plane.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(namespace, make_job("short-ttl", ttl=1))

    def gone() -> bool:
        try:
            batch.read_namespaced_job("short-ttl", namespace)
            return False
        except ApiException as e:
            return e.status == 404

    wait_for(control_plane, "Job short-ttl deleted by the TTL controller", gone, timeout=90)
    wait_for(
        control_plane,
        "pods of short-ttl garbage-collected",
        lambda: not job_pods(core, namespace, "short-ttl"),
        timeout=60,
    )


@pytest.mark.parametrize("propagation", ["Foreground", "Background"])
def test_delete_running_job_removes_its_pods(control_plane: ControlPlane, namespace: str, propagation: str) -> None:
    api = control_plane.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    name = f"forever-{propagation.lower()}"
    batch.create_namespaced_job(namespace, make_job(name, annotations={"streamforge.test/kwok-keep-running": "true"}))
    wait_for(
        control_plane,
        f"pod of {name} Running",
        lambda: [p for p in job_pods(core, namespace, name) if phase(p) == "Running"],
    )
    time.sleep(1)  # stays Running: kwok's pod-complete stage skips it
    job: Any = batch.read_namespaced_job_status(name, namespace)
    assert job.status.active == 1 and not job.status.succeeded

    batch.delete_namespaced_job(name, namespace, propagation_policy=propagation)
    wait_for(control_plane, f"pods of {name} deleted", lambda: not job_pods(core, namespace, name), timeout=60)

    def job_gone() -> bool:
        try:
            batch.read_namespaced_job(name, namespace)
            return False
        except ApiException as e:
            return e.status == 404

    wait_for(control_plane, f"Job {name} deleted", job_gone, timeout=60)


def test_unschedulable_job_pod_is_deleted(control_plane: ControlPlane, namespace: str) -> None:
    api = control_plane.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(namespace, make_job("pending", node_selector={"no": "such-node"}))
    pods = wait_for(control_plane, "pod of pending created", lambda: job_pods(core, namespace, "pending"))
    assert phase(pods[0]) == "Pending"
    batch.delete_namespaced_job("pending", namespace, propagation_policy="Foreground")
    wait_for(control_plane, "pods of pending deleted", lambda: not job_pods(core, namespace, "pending"), timeout=60)


def test_failing_job(control_plane: ControlPlane, namespace: str) -> None:
    api = control_plane.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(
        namespace,
        make_job("boom", annotations={"streamforge.test/kwok-fail": "true", "streamforge.test/kwok-exit-code": "3"}),
    )
    job = wait_for(control_plane, "Job boom Failed", lambda: finished_job(batch, "boom", namespace, "Failed"))
    assert job.status.failed == 1 and not job.status.succeeded
    pods = job_pods(core, namespace, "boom")
    assert [phase(p) for p in pods] == ["Failed"]
    assert exit_code(pods[0]) == 3


def test_kwok_run_for_keeps_pod_running_first(control_plane: ControlPlane, namespace: str) -> None:
    api = control_plane.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(namespace, make_job("slow", annotations={"streamforge.test/kwok-run-for": "3s"}))
    wait_for(
        control_plane,
        "pod of slow Running",
        lambda: [p for p in job_pods(core, namespace, "slow") if phase(p) == "Running"],
    )
    running_seen = time.monotonic()
    job = wait_for(control_plane, "Job slow Complete", lambda: finished_job(batch, "slow", namespace, "Complete"))
    assert time.monotonic() - running_seen >= 1.5
    assert (job.status.completion_time - job.status.start_time).total_seconds() >= 2


def test_service_account_token_obeys_rbac(control_plane: ControlPlane, namespace: str) -> None:
    token = control_plane.service_account_token(namespace, "launcher")
    as_sa = client.BatchV1Api(control_plane.api_client(token=token))
    with pytest.raises(ApiException) as exc:
        as_sa.list_namespaced_job(namespace)
    assert exc.value.status == 403

    rbac = client.RbacAuthorizationV1Api(control_plane.api_client())
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="job-launcher"),
            rules=[client.V1PolicyRule(api_groups=["batch"], resources=["jobs"], verbs=["get", "list", "create"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="job-launcher"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="job-launcher"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="launcher", namespace=namespace)],
        ),
    )
    wait_for(control_plane, "RBAC to allow listing jobs", lambda: _can_list(as_sa, namespace), timeout=30)
    as_sa.create_namespaced_job(namespace, make_job("by-sa"))
    with pytest.raises(ApiException) as exc:
        as_sa.delete_namespaced_job("by-sa", namespace)
    assert exc.value.status == 403


def _can_list(api: client.BatchV1Api, ns: str) -> bool:
    try:
        api.list_namespaced_job(ns)
        return True
    except ApiException as e:
        if e.status == 403:
            return False
        raise
