"""What the state store indexes about a queue, so no hot path scans the stored queues.

Each write of a queue document carries its facts (compact JSON): the counters it
contributes to (queues by status, by status and symbol; live jobs of an active queue by
target and status), the targets it waits on for a slot and its rank among waiting queues,
the collections its finished jobs wrote, when it ended, what it holds for the overlap
check, and its coverage entries (what its loading jobs loaded, per month). A backend keeps
its counters and indexes from them, inside the same write (SQLite: triggers; ArangoDB: the
same query), so they are right across instances and restarts.

A write whose facts did not change (most telemetry: progress only) touches no index.
"""

from __future__ import annotations

import json

from shared.core import coverage, eta
from shared.core.models import JobRequest, JobStatus, QueueState, QueueStatus, WaitReason
from shared.core.naming import counter_part as _part
from shared.core.naming import counter_unpart as _unpart
from shared.core.statuses import TERMINAL_QUEUE

FORMAT = 3
"""The facts' format (`x`): a document whose facts are older is indexed again by the sweep
(`shared.adapters.state.reindex`), e.g. to give a history from before coverage its entries."""
ACTIVE = (QueueStatus.PENDING, QueueStatus.LOADING, QueueStatus.STOPPING)  # the queues that still run
LIVE_JOB = frozenset({JobStatus.PENDING, JobStatus.LAUNCHED, JobStatus.RUNNING})
SLOT_WAIT = "waiting for slot: "


def queue_counter(status: str | None, symbol: str | None = None) -> str:
    """The counter of the queues with this status and symbol (either, both, or neither)."""
    if status is None:
        return "q" if symbol is None else f"s.{_part(symbol)}"
    return f"q.{_part(status)}" if symbol is None else f"q.{_part(status)}.{_part(symbol)}"


def job_counter(target: str, status: str) -> str:
    return f"j.{_part(target)}.{_part(status)}"


def parse_job_counter(name: str) -> tuple[str, str] | None:
    """(target, status) of a job counter name, or None for another counter."""
    kind, _, rest = name.partition(".")
    target, _, status = rest.rpartition(".")
    if kind != "j" or not target:
        return None
    return _unpart(target), _unpart(status)


def rank(priority: int, started_at: str | None) -> str:
    """Orders waiting queues as admission does: higher priority first, then earlier start."""
    return f"{99 - priority:02d}|{started_at or ''}"


def waits_for_slot(job: object) -> bool:
    if job.status != JobStatus.PENDING:  # type: ignore[attr-defined]
        return False
    if job.wait is None:  # type: ignore[attr-defined]  # a document from before `wait`: its text says it
        return (job.waiting or "").startswith(SLOT_WAIT)  # type: ignore[attr-defined]
    return job.wait == WaitReason.SLOT  # type: ignore[attr-defined]


_WRITTEN_MAX = 4096
_written: dict[tuple[str, str | None, tuple[str, ...]], tuple[str, ...]] = {}


def _datasets(state: QueueState, finished: tuple[str, ...]) -> tuple[str, ...]:
    """Collections the finished jobs wrote. A queue's requests never change, so this is
    remembered by queue id, payload hash and finished jobs: telemetry does not re-derive it."""
    if not finished:
        return ()
    key = (state.id, state.request_hash, finished)
    found = _written.get(key)
    if found is None:
        from shared.core.lineage import outputs  # lineage imports the models

        names: set[str] = set()
        for job in state.jobs:
            if job.id in finished:
                request = JobRequest(target=job.target, type=job.type, **job.params)
                written = outputs(request, state.symbol, state.range_of(job), job.period)
                names.update(o.removeprefix("collection:") for o in written if o.startswith("collection:"))
        found = tuple(sorted(names))
        if len(_written) >= _WRITTEN_MAX:
            _written.clear()
        _written[key] = found
    return found


_RENDERED_MAX = 8192
_rendered: dict[tuple[object, ...], str] = {}


def _signature(state: QueueState) -> tuple[object, ...]:
    """Everything the facts are made of, as one tuple: cheap to build and compare, so a write
    whose facts did not change (progress) renders nothing."""
    # Ended, its last events published and its Jobs cleaned up: the archive may take it then.
    ended = state.status in TERMINAL_QUEUE and not state.outbox and not state.cleanup
    return (state.id, state.request_hash, state.status, state.symbol, state.priority, state.started_at,
            state.time_range, (state.finished_at or state.updated_at or state.started_at) if ended else None,
            tuple((j.id, j.target, j.type, j.status, j.wait, waits_for_slot(j), coverage.signature(j),
                   eta.signature(j)) for j in state.jobs))


def of(state: QueueState) -> str:
    """The facts of a queue document, as the JSON text the store keeps beside it."""
    key = _signature(state)
    found = _rendered.get(key)
    if found is None:
        found = _render(state, key[7])  # the end stamp, or None
        if len(_rendered) >= _RENDERED_MAX:
            _rendered.clear()
        _rendered[key] = found
    return found


def _render(state: QueueState, ended: object) -> str:
    status = state.status.value
    counters = {queue_counter(None): 1, queue_counter(None, state.symbol): 1,
                queue_counter(status): 1, queue_counter(status, state.symbol): 1}
    active = state.status in ACTIVE
    waits: set[str] = set()
    live: set[str] = set()
    finished: list[str] = []
    counters.update(eta.counters(state))  # the history of finished jobs (shared/core/eta.py)
    for job in state.jobs:
        if job.status == JobStatus.FINISHED:
            finished.append(job.id)
        if not active:
            continue
        if job.status in LIVE_JOB:
            name = job_counter(job.target, job.status.value)
            counters[name] = counters.get(name, 0) + 1
        if job.status not in (JobStatus.FINISHED, JobStatus.SKIPPED):
            live.add(f"{job.target}/{job.type}")
        if waits_for_slot(job):
            waits.add(job.target)
    facts = {
        "x": FORMAT,
        "c": counters,
        "w": sorted(waits),
        # unique (the id breaks ties), so one index orders the waiting queues completely
        "r": f"{rank(state.priority, state.started_at)}|{state.id}" if waits else None,
        "d": list(_datasets(state, tuple(finished))),
        "e": ended,  # when it ended, once the archive may take it
        "t": state.time_range if active else None,
        "l": sorted(live),
        "v": coverage.entries(state),  # what its loading jobs loaded, per month (shared/core/coverage.py)
    }
    return json.dumps(facts, separators=(",", ":"))
