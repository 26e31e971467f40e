"""Merging the Jobs' telemetry into the queue state, one report or many at once.

Reports that arrive together are merged together: one read-modify-write per
queue, whatever the number of its reports, and one commit for all queues
where the store can (see `StateStore.batch`). Each report still gets its own
outcome, exactly as if it had been merged alone, in arrival order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.adapters import metrics
from shared.adapters.state import forget, mutate
from shared.adapters.state.base import GroupConflict
from shared.core import lifecycle
from shared.core.clock import now
from shared.core.errors import BackendUnavailable, InvalidInput, NotFound, QueueManagerError
from shared.core.models import Outcome, QueueState, Telemetry
from shared.services import admission, launching, outbox

if TYPE_CHECKING:
    from shared.services.context import Context

GROUP_ATTEMPTS = 5
Result = Outcome | QueueManagerError
"""What became of a report, or the error to answer it with."""


class _Merge:
    """One queue's reports merged in one compare-and-set."""

    def __init__(self, reports: list[Telemetry], stamp: str, source: str) -> None:
        self.reports = reports
        self.stamp = stamp
        self.source = source
        self.outcomes: list[Outcome] = []
        self.moved = False
        self.ended: list[str] = []

    def __call__(self, state: QueueState) -> bool:
        # A compare-and-set retry calls this again on a fresher state: start over.
        self.outcomes, self.moved, self.ended = [], False, []
        changed = False
        for report in self.reports:
            if report.job_id is not None and lifecycle.find_job(state, report.job_id) is None:
                self.outcomes.append(Outcome.UNKNOWN_JOB)
                continue
            snapshot = outbox.snapshot(state)
            effect = lifecycle.apply_telemetry(state, report, self.stamp)
            self.outcomes.append(Outcome.APPLIED if effect else Outcome.DUPLICATE)
            if not effect:
                continue
            changed = True
            # Each report's own events, as if it had come alone: no transition is skipped.
            outbox.record_changes(state, snapshot, source=self.source, now=self.stamp)
            if effect.moved:
                self.moved = True
                self.ended += effect.ended
        return changed


def _merge_group(ctx: Context, reports: Sequence[Telemetry], by_queue: dict[str, list[int]],
                 stamp: str, outcomes: list[Result | None]) -> dict[str, tuple[QueueState, bool, _Merge]]:
    """Every queue's reports in one batch of the store; fills ``outcomes``."""
    merged: dict[str, tuple[QueueState, bool, _Merge]] = {}
    with ctx.store.batch():
        for queue_id, indexes in by_queue.items():
            change = _Merge([reports[i] for i in indexes], stamp, ctx.source)
            try:
                state, changed = mutate(ctx.store, queue_id, change, monotonic=True)
                merged[queue_id] = (state, changed, change)
            except NotFound:
                change.outcomes = [Outcome.UNKNOWN_QUEUE] * len(indexes)
            for i, outcome in zip(indexes, change.outcomes, strict=True):
                outcomes[i] = outcome
    return merged


def merge(ctx: Context, reports: Sequence[Telemetry]) -> list[Result]:
    """Merge `reports`; one outcome per report, in order. Never raises for one report's sake."""
    stamp = now()
    outcomes: list[Result | None] = [None] * len(reports)
    by_queue: dict[str, list[int]] = {}
    for i, report in enumerate(reports):
        try:
            lifecycle.check_telemetry(report)
        except InvalidInput as e:
            metrics.TELEMETRY.labels("invalid").inc()
            outcomes[i] = e
            continue
        by_queue.setdefault(report.queue_id, []).append(i)
    merged: dict[str, tuple[QueueState, bool, _Merge]] = {}
    try:
        for attempt in range(1, GROUP_ATTEMPTS + 1):
            try:
                merged = _merge_group(ctx, reports, by_queue, stamp, outcomes)
                break
            except GroupConflict:
                # Another writer won a document of the group: nothing of it was stored. Merge
                # it again on fresh state, then give up with a 503 (redelivered whole).
                forget(ctx.store, by_queue)
                if attempt == GROUP_ATTEMPTS:
                    raise BackendUnavailable("state", "the group lost every write conflict") from None
    except QueueManagerError as e:
        # Nothing of the batch was committed (or, without batches, what was is
        # re-applied as duplicates on redelivery): every report gets the error.
        forget(ctx.store, by_queue)
        return [o if isinstance(o, InvalidInput) else e for o in outcomes]
    except BaseException:  # a bug: the remembered writes of the rolled-back batch must not outlive it
        forget(ctx.store, by_queue)
        raise
    for queue_id, (state, changed, change) in merged.items():
        try:
            _follow_up(ctx, state, changed, change)
        except QueueManagerError as e:
            for i in by_queue[queue_id]:
                outcomes[i] = e
    done: list[Result] = []
    for result in outcomes:
        if result is None:
            raise RuntimeError("a report was left without an outcome")
        if isinstance(result, str):
            metrics.TELEMETRY.labels(result).inc()
        done.append(result)
    return done


def _follow_up(ctx: Context, state: QueueState, changed: bool, change: _Merge) -> None:
    """After the write: launch what may launch now, publish, free slots."""
    if (changed and change.moved) or state.outbox or state.cleanup:
        # Only a status change can make another job ready; counts alone cannot.
        state, _ = launching.advance(ctx, state.id)
    if changed:
        reporters = {r.job_id for r, o in zip(change.reports, change.outcomes, strict=True) if o == Outcome.APPLIED}
        for queue_id in admission.after_report(ctx, state, sorted(r for r in reporters if r), change.ended):
            launching.advance(ctx, queue_id)
