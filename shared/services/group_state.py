"""A group as it stands (shared/services/groups.py starts it): its record, its status from its
queues', and its stop and retry.

A group's status, from its queues' (`aggregate`):
- any queue loading → `running`; else any stopping → `stopping`; else any pending → `pending`;
- none active: a queue not started yet (a start cut short, to be completed by its replay) →
  `incomplete`; else all finished (or covered by other queues) → `finished`; else any error
  (or a queue refused for an overlap) → `error`; else `stopped`.
"""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.state import update_record
from shared.core import progress
from shared.core.clock import now
from shared.core.errors import ClientError, NotFound
from shared.core.models import JobStatus, QueueState, QueueStatus

PREFIX = "group:"
# An error is worse than a stop; a queue covered by others loaded nothing and needs nothing.
_ENDED = {QueueStatus.FINISHED.value: 0, "covered": 0, QueueStatus.STOPPED.value: 1, QueueStatus.ERROR.value: 2,
          "refused": 2}


def record(service: Any, group_id: str) -> dict[str, Any]:
    """:raises NotFound:"""
    found = service.store.records.get(PREFIX + group_id)
    if found is None:
        raise NotFound(f"no group {group_id[:64]}")
    return json.loads(found[0])  # type: ignore[no-any-return]


def _update(service: Any, group_id: str, change: Any) -> dict[str, Any]:
    """Read the record, `change(doc)`, compare-and-set, until it wins. :raises NotFound:"""
    def step(text: str) -> tuple[str, str | None]:
        doc = json.loads(text)
        change(doc)
        return json.dumps(doc), None

    written = update_record(service.store.records, PREFIX + group_id, step, what=f"group {group_id}",
                            missing=lambda: NotFound(f"no group {group_id[:64]}"))
    return json.loads(written)  # type: ignore[no-any-return]


def note_outcomes(service: Any, group_id: str, covered: list[str], refused: dict[str, str],
                  started: list[str]) -> None:
    """What a start found: the symbols other queues cover, those refused for an overlap (until
    a replay starts them), and those it started or found started."""
    def change(doc: dict[str, Any]) -> None:
        doc["covered"] = sorted(set(doc.get("covered", [])) | set(covered))
        kept = {s: m for s, m in doc.get("refused", {}).items() if s not in started}
        doc["refused"] = {**kept, **refused}
    if covered or refused or started:
        _update(service, group_id, change)


def _members(service: Any, doc: dict[str, Any]) -> list[tuple[str, str, QueueState | None]]:
    """(symbol, queue_id, its queue or None: covered by other queues, refused, or not started)."""
    out: list[tuple[str, str, QueueState | None]] = []
    for symbol, queue_id in zip(doc["symbols"], doc["queue_ids"], strict=True):
        try:
            out.append((symbol, queue_id, service.get(queue_id)))
        except NotFound:
            out.append((symbol, queue_id, None))
    return out


def _missing(doc: dict[str, Any], symbol: str) -> str:
    """What a queue that does not exist is."""
    if symbol in doc.get("covered", []):
        return "covered"
    return "refused" if symbol in doc.get("refused", {}) else "not_started"


def _progress(state: QueueState) -> float:
    shares = [progress.fraction(j.status, j.last_loaded_timestamp, state.range_of(j)) for j in state.jobs]
    return round(sum(shares) / len(shares), 4) if shares else 0.0


def aggregate(statuses: list[str]) -> str:
    """The group's status from its queues' (the rule in this module's docstring)."""
    for active, shown in ((QueueStatus.LOADING, "running"), (QueueStatus.STOPPING, "stopping"),
                          (QueueStatus.PENDING, "pending")):
        if active.value in statuses:
            return shown
    if "not_started" in statuses:
        return "incomplete"
    worst = max((_ENDED.get(s, 2) for s in statuses), default=0)
    return {0: "finished", 1: "stopped", 2: "error"}[worst]


def status(service: Any, group_id: str) -> dict[str, Any]:
    """The group with its queues, their statuses and progress. :raises NotFound:"""
    doc = record(service, group_id)
    queues: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    done = total = 0
    for symbol, queue_id, state in _members(service, doc):
        shown = state.status.value if state is not None else _missing(doc, symbol)
        counts[shown] = counts.get(shown, 0) + 1
        if state is not None:
            total += len(state.jobs)
            done += sum(j.status == JobStatus.FINISHED for j in state.jobs)
        queues.append({"symbol": symbol, "queue_id": queue_id, "status": shown,
                       "progress": _progress(state) if state is not None else float(shown == "covered"),
                       **({"message": doc["refused"][symbol]} if shown == "refused" else {})})
    shown = aggregate([q["status"] for q in queues])
    if shown == "incomplete" and "stopped_at" in doc:
        shown = "stopped"  # stopped before every queue was started
    return {"group_id": doc["id"], "status": shown,
            "created_at": doc["created_at"], "time_range": doc["time_range"], "requests": doc["requests"],
            "progress": round(done / total, 4) if total else 1.0, "jobs": {"finished": done, "total": total},
            "counts": counts, "queues": queues, **({"stopped_at": doc["stopped_at"]} if "stopped_at" in doc else {})}


def listing(service: Any, *, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Groups by id (the records' key order), `limit` from past `after`; and the next cursor."""
    rows = service.store.records.scan(PREFIX, limit=limit, after=PREFIX + after if after else None)
    groups = []
    for _, text, _ in rows:
        doc = json.loads(text)
        groups.append({"group_id": doc["id"], "symbols": len(doc["symbols"]), "created_at": doc["created_at"],
                       "time_range": doc["time_range"], "requests": doc["requests"]})
    return groups, (groups[-1]["group_id"] if len(rows) == limit else None)


def stop(service: Any, group_id: str, *, reason: str | None) -> list[dict[str, Any]]:
    """Stop every active queue of the group; ended ones are reported as they are. The record says
    it is stopped first, so a start of the group still running starts no more of its queues."""
    doc = _update(service, group_id, lambda d: d.setdefault("stopped_at", now()))
    out = []
    for symbol, queue_id, state in _members(service, doc):
        if state is None:
            out.append({"symbol": symbol, "queue_id": queue_id, "status": _missing(doc, symbol), "changed": False})
            continue
        if state.status.value in _ENDED:
            stopped, changed = state, False
        else:
            stopped, changed = service.stop(queue_id, reason=reason)
        out.append({"symbol": symbol, "queue_id": queue_id, "status": stopped.status.value, "changed": changed})
    return out


def retry(service: Any, group_id: str) -> list[dict[str, Any]]:
    """Retry every queue of the group in error; the others are left alone."""
    out = []
    doc = record(service, group_id)
    for symbol, queue_id, state in _members(service, doc):
        shown, retried = (state.status.value if state is not None else _missing(doc, symbol)), False
        if state is not None and state.status == QueueStatus.ERROR:
            try:
                shown, retried = service.retry(queue_id).status.value, True
            except ClientError:  # no longer failed (retried meanwhile), or archived
                shown = service.get(queue_id).status.value
        out.append({"symbol": symbol, "queue_id": queue_id, "status": shown, "retried": retried})
    return out
