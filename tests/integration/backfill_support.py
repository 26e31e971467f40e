"""A partitioned backfill driven on the real control plane (test_kube_backfill).

`Census` watches the namespace's loader Jobs from a thread of its own: how many
exist unfinished at once (the most it ever saw) and the order in which their
periods first appeared. `Backfill` plays the Jobs' side of the telemetry: each
Job of the queue, once it exists in the cluster, reports `running` with the
record count of its period (`records`); kwok then completes its pod, and the
real ApiServerSource adapter tells the served functions, which free its slot
and launch the next.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client as k8s

from shared.core import constants
from tests.integration.kubeutil import Kube, job_labels, queue_state

LOADER = "loader-producer"
CONNECTOR = "arango-connector"
_ENDED = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")


def records(period: str, target: str) -> int:
    """What the Job of `period` reports: the month's number (2020_01 is 1) x 1000, +7 for a connector."""
    year, month = (int(p) for p in period.split("_"))
    return ((year - 2020) * 12 + month) * 1000 + (7 if target == CONNECTOR else 0)


def months(first_year: int, last_year: int) -> list[str]:
    return [f"{y}_{m:02d}" for y in range(first_year, last_year + 1) for m in range(1, 13)]


def unfinished(job: Any) -> bool:
    """The Job exists and the cluster has not said it ended (succeeded, failed, or going away)."""
    if job.metadata.deletion_timestamp is not None:
        return False
    conditions = (job.status.conditions if job.status else None) or []
    return not any(c.type in _ENDED and c.status == "True" for c in conditions)


class Census(threading.Thread):
    """Samples the namespace's Jobs of `target` every `interval` seconds until `close()`."""

    def __init__(self, kube: Kube, target: str = LOADER, interval: float = 0.1) -> None:
        super().__init__(daemon=True, name="census")
        self.batch = k8s.BatchV1Api(kube.cp.api_client())
        self.namespace = kube.namespace
        self.selector = f"{constants.LABEL_TARGET}={target}"
        self.interval = interval
        self.most = 0
        self.samples = 0
        self.order: list[str] = []  # periods, in the order their Jobs first appeared
        self.errors: list[str] = []
        self._seen: set[str] = set()
        self._done = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                found: list[Any] = list(
                    self.batch.list_namespaced_job(self.namespace, label_selector=self.selector).items)
            except Exception as e:  # noqa: BLE001 - kept and asserted on by the test
                self.errors.append(repr(e))
            else:
                with self._lock:
                    self.most = max(self.most, sum(unfinished(j) for j in found))
                    new = [j for j in found if j.metadata.name not in self._seen]
                    self.order += sorted(job_labels(j)[constants.LABEL_PERIOD] for j in new)
                    self._seen.update(j.metadata.name for j in new)
                    self.samples += 1
            self._done.wait(self.interval)

    def snapshot(self) -> tuple[int, list[str]]:
        with self._lock:
            return self.most, list(self.order)

    def close(self) -> None:
        self._done.set()
        self.join(10)


class Backfill:
    """One partitioned queue, its Jobs reporting as they appear in the cluster."""

    def __init__(self, client: Any, kube: Kube, queue_id: str) -> None:
        self.client = client
        self.kube = kube
        self.queue_id = queue_id
        self.reported: dict[str, int] = {}  # job id -> records it reported
        self.killed: str | None = None
        self.etas: list[tuple[float, float | None, int]] = []  # (when, the queue's ETA in s, jobs ended)

    def report(self, job: Any) -> None:
        labels = job_labels(job)
        job_id = labels[constants.LABEL_JOB_ID]
        count = records(labels[constants.LABEL_PERIOD], labels[constants.LABEL_TARGET])
        body = {"type": "telemetry", "queue_id": self.queue_id, "job_id": job_id, "status": "running",
                "records_written": count}
        r = self.client("telemetry").post("/", json=body)
        assert r.status_code == 200 and r.json()["data"]["outcome"] == "applied", (body, r.text)
        self.reported[job_id] = count

    def kill_if_running(self, job: Any, period: str) -> None:
        """Delete the loader Job of `period` once its pod is active, as `kubectl delete job` would."""
        labels = job_labels(job)
        if (self.killed is None and labels[constants.LABEL_PERIOD] == period
                and labels[constants.LABEL_TARGET] == LOADER and job.status and job.status.active
                and unfinished(job)):
            self.kube.batch.delete_namespaced_job(job.metadata.name, self.kube.namespace,
                                                  propagation_policy="Background")
            self.killed = job.metadata.name

    def run_until(self, statuses: tuple[str, ...], *, kill: str | None = None, timeout: float = 300,
                  log: Any = None) -> dict[str, Any]:
        """Report every Job as it appears (and kill `kill`'s loader) until the queue is in `statuses`."""
        deadline = time.monotonic() + timeout
        while True:
            state = queue_state(self.client, self.queue_id)
            ended = sum(j["status"] in ("finished", "error", "stopped", "skipped") for j in state["jobs"])
            self.etas.append((time.monotonic(), (state.get("eta") or {}).get("seconds"), ended))
            if state["status"] in statuses:
                return state
            if time.monotonic() > deadline:
                counts: dict[str, int] = {}
                for j in state["jobs"]:
                    counts[j["status"]] = counts.get(j["status"], 0) + 1
                tail = log() if log is not None else ""
                raise AssertionError(f"queue {state['status']} after {timeout}s, jobs {counts}\n{tail}")
            for job in self.kube.queue_jobs(self.queue_id):
                if kill is not None:
                    self.kill_if_running(job, kill)
                if job_labels(job)[constants.LABEL_JOB_ID] not in self.reported:
                    self.report(job)
            time.sleep(0.25)


def expected_records(job: dict[str, Any]) -> int:
    return records(job["period"], job["target"])


def env_of(manifest: dict[str, Any]) -> dict[str, str]:
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def eta_errors(etas: list[tuple[float, float | None, int]], jobs: int, *, after: float = 0.25,
               least_s: float = 10.0) -> list[float]:
    """|predicted - actual| / actual remaining time, for each ETA read once `after` of the jobs
    had ended (the history is the run's own) and while at least `least_s` seconds were left."""
    end = etas[-1][0]
    return [abs(eta - (end - at)) / (end - at) for at, eta, ended in etas
            if eta is not None and ended >= after * jobs and end - at >= least_s]
