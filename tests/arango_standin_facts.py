"""The facts queries of shared/adapters/state/arango_aql.py, for the ArangoDB stand-in.

Each runs as arangod runs that query: the writes (INSERT/REPLACE of the queue document and
the UPSERTs of its counters and its coverage entries, tests/arango_standin_coverage.py) all or
nothing, REPLACE with `ignoreRevs: false` failing with
errorNum 1200 on a revision mismatch, INSERT with 1210 on a taken key, `OLD.facts.c || {}`
for a document stored without facts, and UPSERT adding to a counter or creating it. The
reads return what the query's RETURN builds, in its SORT order (none: primary key order).
In a stream transaction a query writing to a collection the transaction did not declare for
writing fails before it runs (400, errorNum 1652, "unregistered collection used in transaction").
"""

from __future__ import annotations

import copy
from typing import Any

from shared.adapters.state import arango_aql as q

try:
    from . import arango_standin_coverage as coverage
    from . import arango_standin_paths as paths
    from . import arango_standin_records as records
    from .arango_standin_aql import ApiError, aql_cmp, aql_eq
except ImportError:  # imported as a top-level module
    import arango_standin_coverage as coverage  # type: ignore[no-redef]
    import arango_standin_paths as paths  # type: ignore[no-redef]
    import arango_standin_records as records  # type: ignore[no-redef]
    from arango_standin_aql import ApiError, aql_cmp, aql_eq  # type: ignore[no-redef]

KINDS = {q.CREATE_QUERY: "create", q.REPLACE_QUERY: "replace", q.COUNTERS_QUERY: "counters",
         q.WAITING_QUERY: "waiting", q.WAITING_FOR_QUERY: "waiting_for", q.ACTIVE_QUERY: "active",
         q.DATASET_QUERY: "dataset", q.UNINDEXED_QUERY: "unindexed", q.ENDED_QUERY: "ended",
         q.REMOVE_QUERY: "remove", q.SUM_QUERY: "sum", q.CLEAR_QUERY: "clear", q.PUT_QUERY: "put",
         q.COVERAGE_QUERY: "coverage"}
DECLARED = {"create": ("@col", "@counters", "@coverage", "doc", "archive"),
            "replace": ("@col", "@counters", "@coverage", "doc", "extra"),
            "sum": ("@col",), "clear": ("@counters",), "put": ("@counters", "rows"),
            "counters": ("@counters", "prefix"), "waiting": ("@col", "limit"),
            "waiting_for": ("@col", "target", "limit"), "active": ("@col", "symbol", "active"),
            "dataset": ("@col", "name"), "unindexed": ("@col", "limit", "format"), "ended": ("@col", "before", "limit"),
            "remove": ("@col", "@counters", "key", "rev"), "coverage": ("@coverage", "series", "first", "last")}
KINDS.update(records.KINDS)  # the records' queries (tests/arango_standin_records.py)
DECLARED.update(records.DECLARED)
COLLECTIONS = ("@col", "@counters", "@coverage")
WRITES = {"create": COLLECTIONS, "replace": COLLECTIONS, "remove": ("@col", "@counters"),
          "clear": ("@counters",), "put": ("@counters",)}
_MISSING = object()


def _get(doc: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) < 0:
        raise ApiError(400, 1504, "AQL: LIMIT value is not a number or out of range (while instantiating plan)")
    return int(value)


def _sorted(docs: list[dict], *path: str) -> list[dict]:
    import functools

    return sorted(docs, key=functools.cmp_to_key(
        lambda x, y: aql_cmp(_get(x, *path), _get(y, *path)) or aql_cmp(x["_key"], y["_key"])))


def _count(counters: Any, changes: dict[str, Any], new_rev: Any) -> None:
    for name, n in changes.items():
        current = counters.docs.get(name)
        if current is None:
            counters.docs[name] = {"_key": name, "_id": f"{counters.name}/{name}", "_rev": new_rev(), "n": n}
        else:
            counters.docs[name] = {**current, "_rev": new_rev(), "n": (current.get("n") or 0) + n}


def _number(v: Any) -> float:
    """AQL's arithmetic view of a value: null and false 0, true 1, numbers as they are."""
    if v is None or v is False:
        return 0
    if v is True:
        return 1
    return v if isinstance(v, (int, float)) else 0


