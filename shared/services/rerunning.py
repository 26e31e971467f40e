"""Running a queue's jobs again: `retry` (what failed) and `repair` (periods with gaps).

Both reopen an ended queue in one compare-and-set (`shared.core.scheduling`), with new Job
names for what runs again, and then launch it as a start would.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.adapters.state import load_archived, mutate
from shared.core import scheduling
from shared.core.clock import now
from shared.core.errors import Conflict, NotFound
from shared.core.models import QueueState, QueueStatus
from shared.services import launching, outbox
from shared.services.context import Context


def _reopen(ctx: Context, queue_id: str, change: Callable[[QueueState, str], bool], *, archived: str
            ) -> tuple[QueueState, bool]:
    """`change` (state, now) in one compare-and-set, its events recorded; an archived queue is a
    409 saying `archived` (what to do instead)."""
    stamp = now()
    try:
        return mutate(ctx.store, queue_id, outbox.tracked(lambda s: change(s, stamp), source=ctx.source, now=stamp))
    except NotFound:
        if load_archived(ctx.store, queue_id) is None:
            raise
        raise Conflict(f"queue {queue_id} is archived (it ended more than RETENTION_DAYS ago); {archived}") from None


def retry(ctx: Context, queue_id: str) -> QueueState:
    """Re-run only what failed or was skipped.

    :raises NotFound:
    :raises Conflict: the queue has not failed.
    """
    state, changed = _reopen(ctx, queue_id, scheduling.retry, archived="start a new queue for the same requests")
    if not changed:
        raise Conflict(f"queue {queue_id} is {state.status.value}; only a failed queue can be retried")
    state, _ = launching.advance(ctx, queue_id)
    return state


def repair(ctx: Context, queue_id: str) -> tuple[QueueState, list[str]]:
    """Re-run the periods whose telemetry reported gaps (and what depends on them).

    :raises NotFound:
    :raises Conflict: the queue is still running, archived, or has no gaps.
    """
    rerun: list[str] = []

    def change(s: QueueState, stamp: str) -> bool:
        rerun[:] = scheduling.repair(s, stamp)
        return bool(rerun)

    state, changed = _reopen(ctx, queue_id, change, archived="start a new queue with repair: true")
    if not changed:
        if state.status not in (QueueStatus.FINISHED, QueueStatus.ERROR):
            raise Conflict(f"queue {queue_id} is {state.status.value}; repair it once it has ended")
        raise Conflict(f"queue {queue_id} has no period with gaps: nothing to repair")
    state, _ = launching.advance(ctx, queue_id)
    return state, rerun
