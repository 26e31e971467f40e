"""What the functions do, independent of how the request arrived."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared import admission, clock, constants, jobs, lifecycle, lineage, metrics, outbox, reports, scheduling, stopping
from shared.bus import EVENTS, Bus
from shared.clock import now
from shared.cluster import JobObserved
from shared.config import Settings
from shared.errors import BackendUnavailable, ClientError, Conflict
from shared.launch import Launcher, open_launcher
from shared.leases import Slots
from shared.models import JobStatus, QueueStart, QueueState, QueueStatus, Telemetry
from shared.state import AlreadyExists, StateStore, load, mutate

REFUSED = "launch refused: "

# Queue ids derived from idempotency keys live in their own UUID namespace.
_KEY_NAMESPACE = uuid.UUID("5f0d8a52-2f43-4e39-9f0c-7a4c1b7f3e11")


def queue_id_for(idempotency_key: str | None) -> str:
    if idempotency_key:
        return str(uuid.uuid5(_KEY_NAMESPACE, idempotency_key))
    return str(uuid.uuid4())


def _hash(command: QueueStart) -> str:
    canonical = json.dumps(command.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Started:
    state: QueueState
    created: bool
    launched: list[str] = field(default_factory=list)


@dataclass
class QueueService:
    settings: Settings
    store: StateStore
    bus: Bus
    _launcher: Launcher | None = None
    leases: StateStore | None = None
    """Where concurrency slots are leased; needed only when JOB_LIMITS are set."""

    @property
    def slots(self) -> Slots | None:
        limits = self.settings.jobs.limits
        if not limits or self.leases is None:
            return None
        return Slots(self.leases, limits, self.settings.jobs.lease_ttl_seconds)

    @property
    def launcher(self) -> Launcher:
        # Built on first use, so functions that never launch never import the kube client.
        if self._launcher is None:
            self._launcher = open_launcher(self.settings)
        return self._launcher

    @property
    def source(self) -> str:
        return self.settings.event_source

    # -- start -------------------------------------------------------------

    def start(self, command: QueueStart, *, idempotency_key: str | None = None) -> Started:
        """Record the queue, launch what can start now, publish `queue.started`.

        A repeat with the same idempotency key returns the same queue and
        launches only what an interrupted first attempt left unlaunched.

        :raises InvalidInput: the requests do not form a pipeline (cycle, dangling input).
        :raises Conflict: the key was used before with a different payload.
        :raises BackendUnavailable:
        """
        queue_id = queue_id_for(idempotency_key)
        stamp = now()
        needs = lineage.plan(command, exists=self.dataset_exists)
        state = lifecycle.new_queue(queue_id=queue_id, command=command, now=stamp, needs=needs)
        state.idempotency_key = idempotency_key
        state.request_hash = _hash(command)
        outbox.add(state, channel=EVENTS, type_=constants.CE_QUEUE_STARTED, id_=f"{queue_id}/started",
                   source=self.source, now=stamp,
                   data={"queue_id": queue_id, "symbol": state.symbol, "time_range": state.time_range,
                         "jobs": [{"id": j.id, "target": j.target, "type": j.type} for j in state.jobs]})
        admission.check_overlap(self.store, command, queue_id)
        created = True
        try:
            self.store.create(queue_id, state.model_dump_json(exclude_none=True))
        except AlreadyExists:
            created = False
            state, _ = load(self.store, queue_id)
            if state.request_hash != _hash(command):
                raise Conflict(
                    f"idempotency key {idempotency_key!r} was used for a different queue payload"
                ) from None
        metrics.STARTS.labels("created" if created else "replayed").inc()
        try:
            state, launched = self.advance(queue_id, retry_unconfirmed=not created)
        except BackendUnavailable as e:
            # The queue is recorded: retrying with the same key launches what is missing.
            e.details.append({"queue_id": queue_id, "retry": "repeat the start with the same key"})
            raise
        refused = [j for j in state.jobs if (j.error_message or "").startswith(REFUSED)]
        if refused and state.status == QueueStatus.ERROR:
            # Recorded, failed and cleaned up by the failure policy; the caller must know.
            raise Conflict(f"queue {queue_id} failed to launch: " + "; ".join(
                f"{j.job_name}: {j.error_message}" for j in refused), details=[{"queue_id": queue_id}])
        return Started(state=state, created=created, launched=launched)

    def advance(self, queue_id: str, *, retry_unconfirmed: bool = False) -> tuple[QueueState, list[str]]:
        """Launch what may launch now, clean up after a failure, publish the outbox.

        Only the jobs this call claimed are launched, plus, with
        `retry_unconfirmed`, claimed jobs whose launch was never confirmed (an
        earlier attempt died between claim and create).
        """
        stamp = now()
        claimed: list[str] = []
        slots = self.slots
        allowed: set[str] | None = None
        blocked: dict[str, str] = {}
        if slots is not None:
            current, _ = load(self.store, queue_id)
            allowed, blocked = admission.gate(self.store, slots, current)

        def claim(s: QueueState) -> bool:
            claimed.clear()  # a compare-and-set retry starts over: only the winning write's claims count
            return scheduling.admit(s, stamp, claimed, allowed=allowed, blocked=blocked)

        state, _ = mutate(self.store, queue_id, outbox.tracked(claim, source=self.source, now=stamp))
        if slots is not None and allowed:
            # Slots taken for jobs that did not launch after all (a partner still waits, a stop came).
            for job in state.jobs:
                if job.id in allowed and job.status == JobStatus.PENDING:
                    slots.release(job.target, admission.holder(state, job))
        if state.started_at:
            waited = max(0.0, clock.seconds_between(state.started_at, stamp))
            for job in state.jobs:
                if job.id in claimed:
                    metrics.ADMISSION_WAIT.labels(job.target).observe(waited)
        ids = set(claimed)
        if retry_unconfirmed:
            ids |= {j.id for j in state.jobs if j.status == JobStatus.LAUNCHED and not j.created}
        if ids:
            launch = [j for j in state.jobs if j.id in ids]
            refused: dict[str, str] = {}
            try:
                self.launcher.launch([self.render(state, j) for j in launch])
            except ClientError as e:
                # Permanent (a name taken by another queue, a Job the API server rejects):
                # those jobs fail, the failure policy decides about the rest.
                refused = {d["job"]: d.get("error", e.message) for d in e.details if "job" in d}
                if not refused:
                    raise
            for job in launch:
                if job.job_name not in refused:
                    metrics.JOBS_LAUNCHED.labels(job.target).inc()
            made = {j.id for j in launch if j.job_name not in refused}

            def record(s: QueueState) -> bool:
                changed = scheduling.mark_created(s, made)
                for job in s.jobs:
                    if job.job_name in refused:
                        probe = Telemetry(queue_id=s.id, job_id=job.id, status="error",
                                          error_message=f"{REFUSED}{refused[job.job_name]}")
                        changed = lifecycle.apply_telemetry(s, probe, stamp) or changed
                return changed

            state, _ = mutate(self.store, queue_id, outbox.tracked(record, source=self.source, now=stamp))
        if state.cleanup:
            # A failure stopped the queue: delete the Jobs it stopped, keep the failed one to inspect.
            names = list(state.cleanup)
            self.launcher.delete_jobs(names)

            def done(s: QueueState) -> bool:
                before = len(s.cleanup)
                s.cleanup = [n for n in s.cleanup if n not in names]
                return len(s.cleanup) != before

            state, _ = mutate(self.store, queue_id, done)
        self._flush(state)
        return state, sorted(ids)

    def dataset_exists(self, name: str) -> bool:
        """Whether a collection a request reads already exists outside the queue."""
        checker = getattr(self.store, "collection_exists", None)
        return bool(checker and checker(name))

    def retry(self, queue_id: str) -> QueueState:
        """Re-run only what failed or was skipped.

        :raises NotFound:
        :raises Conflict: the queue has not failed.
        """
        stamp = now()
        state, changed = mutate(self.store, queue_id, outbox.tracked(
            lambda s: scheduling.retry(s, stamp), source=self.source, now=stamp))
        if not changed:
            raise Conflict(f"queue {queue_id} is {state.status.value}; only a failed queue can be retried")
        state, _ = self.advance(queue_id)
        return state

    def plan(self, command: QueueStart) -> dict[str, Any]:
        """What a start would do, launching nothing: the DAG, the manifests, the first wave."""
        stamp = now()
        needs = lineage.plan(command, exists=self.dataset_exists)
        state = lifecycle.new_queue(queue_id="00000000-0000-0000-0000-000000000000", command=command,
                                    now=stamp, needs=needs)
        first: list[str] = []
        scheduling.admit(state, stamp, first)
        return {
            "mode": command.mode,
            "on_failure": command.on_failure,
            "jobs": [
                {"index": j.index, "id": j.id, "target": j.target, "type": j.type, "streaming": j.streaming,
                 "needs": [n.model_dump() for n in j.needs],
                 "starts": "at start" if j.id in first else j.waiting,
                 "manifest": self.render(state, j)}
                for j in state.jobs
            ],
        }

    def render(self, state: QueueState, job: Any) -> dict[str, Any]:
        return jobs.render(queue=state, job=job, jobs=self.settings.jobs, kafka=self.settings.kafka,
                           arango_url=self.settings.arango.url, arango_db=self.settings.arango.db)

    # -- stop and cluster truth: shared/stopping.py -----------------------

    def stop(self, queue_id: str, *, reason: str | None = None) -> tuple[QueueState, bool]:
        return stopping.stop(self, queue_id, reason=reason)

    def finish_stop(self, queue_id: str) -> QueueState:
        return stopping.finish_stop(self, queue_id)

    def cluster_event(self, observed: JobObserved) -> str:
        return stopping.cluster_event(self, observed)

    # -- telemetry ---------------------------------------------------------

    def telemetry(self, telemetry: Telemetry) -> str:
        """Merge a Job's report; the outcome names what happened.

        :raises InvalidInput: unknown status word.
        :raises BackendUnavailable:
        """
        outcome = reports.merge(self, [telemetry])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def telemetry_batch(self, batch: list[Telemetry]) -> list[reports.Outcome]:
        """Merge reports that arrived together: one write per queue (see shared/reports.py)."""
        return reports.merge(self, batch)

    # -- queries -----------------------------------------------------------

    def get(self, queue_id: str) -> QueueState:
        state, _ = load(self.store, queue_id)
        return state

    def list(self, *, status: str | None, symbol: str | None, limit: int, offset: int
             ) -> tuple[list[QueueState], int]:
        docs, total = self.store.list(status=status, symbol=symbol, limit=limit, offset=offset)
        return [QueueState.model_validate_json(d) for d in docs], total

    def job_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for state in admission.active_queues(self.store):
            for job in state.jobs:
                if job.status in (JobStatus.PENDING, JobStatus.LAUNCHED, JobStatus.RUNNING):
                    key = (job.target, job.status.value)
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def readiness(self, *, launcher: bool) -> dict[str, str]:
        """Each configured backend: "ok" or why it is not."""
        checks: dict[str, Any] = {f"state ({self.store.backend})": self.store.ping,
                                  f"events ({self.bus.kind})": self.bus.ping}
        if launcher:
            checks[f"launcher ({self.settings.jobs.launcher})"] = lambda: self.launcher.ping()
        report = {}
        for name, check in checks.items():
            try:
                check()
                report[name] = "ok"
            except BackendUnavailable as e:
                report[name] = e.message
            except Exception as e:  # readiness reports, it never raises
                report[name] = f"{type(e).__name__}: {e}"
        return report

    def _flush(self, state: QueueState) -> None:
        for channel in outbox.flush(self.store, self.bus, state):
            metrics.EVENTS_PUBLISHED.labels(channel).inc()
