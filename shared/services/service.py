"""What the functions do, independent of how the request arrived."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.adapters import metrics
from shared.adapters.bus import EVENTS
from shared.adapters.state import AlreadyExists, load, load_archived
from shared.core import constants, eta, facts, lifecycle, lineage, partitions, scheduling
from shared.core.clock import now
from shared.core.cluster import JobObserved
from shared.core.errors import BackendUnavailable, Conflict, LaunchRefused, NotFound
from shared.core.models import Need, Outcome, QueueStart, QueueState, QueueStatus, Telemetry
from shared.services import admission, backfill, launching, outbox, reports, rerunning, stopping
from shared.services.context import Context

# Queue ids derived from idempotency keys live in their own UUID namespace.
_KEY_NAMESPACE = uuid.UUID("5f0d8a52-2f43-4e39-9f0c-7a4c1b7f3e11")


def queue_id_for(idempotency_key: str | None) -> str:
    if idempotency_key:
        return str(uuid.uuid5(_KEY_NAMESPACE, idempotency_key))
    return str(uuid.uuid4())


# Options added after the first release: left out of the hash at their defaults, so a replayed
# start from before them still matches its queue.
_LATER = {"partition": None, "newest_first": False, "force": False, "repair": False}


def _hash(command: QueueStart) -> str:
    payload = command.model_dump(mode="json")
    for name, default in _LATER.items():
        if payload.get(name, default) == default:
            payload.pop(name, None)
    for request in payload["requests"]:
        if request.get("partition") is None:
            request.pop("partition", None)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _count_skipped(skipped: list[dict[str, Any]]) -> None:
    for period in skipped:
        metrics.PERIODS_SKIPPED.labels(period["type"]).inc()


@dataclass
class Started:
    state: QueueState | None
    """None: every period is covered by other queues, nothing to do (`skipped` says by whom)."""
    created: bool
    launched: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    covering: list[str] = field(default_factory=list)


@dataclass
class QueueService(Context):
    """The use cases behind one facade, for the functions and the sweep: each method hands the
    ports (this object is the `Context`) to the module that does the work."""

    queue_id_for = staticmethod(queue_id_for)

    # -- start -------------------------------------------------------------

    def start(self, command: QueueStart, *, idempotency_key: str | None = None, group: str | None = None
              ) -> Started:
        """Record the queue, launch what can start now, publish `queue.started`.

        A repeat with the same idempotency key returns the same queue and
        launches only what an interrupted first attempt left unlaunched.

        :raises InvalidInput: the requests do not form a pipeline (cycle, dangling input).
        :raises Conflict: the key was used before with a different payload.
        :raises BackendUnavailable:
        """
        queue_id = queue_id_for(idempotency_key)
        archived = load_archived(self.store, queue_id) if idempotency_key else None
        if archived is not None:  # a replay of a queue that ended long ago: it stays that queue
            state = archived
            if state.request_hash != _hash(command):
                raise Conflict(f"idempotency key {idempotency_key!r} was used for a different queue payload")
            metrics.STARTS.labels("replayed").inc()
            return Started(state=state, created=False)
        stamp = now()
        # A replay finds its queue below; a first start skips what other queues cover.
        replay = idempotency_key is not None and self.store.get(queue_id) is not None
        decision, needs = self._planned(command, queue_id, replay=replay)
        if not decision.units:
            _count_skipped(decision.skipped)
            return Started(state=None, created=False, skipped=decision.skipped, covering=decision.covering)
        state = lifecycle.new_queue(queue_id=queue_id, command=command, now=stamp, needs=needs, units=decision.units)
        state.skipped = decision.skipped
        state.idempotency_key = idempotency_key
        state.request_hash = _hash(command)
        state.group = group
        outbox.add(state, channel=EVENTS, type_=constants.CE_QUEUE_STARTED, id_=f"{queue_id}/started",
                   source=self.source, now=stamp,
                   data={"queue_id": queue_id, "symbol": state.symbol, "time_range": state.time_range,
                         "jobs": [{"id": j.id, "target": j.target, "type": j.type,
                                   **({"period": j.period} if j.period else {})} for j in state.jobs],
                         **({"skipped": decision.skipped} if decision.skipped else {}),
                         **({"group": group} if group else {})})
        admission.check_overlap(self.store, command, queue_id)
        created = True
        try:
            self.store.create(queue_id, state.model_dump_json(exclude_none=True), facts=facts.of(state))
        except AlreadyExists:
            created = False
            try:
                state, _ = load(self.store, queue_id)
            except NotFound:  # archived since the check above
                state = self.get(queue_id)
            if state.request_hash != _hash(command):
                raise Conflict(
                    f"idempotency key {idempotency_key!r} was used for a different queue payload"
                ) from None
        metrics.STARTS.labels("created" if created else "replayed").inc()
        if created:
            _count_skipped(decision.skipped)
        try:
            state, launched = self.advance(queue_id, retry_unconfirmed=not created)
        except BackendUnavailable as e:
            # The queue is recorded: retrying with the same key launches what is missing.
            e.details.append({"queue_id": queue_id, "retry": "repeat the start with the same key"})
            raise
        refused = {j.job_name: j.launch_refused or (j.error_message or "").removeprefix(launching.REFUSED)
                   for j in state.jobs
                   # a document from before `launch_refused` says it in the error text only
                   if j.launch_refused or (j.error_message or "").startswith(launching.REFUSED)}
        if refused and state.status == QueueStatus.ERROR:
            # Recorded, failed and cleaned up by the failure policy; the caller must know.
            raise LaunchRefused(queue_id, refused)
        return Started(state=state, created=created, launched=launched, skipped=state.skipped,
                       covering=backfill.covering(state.skipped))

    def _planned(self, command: QueueStart, queue_id: str, *, replay: bool = False
                 ) -> tuple[backfill.Decision, list[list[Need]]]:
        """The units a start creates (all of them for a replay: its queue is stored) and their needs,
        a skipped period's loaded collections counting as there."""
        if replay:
            decision = backfill.Decision(partitions.units(command))
        else:
            decision = backfill.decide(self, command, queue_id, exists=self.dataset_exists)
        if not decision.units:
            return decision, []
        needs = lineage.plan(command, exists=lambda name: name in decision.loaded or self.dataset_exists(name),
                             units=decision.units)
        return decision, needs

    def advance(self, queue_id: str, *, retry_unconfirmed: bool = False) -> tuple[QueueState, list[str]]:
        return launching.advance(self, queue_id, retry_unconfirmed=retry_unconfirmed)

    def dataset_exists(self, name: str) -> bool:
        """Whether a collection a request reads already exists outside the queue."""
        catalog = getattr(self.store, "collection_exists", None)  # ArangoDB: the real collections
        return bool(catalog(name) if catalog else self.store.dataset_written(name))

    def retry(self, queue_id: str) -> QueueState:
        return rerunning.retry(self, queue_id)

    def repair(self, queue_id: str) -> tuple[QueueState, list[str]]:
        return rerunning.repair(self, queue_id)

    def eta(self, state: QueueState) -> dict[str, Any]:
        """When the queue's remaining work is expected to end, from the history of finished jobs
        (the store's counters: one read) and the running jobs' progress."""
        known = eta.rates(self.store.counters(eta.PREFIX))
        return eta.estimate(state, known, now(), self.settings.jobs.limits)

    def coverage(self, symbol: str, type_: str, start: Any, end: Any, partition: str) -> dict[str, Any]:
        """What is loaded of (symbol, type) over [start, end], period by period."""
        return backfill.report(self, symbol, type_, start, end, partition)

    def plan(self, command: QueueStart) -> dict[str, Any]:
        """What a start would do, launching nothing: the DAG, the manifests, the first wave, the
        periods it would skip because other queues cover them."""
        stamp = now()
        queue_id = "00000000-0000-0000-0000-000000000000"
        decision, needs = self._planned(command, queue_id)
        state = lifecycle.new_queue(queue_id=queue_id, command=command, now=stamp, needs=needs,
                                    units=decision.units)
        first: list[str] = []
        scheduling.admit(state, stamp, first)
        return {
            "mode": command.mode,
            "on_failure": command.on_failure,
            "jobs": [
                {"index": j.index, "id": j.id, "target": j.target, "type": j.type, "streaming": j.streaming,
                 **({"period": j.period, "time_range": j.time_range} if j.period else {}),
                 "needs": [n.model_dump() for n in j.needs],
                 "starts": "at start" if j.id in first else j.waiting,
                 "manifest": self.render(state, j)}
                for j in state.jobs
            ],
            "skipped": decision.skipped,
            "covering": decision.covering,
            "estimate": self.eta(state),
        }

    def render(self, state: QueueState, job: Any) -> dict[str, Any]:
        return launching.render(self, state, job)

    # -- stop and cluster truth: shared/services/stopping.py -----------------------

    def stop(self, queue_id: str, *, reason: str | None = None) -> tuple[QueueState, bool]:
        return stopping.stop(self, queue_id, reason=reason)

    def finish_stop(self, queue_id: str) -> QueueState:
        return stopping.finish_stop(self, queue_id)

    def cluster_event(self, observed: JobObserved) -> Outcome:
        return stopping.cluster_event(self, observed)

    # -- telemetry ---------------------------------------------------------

    def telemetry(self, telemetry: Telemetry) -> Outcome:
        """Merge a Job's report; the outcome names what happened.

        :raises InvalidInput: unknown status word.
        :raises BackendUnavailable:
        """
        outcome = reports.merge(self, [telemetry])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def telemetry_batch(self, batch: list[Telemetry]) -> list[reports.Result]:
        """Merge reports that arrived together: one write per queue (see shared/services/reports.py)."""
        return reports.merge(self, batch)

    # -- queries -----------------------------------------------------------

    def get(self, queue_id: str) -> QueueState:
        """A queue, from the hot set or else the archive.

        :raises NotFound:
        """
        try:
            state, _ = load(self.store, queue_id)
        except NotFound:
            archived = load_archived(self.store, queue_id)
            if archived is None:
                raise
            return archived
        return state

    def list(self, *, status: str | None, symbol: str | None, limit: int, offset: int,
             after: tuple[str, str] | None = None, archived: bool = False) -> tuple[list[QueueState], int]:
        docs, total = self.store.list(status=status, symbol=symbol, limit=limit, offset=offset, after=after,
                                      archived=archived)
        return [QueueState.model_validate_json(d) for d in docs], total

    def job_counts(self) -> dict[tuple[str, str], int]:
        """Live jobs of active queues by (target, status), from the store's counters."""
        counts: dict[tuple[str, str], int] = {}
        for name, n in self.store.counters("j.").items():
            labels = facts.parse_job_counter(name)
            if labels is not None:
                counts[labels] = n
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

