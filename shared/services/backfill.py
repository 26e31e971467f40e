"""Backfills: what is already loaded (coverage), and the start that loads only the rest.

A partitioned start asks coverage (`shared/core/coverage.py`) about each period it would load:
a period another queue has loaded, or is loading, is *skipped* (its loader and connector are not
created) and named with the queue that covers it; `force` loads everything again, `repair`
reloads covered periods that have gaps. Downstream requests of a skipped period still run: the
data they read is there, or, when it is still being loaded, the start is refused with a 409
naming the queue to wait for.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.core import coverage, lineage, naming, partitions
from shared.core.errors import Conflict
from shared.core.fields import parse_time_range
from shared.core.models import QueueStart
from shared.services.context import Context


def entries(ctx: Context, symbol: str, type_: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """The coverage entries of (symbol, type) touching [start, end]: one indexed range read."""
    texts = ctx.store.coverage(coverage.series(symbol, type_), coverage.floor(start), end.isoformat())
    found = [json.loads(t) for t in texts]
    return [e for e in found if e["t"] >= start.isoformat()]


def collections(ctx: Context) -> set[str] | None:
    """On ArangoDB, the collections that really exist (None elsewhere: the records are the truth)."""
    names = getattr(ctx.store, "collection_names", None)
    return set(names()) if names else None


def report(ctx: Context, symbol: str, type_: str, start: dt.date, end: dt.date, partition: str) -> dict[str, Any]:
    """`GET /coverage`: every period of the range, with its status and the load behind it."""
    found = entries(ctx, symbol, type_, start, end)
    exists = collections(ctx)
    periods = coverage.periods(found, start, end, partition, exists)
    if exists is not None:  # ArangoDB: say which loaded collections are really there
        for period in periods:
            names = period.get("datasets") or []
            if period.get("kind") == "collection":
                period["exists"] = all(n in exists for n in names)
            elif period["status"] == "missing":
                name = naming.dataset(symbol, type_, period["period"])
                if name in exists:  # loaded before coverage was kept, or by something else
                    period.update(status="present", datasets=[name], exists=True)
    summary: dict[str, int] = {}
    for period in periods:
        summary[period["status"]] = summary.get(period["status"], 0) + 1
    return {"symbol": symbol, "type": type_, "from": start.isoformat(), "to": end.isoformat(),
            "partition": partition, "summary": summary, "periods": periods}


@dataclass
class Decision:
    """The units to create and the periods skipped, with the queues covering them."""

    units: list[partitions.Unit]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)  # collections the skipped periods hold

    @property
    def covering(self) -> list[str]:
        return covering(self.skipped)


def covering(skipped: list[dict[str, Any]]) -> list[str]:
    """The queues covering skipped periods (`Decision.skipped`, `QueueState.skipped`)."""
    return sorted({q for s in skipped for q in [s.get("queue_id"), *s.get("queues", [])] if q})


def decide(ctx: Context, command: QueueStart, queue_id: str, *, exists: Callable[[str], bool],
           units: list[partitions.Unit] | None = None) -> Decision:
    """Which units of a start to create: all of them, less the loading units of covered periods.

    A period is covered by loads of the very dataset this queue would write (`btc_candles_1d_2024_06`
    for June by month; a day of it is another dataset), of its collection when this queue has a
    connector for it.

    `exists`: whether a collection is there already (`QueueService.dataset_exists`).

    :raises Conflict: a unit that stays waits (for data, `depends_on` or the mode) for a skipped
        period another queue is still loading.
    """
    units = partitions.units(command) if units is None else units
    if command.force or not partitions.partitioned(command):
        return Decision(units)
    start, end = parse_time_range(command.time_range)
    loading = [u for u in units if u.period is not None and u.spec.target in coverage.KINDS]
    wants_collection = {(u.spec.type, u.period) for u in loading if u.spec.target == "arango-connector"}
    found: dict[str, list[dict[str, Any]]] = {}
    catalog = collections(ctx) if loading else None
    covered: dict[tuple[str, str], dict[str, Any]] = {}
    for u in loading:
        key = (u.spec.type, u.period or "")
        if key in covered:
            continue
        if u.spec.type not in found:
            found[u.spec.type] = [e for e in entries(ctx, command.symbol, u.spec.type, start, end)
                                  if e["q"] != queue_id and not _gone(e, catalog)]
        name = naming.dataset(command.symbol, u.spec.type, key[1])
        candidates = [e for e in found[u.spec.type] if e["n"] == name
                      and (key not in wants_collection or e["k"] == "collection")]
        lo, hi = u.time_range.split(":")
        status = coverage.cover(candidates, key[1], lo, hi)
        if status["status"] in coverage.COVERING and not (command.repair and status.get("gaps")):
            covered[key] = status
    if not covered:
        return Decision(units)
    removed = {id(u) for u in loading if (u.spec.type, u.period) in covered}
    decision = Decision([u for u in units if id(u) not in removed])
    for (type_, name), status in sorted(covered.items(), key=lambda item: (item[1]["from"], item[0][0])):
        decision.skipped.append({"type": type_, "period": name, "from": status["from"], "to": status["to"],
                                 "status": status["status"], "queue_id": status.get("queue_id"),
                                 **({"queues": status["queues"]} if status.get("queues") else {}),
                                 **({"records": status["records"]} if "records" in status else {})})
        if status["status"] == "loaded":
            decision.loaded.update(status.get("datasets", []))
    _check_waits(command, units, removed, covered, exists)
    return decision


def _gone(entry: dict[str, Any], exists: set[str] | None) -> bool:
    return exists is not None and entry["k"] == "collection" and entry["st"] == "loaded" and entry["n"] not in exists


def _check_waits(command: QueueStart, units: list[partitions.Unit], removed: set[int],
                 covered: dict[tuple[str, str], dict[str, Any]], exists: Callable[[str], bool]) -> None:
    """A unit that stays may not wait for a skipped period that is still loading elsewhere: its
    wait would be for a job this queue does not have. The needs of the whole queue say who waits."""
    needs = lineage.plan(command, exists=exists, units=units)
    for i, u in enumerate(units):
        if id(u) in removed:
            continue
        for need in needs[i]:
            other = units[need.job]
            if id(other) not in removed:
                continue
            status = covered[(other.spec.type, other.period or "")]
            if status["status"] == "loaded":
                continue
            holder = status.get("queue_id") or ", ".join(status.get("queues", []))
            dataset = naming.dataset(command.symbol, other.spec.type, other.period or "")
            raise Conflict(
                f"{dataset} ({other.spec.type} {other.period}) is still being loaded by queue {holder}, and "
                f"request {u.request} ({u.spec.target} {u.spec.type}) of this queue waits for it ({need.reason}): "
                "start it once that queue has finished, or send force: true",
                details=[{"queue_id": holder, "period": other.period, "type": other.spec.type,
                          "request": u.request}])
