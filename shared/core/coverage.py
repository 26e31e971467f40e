"""Coverage: what has been loaded, per (symbol, type, period), and what is missing.

Every job that loads a dataset (a `loader-producer` into its Kafka topic, an
`arango-connector` into its collection) leaves *entries* in its queue's facts, one per calendar
year its range touches (a partitioned job: its month or day), each with the queue, the dataset, and the
job's state: `in_flight`, `loaded` (records, when), `failed` or `stopped`, and the gaps its
telemetry reported. The store keeps them in an index by (series, first day) that outlives the
queue's archiving, so `GET /coverage` reads only the entries of the asked range.

`periods` turns entries into the answer: each period of the range with the entry that covers
it best (a loaded collection before a loaded topic, then in flight, then the newest), or
`missing`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from shared.core import partitions
from shared.core.fields import parse_time_range
from shared.core.models import JobState, JobStatus, QueueState

KINDS = {"loader-producer": "topic", "arango-connector": "collection"}
STATE = {JobStatus.PENDING: "in_flight", JobStatus.LAUNCHED: "in_flight", JobStatus.RUNNING: "in_flight",
         JobStatus.FINISHED: "loaded", JobStatus.ERROR: "failed", JobStatus.STOPPED: "stopped",
         JobStatus.SKIPPED: "stopped"}
COVERING = ("loaded", "in_flight")
MAX_ENTRY_GAPS = 50


def series(symbol: str, type_: str) -> str:
    return f"{symbol}|{type_}"


def _pieces(time_range: str) -> list[tuple[dt.date, dt.date]]:
    """The range cut at year ends: every entry lies within one calendar year (a partitioned job's
    period within its month or day), so a read of a range starts at its year's first day."""
    start, end = parse_time_range(time_range)
    pieces = []
    while start <= end:
        last = min(end, dt.date(start.year, 12, 31))
        pieces.append((start, last))
        if last.year == dt.MAXYEAR:
            break
        start = dt.date(last.year + 1, 1, 1)
    return pieces


_CACHE_MAX = 65536
_cache: dict[tuple[object, ...], list[dict[str, Any]]] = {}


def entries(state: QueueState) -> list[dict[str, Any]]:
    """The coverage entries of a queue's loading jobs, in the facts' form (short keys)."""
    found: dict[str, dict[str, Any]] = {}
    for job in state.jobs:
        kind = KINDS.get(job.target)
        if kind is None or not job.kafka_topic:
            continue
        key = (state.id, state.symbol, state.time_range, job.id, job.type, job.status, job.time_range,
               job.period, job.kafka_topic, signature(job), len(job.gaps) and tuple(map(tuple, job.gaps)))
        made = _cache.get(key)
        if made is None:
            made = _job_entries(state, job, kind)
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[key] = made
        for entry in made:
            found[entry["id"]] = entry
    return sorted(found.values(), key=lambda e: (e["s"], e["f"], e["k"]))


def _job_entries(state: QueueState, job: JobState, kind: str) -> list[dict[str, Any]]:
    job_range = state.range_of(job)
    pieces = _pieces(job_range)
    made = []
    for first, last in pieces:
        entry = _entry(state, job, kind, first, last)
        if len(pieces) > 1:
            entry["j"] = job_range  # records and gaps are the whole job's
        made.append(entry)
    return made


def _entry(state: QueueState, job: JobState, kind: str, first: dt.date, last: dt.date) -> dict[str, Any]:
    s = series(state.symbol, job.type)
    f = first.isoformat()
    status = STATE[job.status]
    entry: dict[str, Any] = {
        "id": hashlib.sha1(f"{state.id}|{s}|{f}|{kind}".encode()).hexdigest()[:32],
        "s": s, "f": f, "t": last.isoformat(), "k": kind, "n": job.kafka_topic, "q": state.id, "st": status}
    if job.period:
        entry["p"] = job.period
    if status == "loaded":
        entry["r"] = job.records_written
    if status != "in_flight" and job.finished_at:
        entry["at"] = job.finished_at
    gaps = [g for g in job.gaps if _touches(g, f, entry["t"])][:MAX_ENTRY_GAPS]
    if gaps:
        entry["g"] = gaps
    return entry


def _touches(gap: list[str], lo: str, hi: str) -> bool:
    """Whether a gap [from, to] (times) touches the days [lo, hi] (dates)."""
    return gap[0][:10] <= hi and gap[1][:10] >= lo


