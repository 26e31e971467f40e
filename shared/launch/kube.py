"""Launches Jobs on Kubernetes with the official client (in-cluster or kubeconfig)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from shared import constants, jobs
from shared.config import JobSettings
from shared.errors import BackendUnavailable, Conflict, InvalidInput

_TRANSIENT = (HTTPError, OSError)


def _api_client(settings: JobSettings) -> client.ApiClient:
    if settings.kubeconfig:
        return config.new_client_from_config(config_file=settings.kubeconfig)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        return config.new_client_from_config()
    return client.ApiClient()


class KubeLauncher:
    kind = "kubernetes"

    def __init__(self, settings: JobSettings, api: client.ApiClient | None = None) -> None:
        self.namespace = settings.namespace
        self.note = f"Jobs created in namespace {settings.namespace}"
        self._api = api or _api_client(settings)
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kube-launch")

    def _create(self, manifest: dict[str, Any]) -> str:
        name = manifest["metadata"]["name"]
        try:
            self._batch.create_namespaced_job(self.namespace, cast(client.V1Job, manifest))
        except ApiException as e:
            if e.status != 409:
                raise _translate(e, f"create Job {name}") from e
            existing = self._batch.read_namespaced_job(name, self.namespace)
            want = manifest["metadata"]["labels"][constants.LABEL_QUEUE_ID]
            labels = (existing.metadata.labels if existing.metadata else None) or {}
            if labels.get(constants.LABEL_QUEUE_ID) != want:
                raise Conflict(f"Job {name} exists and belongs to another queue") from e
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e
        return name

    def launch(self, manifests: list[dict[str, Any]]) -> list[str]:
        # In parallel: the API server's latency, not ours, bounds a start.
        return list(self._pool.map(self._create, manifests))

    def delete_queue(self, queue_id: str) -> int:
        selector = jobs.queue_selector(queue_id)
        try:
            found = self._batch.list_namespaced_job(self.namespace, label_selector=selector)
            for job in found.items:
                name = cast(client.V1ObjectMeta, job.metadata).name or ""
                try:
                    self._batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
                except ApiException as e:
                    if e.status != 404:
                        raise
            # Pods of deleted Jobs go by garbage collection; delete them now so none lingers.
            self._core.delete_collection_namespaced_pod(self.namespace, label_selector=selector)
        except ApiException as e:
            raise _translate(e, f"delete Jobs of queue {queue_id}") from e
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e
        return len(found.items)

    def delete_jobs(self, names: list[str]) -> None:
        try:
            for name in names:
                try:
                    self._batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
                except ApiException as e:
                    if e.status != 404:
                        raise
                self._core.delete_collection_namespaced_pod(self.namespace, label_selector=f"job-name={name}")
        except ApiException as e:
            raise _translate(e, f"delete Jobs {names}") from e
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e

    def ping(self) -> None:
        try:
            self._batch.list_namespaced_job(self.namespace, limit=1)
        except ApiException as e:
            raise _translate(e, "list Jobs") from e
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e


def _translate(e: ApiException, what: str) -> Exception:
    if e.status in (401, 403):
        return BackendUnavailable("kubernetes", f"{what}: forbidden ({e.status}): {e.reason}")
    if e.status == 422:
        return InvalidInput(f"{what}: rejected by the API server: {e.body}")
    return BackendUnavailable("kubernetes", f"{what}: {e.status} {e.reason}")
