"""What the functions do, independent of how the request arrived."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared import constants, jobs, lifecycle, lineage, metrics, outbox, scheduling
from shared.bus import CONTROL, EVENTS, Bus
from shared.cluster import JobObserved
from shared.config import Settings
from shared.errors import BackendUnavailable, Conflict, NotFound
from shared.launch import Launcher, open_launcher
from shared.models import JobStatus, QueueStart, QueueState, Telemetry
from shared.state import AlreadyExists, StateStore, load, mutate

# Queue ids derived from idempotency keys live in their own UUID namespace.
_KEY_NAMESPACE = uuid.UUID("5f0d8a52-2f43-4e39-9f0c-7a4c1b7f3e11")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        created = True
        try:
            self.store.create(queue_id, state.model_dump_json())
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
        return Started(state=state, created=created, launched=launched)

    def advance(self, queue_id: str, *, retry_unconfirmed: bool = False) -> tuple[QueueState, list[str]]:
        """Launch what may launch now, clean up after a failure, publish the outbox.

        Only the jobs this call claimed are launched, plus, with
        `retry_unconfirmed`, claimed jobs whose launch was never confirmed (an
        earlier attempt died between claim and create).
        """
        stamp = now()
        claimed: list[str] = []

        def claim(s: QueueState) -> bool:
            claimed.clear()  # a compare-and-set retry starts over: only the winning write's claims count
            return scheduling.admit(s, stamp, claimed)

        state, _ = mutate(self.store, queue_id, outbox.tracked(claim, source=self.source, now=stamp))
        ids = set(claimed)
        if retry_unconfirmed:
            ids |= {j.id for j in state.jobs if j.status == JobStatus.LAUNCHED and not j.created}
        if ids:
            launch = [j for j in state.jobs if j.id in ids]
            self.launcher.launch([self.render(state, j) for j in launch])
            for job in launch:
                metrics.JOBS_LAUNCHED.labels(job.target).inc()
            state, _ = mutate(self.store, queue_id, lambda s: scheduling.mark_created(s, ids))
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

    # -- stop --------------------------------------------------------------

    def stop(self, queue_id: str, *, reason: str | None = None) -> tuple[QueueState, bool]:
        """Mark stopped, tell the Jobs on queue-control, delete the Jobs.

        :raises NotFound:
        :raises BackendUnavailable:
        """
        stamp = now()

        def change(state: QueueState) -> bool:
            if not lifecycle.stop(state, reason, stamp):
                return False
            outbox.add(state, channel=CONTROL, type_=constants.CE_STOP_COMMAND,
                       id_=f"{queue_id}/stop-command", source=self.source, now=stamp,
                       data={"type": "stop", "command": "stop", "queue_id": queue_id,
                             "reason": state.stop_reason})
            outbox.add(state, channel=EVENTS, type_=constants.CE_QUEUE_STOPPED,
                       id_=f"{queue_id}/stopped", source=self.source, now=stamp,
                       data={"queue_id": queue_id, "reason": state.stop_reason,
                             "records_written": state.records_written})
            return True

        state, changed = mutate(self.store, queue_id, outbox.tracked(change, source=self.source, now=stamp))
        metrics.STOPS.labels("stopped" if changed else "already_terminal").inc()
        # Publish the stop command before deleting, so running Jobs can flush their counts.
        self._flush(state)
        if state.status == lifecycle.QueueStatus.STOPPED:
            self.launcher.delete_queue(queue_id)
        return state, changed

    # -- telemetry ---------------------------------------------------------

    def telemetry(self, telemetry: Telemetry) -> str:
        """Merge a Job's report; the outcome names what happened.

        :raises InvalidInput: unknown status word.
        :raises BackendUnavailable:
        """
        stamp = now()
        matched = True

        def change(state: QueueState) -> bool:
            nonlocal matched
            if telemetry.job_id is not None and lifecycle.find_job(state, telemetry.job_id) is None:
                matched = False
                return False
            return lifecycle.apply_telemetry(state, telemetry, stamp)

        try:
            state, changed = mutate(self.store, telemetry.queue_id,
                                    outbox.tracked(change, source=self.source, now=stamp))
        except NotFound:
            metrics.TELEMETRY.labels("unknown_queue").inc()
            return "unknown_queue"
        if changed or state.outbox or state.cleanup:
            self.advance(telemetry.queue_id)
        outcome = "unknown_job" if not matched else "applied" if changed else "duplicate"
        metrics.TELEMETRY.labels(outcome).inc()
        return outcome

    def cluster_event(self, observed: JobObserved) -> str:
        """Apply what the cluster says about one of our Jobs (see `shared.cluster`)."""
        if not observed.deleted:
            if observed.status is None:
                return "no_news"
            return self.telemetry(Telemetry(queue_id=observed.queue_id, job_id=observed.job_name,
                                            status=observed.status, error_message=observed.error_message))
        stamp = now()

        def vanished(state: QueueState) -> bool:
            job = lifecycle.find_job(state, observed.job_name)
            if job is None or job.status in lifecycle.TERMINAL_JOB or state.status in lifecycle.TERMINAL_QUEUE:
                return False
            probe = Telemetry(queue_id=state.id, job_id=job.id, status="error",
                              error_message="the Job was deleted outside the queue manager before it finished")
            return lifecycle.apply_telemetry(state, probe, stamp)

        try:
            state, changed = mutate(self.store, observed.queue_id,
                                    outbox.tracked(vanished, source=self.source, now=stamp))
        except NotFound:
            return "unknown_queue"
        if changed:
            self.advance(state.id)
        return "applied" if changed else "duplicate"

    # -- queries -----------------------------------------------------------

    def get(self, queue_id: str) -> QueueState:
        state, _ = load(self.store, queue_id)
        return state

    def list(self, *, status: str | None, symbol: str | None, limit: int, offset: int
             ) -> tuple[list[QueueState], int]:
        docs, total = self.store.list(status=status, symbol=symbol, limit=limit, offset=offset)
        return [QueueState.model_validate_json(d) for d in docs], total

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