def signature(job: JobState) -> tuple[object, ...]:
    """What of a job its entries are made of, besides its status (`facts._signature`)."""
    if job.target not in KINDS:
        return ()
    return (job.records_written if job.status == JobStatus.FINISHED else None, job.finished_at, len(job.gaps))


def _better(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether entry a covers better than b: loaded, then in flight, then failed; a collection
    before a topic; without gaps before with; the longer; the newest."""
    def key(e: dict[str, Any]) -> tuple[object, ...]:
        return ({"loaded": 3, "in_flight": 2, "failed": 1}.get(e["st"], 0), e["k"] == "collection",
                not e.get("g"), e["t"], e.get("at") or "")
    return key(a) > key(b)


def periods(found: list[dict[str, Any]], start: dt.date, end: dt.date, partition: str,
            exists: set[str] | None = None) -> list[dict[str, Any]]:
    """Each period of [start, end]: its status and the entries behind it.

    `exists`: on ArangoDB, the collections there are; a loaded collection that is gone does not
    cover (its period is missing, or covered by another entry).
    """
    usable = [e for e in found if not (exists is not None and e["k"] == "collection" and e["st"] == "loaded"
                                       and e["n"] not in exists)]
    return [cover(usable, name, first.isoformat(), last.isoformat())
            for name, first, last in partitions.periods(start, end, partition)]


def _union_covers(chosen: list[dict[str, Any]], lo: str, hi: str) -> bool:
    """Whether the entries together cover every day of [lo, hi] (by day numbers: no date
    arithmetic to overflow at 9999-12-31)."""
    day = dt.date.fromisoformat(lo).toordinal()  # the first day not yet covered
    for e in sorted(chosen, key=lambda e: e["f"]):
        if dt.date.fromisoformat(e["f"]).toordinal() > day:
            return False
        day = max(day, dt.date.fromisoformat(e["t"]).toordinal() + 1)
    return day > dt.date.fromisoformat(hi).toordinal()


def cover(found: list[dict[str, Any]], name: str, lo: str, hi: str) -> dict[str, Any]:
    """One period [lo, hi]: `loaded` or `in_flight` when the best entry covers all of it, or the
    best entries of several queues together do (days of a month); `failed` when only failed
    loads touched it all; `partial` when loads cover some of it; else `missing`."""
    touching = [e for e in found if e["f"] <= hi and e["t"] >= lo]
    best: dict[str, dict[str, Any]] = {}  # per first day: the best entry starting there
    for e in touching:
        if e["f"] not in best or _better(e, best[e["f"]]):
            best[e["f"]] = e
    period: dict[str, Any] = {"period": name, "from": lo, "to": hi}
    for status in ("loaded", "in_flight", "failed"):
        rank = ("loaded", "in_flight", "failed")[: ("loaded", "in_flight", "failed").index(status) + 1]
        chosen = [e for e in best.values() if e["st"] in rank]
        if chosen and _union_covers(chosen, lo, hi):
            period["status"] = status
            _describe(period, chosen)
            return period
    loaded = sorted({e["q"] for e in touching if e["st"] in COVERING})
    period["status"] = "partial" if loaded else "missing"
    if loaded:
        period["queues"] = loaded
    return period


def _describe(period: dict[str, Any], chosen: list[dict[str, Any]]) -> None:
    queues = sorted({e["q"] for e in chosen})
    period["queue_id"] = queues[0] if len(queues) == 1 else None
    if len(queues) > 1:
        period["queues"] = queues
    period["datasets"] = sorted({e["n"] for e in chosen})
    period["kind"] = "collection" if all(e["k"] == "collection" for e in chosen) else "topic"
    if all("r" in e and "j" not in e for e in chosen):
        period["records"] = sum(e["r"] for e in chosen)
    ats = [e["at"] for e in chosen if "at" in e]
    if ats:
        period["at"] = max(ats)
    lo, hi = period["from"], period["to"]  # the gaps within this period (a day of a month, say)
    gaps = sorted({tuple(g) for e in chosen for g in e.get("g", ()) if _touches(g, lo, hi)})
    if gaps:
        period["gaps"] = [{"from": a, "to": b} for a, b in gaps]
    whole = sorted({e["j"] for e in chosen if "j" in e})
    if whole:
        period["job_ranges"] = whole


def floor(day: dt.date) -> str:
    """The first day an entry touching `day` can start on (entries stay within a year)."""
    return day.replace(month=1, day=1).isoformat()
