"""The records queries of shared/adapters/state/arango_records.py, for the ArangoDB stand-in
(registered with the facts queries, tests/arango_standin_facts.py).

Each answers as arangod runs it: SCAN_QUERY and COUNT_QUERY walk the primary index over
[@low, @high) (keys in byte order, which for the ASCII keys allowed is code point order, as
`aql_cmp` compares strings), STARTS_WITH(_key, @low) kept as a filter; DUE_QUERY walks the
sparse persistent index on `due` up to @before where the collection has it (null and missing
`due` are not in it), in (due, _key) order, the key range filtered. LIMIT refuses what arangod
refuses (errorNum 1504); STARTS_WITH reads its arguments as AQL casts them to strings;
COLLECT WITH COUNT answers one row, 0 for no documents.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from shared.adapters.state.arango_records import COUNT_QUERY, DUE_QUERY, SCAN_QUERY

try:
    from . import arango_standin_paths as paths
    from .arango_standin_aql import ApiError, aql_cmp
except ImportError:  # imported as a top-level module
    import arango_standin_paths as paths  # type: ignore[no-redef]
    from arango_standin_aql import ApiError, aql_cmp  # type: ignore[no-redef]

KINDS = {SCAN_QUERY: "records_scan", DUE_QUERY: "records_due", COUNT_QUERY: "records_count"}
DECLARED = {"records_scan": ("@col", "low", "high", "after", "limit"),
            "records_due": ("@col", "low", "high", "before", "limit"),
            "records_count": ("@col", "low", "high")}


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) < 0:
        raise ApiError(400, 1504, "AQL: LIMIT value is not a number or out of range (while instantiating plan)")
    return int(value)


def _string(v: Any) -> str:
    """AQL's cast to a string (TO_STRING): null "", booleans and numbers as written, arrays and
    objects as JSON."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)


def _in_range(key: str, bind: dict) -> bool:
    """r._key >= @low AND r._key < @high AND STARTS_WITH(r._key, @low)"""
    return (aql_cmp(key, bind["low"]) >= 0 and aql_cmp(key, bind["high"]) < 0
            and key.startswith(_string(bind["low"])))


def _row(d: dict) -> list:
    return [d["_key"], copy.deepcopy(d.get("doc")), d["_rev"]]


def _by_key(docs: Any, bind: dict) -> list[dict]:
    """The primary index's stretch [@low, @high), in key order."""
    return [d for k, d in sorted(docs.items()) if _in_range(k, bind)]


def _due(docs: Any, bind: dict, limit: int) -> list[dict]:
    before = bind["before"]

    def test(d: dict) -> bool:
        return d.get("due") is not None and aql_cmp(d.get("due"), before) <= 0 and _in_range(d["_key"], bind)

    index = paths.index_of(docs, ("due",), True)
    if index is None:  # no index: every document, sorted
        hits = [d for d in docs.values() if test(d)]
        hits.sort(key=functools.cmp_to_key(lambda x, y: aql_cmp(x.get("due"), y.get("due"))
                                           or aql_cmp(x["_key"], y["_key"])))
        return hits[:limit]
    found: list[dict] = []
    for _, d in paths.walk(docs, index, (), paths.stretch(before)[1]):  # due <= @before, by (due, _key)
        if len(found) >= limit:
            break
        if test(d):
            found.append(d)
    return found


def execute(kind: str, col: Any, bind: dict) -> list:
    """Run records query `kind` on collection `col` (@@col); the result rows."""
    docs = col.docs
    if kind == "records_count":
        return [len(_by_key(docs, bind))]
    limit = _limit(bind["limit"])
    if kind == "records_scan":
        after = bind["after"]
        return [_row(d) for d in _by_key(docs, bind) if aql_cmp(d["_key"], after) > 0][:limit]
    return [_row(d) for d in _due(docs, bind, limit)]
