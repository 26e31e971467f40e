"""Running a queue's jobs again: `retry` (what failed) and `repair` (periods with gaps).

Both reopen an ended queue in one compare-and-set (`shared.core.scheduling`), with new Job
names for what runs again, and then launch it as a start would.
"""

from __future__ import annotations

from shared.adapters.state import load_archived, mutate
from shared.core import scheduling
from shared.core.clock import now
from shared.core.errors import Conflict, NotFound
from shared.core.models import QueueState, QueueStatus
from shared.services import launching, outbox
from shared.services.context import Context


def retry(ctx: Context, queue_id: str) -> QueueState:
    """Re-run only what failed or was skipped.

    :raises NotFound:
    :raises Conflict: the queue has not failed.
    """
    stamp = now()
    try:
        state, changed = mutate(ctx.store, queue_id, outbox.tracked(
            lambda s: scheduling.retry(s, stamp), source=ctx.source, now=stamp))
    except NotFound:
        if load_archived(ctx.store, queue_id) is None:
            raise
        raise Conflict(f"queue {queue_id} is archived (it ended more than RETENTION_DAYS ago); "
                       "start a new queue for the same requests") from None
    if not changed:
        raise Conflict(f"queue {queue_id} is {state.status.value}; only a failed queue can be retried")
    state, _ = launching.advance(ctx, queue_id)
    return state

def repair(ctx: Context, queue_id: str) -> tuple[QueueState, list[str]]:
    """Re-run the periods whose telemetry reported gaps (and what depends on them).

    :raises NotFound:
    :raises Conflict: the queue is still running, archived, or has no gaps.
    """
    stamp = now()
    rerun: list[str] = []

    def change(s: QueueState) -> bool:
        rerun[:] = scheduling.repair(s, stamp)
        return bool(rerun)

    try:
        state, changed = mutate(ctx.store, queue_id, outbox.tracked(change, source=ctx.source, now=stamp))
    except NotFound:
        if load_archived(ctx.store, queue_id) is None:
            raise
        raise Conflict(f"queue {queue_id} is archived (it ended more than RETENTION_DAYS ago); "
                       "start a new queue with repair: true") from None
    if not changed:
        if state.status not in (QueueStatus.FINISHED, QueueStatus.ERROR):
            raise Conflict(f"queue {queue_id} is {state.status.value}; repair it once it has ended")
        raise Conflict(f"queue {queue_id} has no period with gaps: nothing to repair")
    state, _ = launching.advance(ctx, queue_id)
    return state, rerun
