"""The store's list, total and count queries answered from the sorted structures of
tests/arango_standin_docs.py, when the collection has the persistent indexes for them.

LIST_QUERY (filter on status and symbol, keyset on (started_at DESC, _key ASC), LIMIT offset,
limit) walks the structure for its filter (or the started_at one, filtering what it walks, as
a real ArangoDB walks its started_at index) backwards from the keyset position and stops after
offset + limit matches. `fullCount` and TOTAL_QUERY count the matches from two binary searches
on the structure when it covers the whole filter; a real ArangoDB counts them one by one
(O(matches)); where the stand-in has to filter what it walks, it does too. COUNT_QUERY counts
each status's stretch of the (status, ...) structure. Without a structure for the query,
`answer` returns None and the query scans every document (tests/arango_standin_aql.py), with
the same results.

In a stream transaction the collection is an overlay (tests/arango_standin_trx.py): the walk
goes over the shared structures, skips the keys whose document differs from the one the
transaction sees (its own writes and the pre-images of documents others changed since it
began), and merges those documents in; counts are corrected by the same few documents.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import time
from collections.abc import Iterator
from typing import Any

try:
    from .arango_standin_aql import ApiError
    from .arango_standin_docs import FILTER_FIELDS, SORT_FIELD, TOP, DocStore, aql_key, raw
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError  # type: ignore[no-redef]
    from arango_standin_docs import (  # type: ignore[no-redef]
        FILTER_FIELDS,
        SORT_FIELD,
        TOP,
        DocStore,
        aql_key,
        raw,
    )


class _Order:
    """Sort key for (started_at key, _key key, doc): started_at DESC, _key ASC."""

    __slots__ = ("at", "key")

    def __init__(self, item: tuple):
        self.at, self.key = item[0], item[1]

    def __lt__(self, other: _Order) -> bool:
        return self.at > other.at or (self.at == other.at and self.key < other.key)


class _Plan:
    def __init__(self, base: DocStore, filters: dict[str, tuple], keyset: tuple | None):
        usable = [f for f in base.sorted if set(f) <= set(filters)]
        self.fields = max(usable, key=len) if usable else None
        self.entries = base.sorted[self.fields] if self.fields is not None else None
        self.prefix = tuple(v for f in self.fields or () for v in filters[f])  # flat, as entries are
        self.residual = {f: k for f, k in filters.items() if f not in (self.fields or ())}
        self.base, self.filters, self.keyset = base, filters, keyset
        self.walked = 0

    def matches(self, doc: dict) -> bool:
        if any(aql_key(doc.get(f)) != k for f, k in self.filters.items()):
            return False
        if self.keyset is None:
            return True
        at, key = aql_key(doc.get(SORT_FIELD)), aql_key(doc.get("_key"))
        return at < self.keyset[0] or (at == self.keyset[0] and key > self.keyset[1])

    def ranges(self) -> list[tuple[tuple, tuple, bool]]:
        """(lo, hi, descending) stretches of the structure, in the query's order."""
        p = self.prefix
        if self.keyset is None:
            return [(p, (*p, TOP), True)]
        at, key = self.keyset
        return [((*p, *at, *key, TOP), (*p, *at, TOP), False), (p, (*p, *at), True)]

    def walk(self, skip: dict) -> Iterator[tuple]:
        """(started_at key, _key key, doc) of the base's matches, in the query's order."""
        assert self.entries is not None
        n = len(self.prefix)
        for lo, hi, descending in self.ranges():
            group: list[tuple] = []  # entries of one started_at, to give out by _key ascending
            for e in (self.entries.down(lo, hi) if descending else self.entries.up(lo, hi)):
                if group and group[-1][n:n + 2] != e[n:n + 2]:
                    yield from self._give(reversed(group) if descending else group, skip)
                    group = []
                group.append(e)
            yield from self._give(reversed(group) if descending else group, skip)

    def _give(self, entries: Any, skip: dict) -> Iterator[tuple]:
        n = len(self.prefix)
        for e in entries:
            self.walked += 1
            key = e[-1]
            if key in skip:
                continue
            doc = dict.__getitem__(self.base, key)
            if all(aql_key(doc.get(f)) == k for f, k in self.residual.items()):
                yield e[n:n + 2], (3, key), doc

    def count(self, changes: dict) -> int:
        assert self.entries is not None
        if self.residual:
            found = sum(1 for _ in self.walk({}))
        else:
            found = sum(self.entries.count(lo, hi) for lo, hi, _ in self.ranges())
        for key, doc in changes.items():
            old = self.base.get(key)
            found += (doc is not None and self.matches(doc)) - (old is not None and self.matches(old))
        return found


