"""Launches Jobs on Kubernetes with the official client (in-cluster or kubeconfig)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from shared.core import constants, jobs
from shared.core.config import JobSettings
from shared.core.errors import BackendUnavailable, Conflict, InvalidInput, QueueManagerError

_TRANSIENT = (HTTPError, OSError)
PING_TTL_S = 30.0


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

    def __init__(self, settings: JobSettings, api: client.ApiClient | None = None, *,
                 workers: int = 8) -> None:
        self.namespace = settings.namespace
        self.note = f"Jobs created in namespace {settings.namespace}"
        self._api = api or _api_client(settings)
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        # At most as many creates in flight as the client keeps connections (default 5 per CPU).
        workers = max(1, min(workers, self._api.configuration.connection_pool_maxsize or workers))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube-launch")
        self._pinged = -PING_TTL_S
        self._classes_seen: dict[str, float] = {}

    def close(self) -> None:
        """Release the worker threads and the API connections."""
        self._pool.shutdown(wait=True)
        self._api.close()

    def _create(self, manifest: dict[str, Any]) -> str:
        name = manifest["metadata"]["name"]
        try:
            for _ in range(3):
                try:
                    self._batch.create_namespaced_job(self.namespace, cast(client.V1Job, manifest))
                    return name
                except ApiException as e:
                    if e.status != 409:
                        raise _translate(e, f"create Job {name}") from e
                # It exists (an earlier attempt made it): adopt it if it is this queue's.
                try:
                    existing = self._batch.read_namespaced_job(name, self.namespace)
                except ApiException as e:
                    if e.status == 404:  # deleted in between (TTL, a stop): create it again
                        continue
                    raise _translate(e, f"read Job {name}") from e
                if existing.metadata and existing.metadata.deletion_timestamp:
                    # Going away (a stop, a TTL): not something to adopt; retry once it is gone.
                    raise BackendUnavailable("kubernetes", f"Job {name} is being deleted; retry")
                want = manifest["metadata"]["labels"][constants.LABEL_QUEUE_ID]
                labels = (existing.metadata.labels if existing.metadata else None) or {}
                if labels.get(constants.LABEL_QUEUE_ID) != want:
                    raise Conflict(f"Job {name} exists and belongs to another queue")
                return name
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e
        raise BackendUnavailable("kubernetes", f"create Job {name}: it keeps appearing and vanishing")

    def _missing_priority_classes(self, manifests: list[dict[str, Any]]) -> set[str]:
        """Classes the Jobs name that do not exist: the API server accepts such a Job, then
        refuses every pod of it, and nothing in the Job's status says so."""
        wanted = {m["spec"]["template"]["spec"].get("priorityClassName") for m in manifests} - {None}
        missing = set()
        for name in wanted:
            if time.monotonic() - self._classes_seen.get(name, -PING_TTL_S) < PING_TTL_S:
                continue
            try:
                client.SchedulingV1Api(self._api).read_priority_class(name)
                self._classes_seen[name] = time.monotonic()
            except ApiException as e:
                if e.status == 404:
                    missing.add(name)
                # 403: not allowed to look (eventing/rbac.yaml grants it); the Job will tell.
            except _TRANSIENT as e:
                raise BackendUnavailable("kubernetes", str(e)) from e
        return missing

    def launch(self, manifests: list[dict[str, Any]]) -> list[str]:
        missing = self._missing_priority_classes(manifests)
        if missing:
            refused = [m["metadata"]["name"] for m in manifests
                       if m["spec"]["template"]["spec"].get("priorityClassName") in missing]
            why = f"PriorityClass {', '.join(sorted(missing))} does not exist (JOB_PRIORITY_CLASSES)"
            raise InvalidInput(why, details=[{"job": name, "error": why} for name in refused])
        # In parallel: the API server's latency, not ours, bounds a start. Every
        # create is awaited, so an error names exactly the Jobs that were not made.
        futures = [(m["metadata"]["name"], self._pool.submit(self._create, m)) for m in manifests]
        names, failed = [], []
        for name, future in futures:
            try:
                names.append(future.result())
            except QueueManagerError as e:
                failed.append((name, e))
        if failed:
            first = failed[0][1]
            first.details = [{"job": name, "error": e.message} for name, e in failed]
            raise first
        return names

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

    def observe(self, queue_id: str) -> list[dict[str, Any]]:
        try:
            found = self._batch.list_namespaced_job(self.namespace, label_selector=jobs.queue_selector(queue_id))
        except ApiException as e:
            raise _translate(e, f"list Jobs of queue {queue_id}") from e
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e
        objects = []
        for job in found.items:
            obj = self._api.sanitize_for_serialization(job)
            obj.update(apiVersion="batch/v1", kind="Job")
            objects.append(obj)
        return objects

    def remaining(self, queue_id: str) -> int:
        selector = jobs.queue_selector(queue_id)
        try:
            found = self._batch.list_namespaced_job(self.namespace, label_selector=selector)
            pods = self._core.list_namespaced_pod(self.namespace, label_selector=selector)
        except ApiException as e:
            raise _translate(e, f"list what is left of queue {queue_id}") from e
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e
        return len(found.items) + len(pods.items)

    def ping(self) -> None:
        """A dry-run create: proves the namespace exists and we may create Jobs in it.

        Cached for PING_TTL_S, so readiness probes do not load the API server.
        """
        if time.monotonic() - self._pinged < PING_TTL_S:
            return
        probe = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "readiness-probe-"},
                 "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                "containers": [{"name": "probe", "image": "probe"}]}}}}
        try:
            self._batch.create_namespaced_job(self.namespace, cast(client.V1Job, probe), dry_run="All")
        except ApiException as e:
            if e.status == 404:
                raise BackendUnavailable("kubernetes", f"namespace {self.namespace} does not exist") from e
            raise _translate(e, f"create Jobs in {self.namespace}") from e
        except _TRANSIENT as e:
            raise BackendUnavailable("kubernetes", str(e)) from e
        self._pinged = time.monotonic()


def _translate(e: ApiException, what: str) -> Exception:
    if e.status in (401, 403):
        return BackendUnavailable("kubernetes", f"{what}: forbidden ({e.status}): {e.reason}")
    if e.status == 422:
        return InvalidInput(f"{what}: rejected by the API server: {e.body}")
    return BackendUnavailable("kubernetes", f"{what}: {e.status} {e.reason}")