def _write(kind: str, col: Any, counters: Any, covered: Any, doc: Any, new_rev: Any, extra: Any = None) -> list:
    if not isinstance(doc, dict):
        raise ApiError(400, 1227, "invalid document type")
    key = doc.get("_key")
    user = {k: v for k, v in doc.items() if k not in ("_key", "_id", "_rev")}
    current = col.docs.get(key) if isinstance(key, str) else None
    if kind == "create":
        if current is not None:
            raise ApiError(409, 1210, "AQL: unique constraint violated - in index primary of type primary over "
                           f"'_key'; conflicting key: {key} (while executing)")
        old: Any = {}
    else:
        if current is None:
            raise ApiError(404, 1202, "document not found")
        if doc.get("_rev") is not None and doc["_rev"] != current["_rev"]:
            raise ApiError(409, 1200, "conflict, _rev values do not match")
        old = _get(current, "facts", "c") or {}  # OLD.facts.c || {}
    new = {"_key": key, "_id": f"{col.name}/{key}", "_rev": new_rev(), **copy.deepcopy(user)}
    entries = coverage.planned(kind, current, new)  # before any write: a failing query writes nothing
    new_counts = _get(new, "facts", "c")
    extra = extra if isinstance(extra, dict) else {}
    names = list(dict.fromkeys([*(old if isinstance(old, dict) else {}),
                                *(new_counts if isinstance(new_counts, dict) else {}), *extra]))
    changes: dict[str, Any] = {}
    for name in names:
        if kind == "create":
            n = new_counts[name]
        else:
            n = (_number(_get(new_counts, name)) - _number(old.get(name) if isinstance(old, dict) else None)
                 + _number(extra.get(name)))
        if not aql_eq(n, 0):
            changes[name] = n
    col.docs[key] = new
    _count(counters, changes, new_rev)
    coverage.apply(covered, entries, new_rev)
    return [new["_rev"]]


def _remove(col: Any, counters: Any, key: Any, rev: Any, new_rev: Any) -> list:
    current = col.docs.get(key) if isinstance(key, str) else None
    if current is None:
        raise ApiError(404, 1202, "document not found")
    if rev is not None and rev != current["_rev"]:
        raise ApiError(409, 1200, "conflict, _rev values do not match")
    old = _get(current, "facts", "c") or {}
    changes: dict[str, Any] = {}
    for name, n in (old.items() if isinstance(old, dict) else ()):
        if aql_eq(n, 0):
            continue
        changes[name] = changes.get(name, 0) - _number(n)
        if name == "q" or name.startswith(("q.", "s.")):
            changes["a:" + name] = changes.get("a:" + name, 0) + _number(n)
    del col.docs[key]
    _count(counters, changes, new_rev)
    return [1]