def _stats(walked: int, matched: int) -> dict[str, Any]:
    return {"writesExecuted": 0, "writesIgnored": 0, "documentLookups": 0, "seeks": 0,
            "scannedFull": 0, "scannedIndex": walked, "cursorsCreated": 0, "cursorsRearmed": 0,
            "cacheHits": 0, "cacheMisses": 0, "filtered": max(0, walked - matched),
            "httpRequests": 0}


def answer(docs: Any, kind: str, bind: dict, full_count: bool,
           started: float) -> tuple[list, dict] | None:
    """(rows, extra.stats) of the query `kind` from the sorted structures, None without them."""
    base = getattr(docs, "base", docs)
    if not isinstance(base, DocStore) or kind not in ("list", "total", "count"):
        return None
    limits: list[int] = []
    for v in (bind["offset"], bind["limit"]) if kind == "list" else ():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) < 0:
            raise ApiError(400, 1504, "AQL: LIMIT value is not a number or out of range "
                           "(while instantiating plan)")
        limits.append(int(v))
    found = _answer(base, docs, kind, bind, limits, full_count)
    if found is None:
        return None
    found[1].update(executionTime=time.perf_counter() - started, peakMemoryUsage=0,
                    intermediateCommits=0)
    return copy.deepcopy(found[0]), found[1]


def _answer(base: DocStore, docs: Any, kind: str, bind: dict, limits: list[int],
            full_count: bool) -> tuple[list, dict] | None:
    changes: dict = docs.changes() if docs is not base else {}
    if kind == "count":
        return _count_by_status(base, changes)
    filters = {f: aql_key(bind[f]) for f in FILTER_FIELDS if bind[f] is not None}
    if kind == "total" and not filters:
        return [len(docs)], _stats(0, 0)
    keyset = None if kind == "total" or bind["at"] is None else (aql_key(bind["at"]),
                                                                  aql_key(bind["key"]))
    plan = _Plan(base, filters, keyset)
    if plan.fields is None:
        return None
    if kind == "total":
        total = plan.count(changes)
        return [total], _stats(plan.walked, total)
    offset, limit = limits
    extra = sorted(((aql_key(d.get(SORT_FIELD)), aql_key(k), d) for k, d in changes.items()
                    if d is not None and plan.matches(d)), key=_Order)
    merged = heapq.merge(plan.walk(changes), extra, key=_Order)
    page = [doc for _, _, doc in itertools.islice(merged, offset + limit)][offset:]
    stats = _stats(plan.walked, len(page))
    if full_count:
        stats["fullCount"] = plan.count(changes)
    return page, stats


def _count_by_status(base: DocStore, changes: dict) -> tuple[list, dict] | None:
    entries = base.sorted.get(("status",))
    if entries is None:
        return None
    counts: dict[tuple, int] = {}
    lo: tuple = ()
    while True:
        first = next(entries.up(lo, (TOP,)), None)
        if first is None:
            break
        counts[first[:2]] = entries.count(first[:2], (*first[:2], TOP))
        lo = (*first[:2], TOP)
    for key, doc in changes.items():
        old = base.get(key)
        if old is not None:
            counts[aql_key(old.get("status"))] -= 1
        if doc is not None:
            k = aql_key(doc.get("status"))
            counts[k] = counts.get(k, 0) + 1
    rows = [{"status": raw(k), "count": n} for k, n in sorted(counts.items()) if n > 0]
    return rows, _stats(len(counts), len(rows))