def execute(kind: str, cols: dict, bind: dict, new_rev: Any) -> list:
    """Run query `kind` on the collections `cols` (name -> collection); the result rows."""
    found = {}
    for name in COLLECTIONS:
        if name in DECLARED[kind]:
            cname = bind[name]
            if not isinstance(cname, str) or not cname:
                raise ApiError(400, 1553, f"AQL: bind parameter '{name}' has an invalid value or type (while parsing)")
            if cname not in cols:
                raise ApiError(404, 1203, f"AQL: collection or view not found: {cname} (while parsing)")
            found[name] = cols[cname]
    for name in WRITES.get(kind, ()):  # a stream transaction's collection view knows its declaration
        if getattr(found[name], "writable", True) is False:
            raise ApiError(400, 1652, "AQL: unregistered collection used in transaction: "
                           f"{found[name].name} [write] (while parsing)")
    if kind == "create" and isinstance(bind["doc"], dict):  # FOR archived IN [DOCUMENT(@archive, key)]
        archive = cols.get(bind["archive"]) if isinstance(bind["archive"], str) else None
        if archive is not None and archive.docs.get(bind["doc"].get("_key")) is not None:
            return []
    if kind in ("create", "replace"):
        return _write(kind, found["@col"], found["@counters"], found["@coverage"], bind["doc"], new_rev,
                      bind.get("extra"))
    if kind in records.DECLARED:
        return records.execute(kind, found["@col"], bind)
    if kind == "coverage":
        return coverage.read(found["@coverage"].docs, bind, _read)
    if kind == "sum":
        sums: dict[str, Any] = {}
        for d in found["@col"].docs.values():
            c = _get(d, "facts", "c")
            for name, n in (c.items() if isinstance(c, dict) else ()):
                sums[name] = sums.get(name, 0) + _number(n)
        return [[name, n] for name, n in sorted(sums.items())]
    if kind == "clear":  # FILTER NOT STARTS_WITH(c._key, "a:")
        docs_ = found["@counters"].docs
        for name in [k for k in docs_ if not k.startswith("a:")]:
            del docs_[name]
        return []
    if kind == "put":
        rows = bind["rows"] if isinstance(bind["rows"], list) else []
        for name, n in rows:
            if name in found["@counters"].docs:
                raise ApiError(409, 1210, "AQL: unique constraint violated - in index primary of type primary"
                               f" over '_key'; conflicting key: {name} (while executing)")
            found["@counters"].docs[name] = {"_key": name, "_id": f"{found['@counters'].name}/{name}",
                                             "_rev": new_rev(), "n": n}
        return []
    if kind == "remove":
        return _remove(found["@col"], found["@counters"], bind["key"], bind["rev"], new_rev)
    if kind == "counters":
        prefix = bind["prefix"]
        rows = [[d["_key"], d.get("n")] for k, d in sorted(found["@counters"].docs.items())
                if isinstance(prefix, str) and k.startswith(prefix) and not aql_eq(d.get("n"), 0)]
        return copy.deepcopy(rows)
    docs = found["@col"].docs
    if kind == "waiting":
        limit = _limit(bind["limit"])
        hits = _read(docs, ("facts.r",), True, None, lambda d: _get(d, "facts", "r") is not None, first=limit)
        return [[d["_key"], copy.deepcopy(d["facts"]["r"])] for d in _sorted(hits, "facts", "r")[:limit]]
    if kind == "waiting_for":  # the rank index, walked best first, until `limit` wait for the target
        target, limit = bind["target"], _limit(bind["limit"])
        hits = _read(docs, ("facts.r",), True, None, lambda d: _get(d, "facts", "r") is not None
                     and isinstance(_get(d, "facts", "w"), list) and any(aql_eq(target, t) for t in d["facts"]["w"]),
                     first=limit)
        return [[d["_key"], copy.deepcopy(d["facts"]["r"])] for d in _sorted(hits, "facts", "r")[:limit]]
    if kind == "active":
        active = bind["active"] if isinstance(bind["active"], list) else []
        hits = [d for status in dict.fromkeys(s for s in active if isinstance(s, str))
                for d in _read(docs, ("symbol", "status"), False, (bind["symbol"], status),
                               lambda d, status=status: aql_eq(d.get("symbol"), bind["symbol"])
                               and aql_eq(d.get("status"), status) and d.get("facts") is not None)]
        return copy.deepcopy([[d["_key"], {"t": _get(d, "facts", "t"), "l": _get(d, "facts", "l")}] for d in hits])
    if kind == "dataset":
        name = bind["name"]
        hit = _read(docs, ("facts.d[*]",), False, (name,), lambda d: isinstance(_get(d, "facts", "d"), list)
                    and any(aql_eq(name, n) for n in d["facts"]["d"]))
        return [1] if hit else []
    if kind == "ended":
        before = bind["before"]
        limit = _limit(bind["limit"])
        hits = _read(docs, ("facts.e",), True, None, lambda d: _get(d, "facts", "e") is not None
                     and aql_cmp(d["facts"]["e"], before) < 0, below=before, first=limit)
        return copy.deepcopy(_sorted(hits, "facts", "e")[:limit])
    limit = _limit(bind["limit"])  # unindexed
    below = bind["format"]  # facts.x < @format: null (no facts) sorts first
    hits = _read(docs, ("facts.x",), False, None, lambda d: aql_cmp(_get(d, "facts", "x"), below) < 0, below=below,
                 first=limit)
    return copy.deepcopy(hits[:limit])


def _read(docs: Any, fields: tuple[str, ...], sparse: bool, equal: tuple | None, test: Any,
          below: Any = _MISSING, first: int | None = None) -> list[dict]:
    """The documents passing `test`: from the persistent index on `fields` where the collection
    has it (its entries equal to `equal`, or all of them, or those below `below`), as arangod
    reads it; else from every document."""
    index = paths.index_of(docs, fields, sparse)
    if index is None:
        return [d for d in docs.values() if test(d)]
    if equal is not None:
        lo, hi = paths.stretch(*equal)
    else:
        lo, hi = (), ((*paths.stretch(below)[0],) if below is not _MISSING else (9,))
    found = []
    for _, d in paths.walk(docs, index, lo, hi):
        if test(d):
            found.append(d)
            if first is not None and len(found) >= first:  # LIMIT after the index's order: stop
                break
    return found
