"""The coverage half of the facts queries (tests/arango_standin_facts.py), for the ArangoDB
stand-in: what CREATE_QUERY / REPLACE_QUERY of shared/adapters/state/arango_aql.py write to
the coverage collection, and COVERAGE_QUERY's read of it.

The writes run as arangod runs `LET covered = (LET old = ZIP(doc.old_v[*].id, doc.old_v) FOR e
IN doc.new_v FILTER old[e.id] != e UPSERT {_key: e.id} INSERT MERGE(e, {_key: e.id}) REPLACE
MERGE(e, {_key: e.id}) IN @@coverage RETURN 1)`: `new_v` is `NEW.facts.v || []` (FOR over
anything but an array fails the query with errorNum 1563), `old_v` is `OLD.facts.v || []` (`[]`
for a create), looked up by id; an entry equal (AQL equality: deep, attribute order aside) to
the old entry of its id is skipped, and each
other one replaces (or creates) the document `e.id`: a non-object entry fails the query with
1227 (MERGE gives null, INSERT of null), an id that is no valid key with 1221. The checks run
before anything is written (`planned`), so a failing query writes nothing: arangod rolls the
whole query back. UPSERT reads its own writes (3.12's default): the same id twice, the last
entry wins.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

try:
    from .arango_standin_aql import ApiError, aql_cmp, aql_eq
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError, aql_cmp, aql_eq  # type: ignore[no-redef]

SYSTEM = ("_key", "_id", "_rev")
_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", dict: "object"}


def _facts_v(doc: Any) -> Any:
    facts = doc.get("facts") if isinstance(doc, dict) else None
    return facts.get("v") if isinstance(facts, dict) else None


def _truthy(v: Any) -> bool:
    """AQL's truthiness (for `||`): null, false, 0 and "" are false; arrays and objects true."""
    return not (v is None or v is False or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)
                or v == "")


def planned(kind: str, current: Any, new: dict) -> dict[str, dict]:
    """key -> entry the write upserts into the coverage collection; raises what arangod raises
    for the query (before any of its writes, as its rollback leaves nothing)."""
    try:
        from .arango_standin import KEY_RE
    except ImportError:  # imported as a top-level module
        from arango_standin import KEY_RE  # type: ignore[no-redef]
    new_v = _facts_v(new)
    new_v = new_v if _truthy(new_v) else []
    if not isinstance(new_v, list):
        raise ApiError(400, 1563, "AQL: collection or array expected as operand to FOR loop; you provided a value"
                       f" of type '{_TYPES.get(type(new_v), 'object')}' (while executing)")
    old_v: Any = []
    if kind == "replace":
        old_v = _facts_v(current)
        old_v = old_v if _truthy(old_v) else []
    old = {o["id"]: o for o in old_v if isinstance(o, dict) and isinstance(o.get("id"), str)} \
        if isinstance(old_v, list) else {}
    found: dict[str, dict] = {}
    for e in new_v:
        if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] in old and aql_eq(old[e["id"]], e):
            continue
        if not isinstance(e, dict):
            raise ApiError(400, 1227, "invalid document type")
        key = e.get("id")
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise ApiError(400, 1221, "illegal document key")
        found[key] = e
    return found


def apply(coverage: Any, entries: dict[str, dict], new_rev: Any) -> None:
    for key, e in entries.items():
        body = {k: copy.deepcopy(v) for k, v in e.items() if k not in SYSTEM}
        coverage.docs[key] = {"_key": key, "_id": f"{coverage.name}/{key}", "_rev": new_rev(), **body}


def read(docs: Any, bind: dict, index_read: Any) -> list:
    """COVERAGE_QUERY: the entries of @series with @first <= f <= @last, through the index on
    (s, f), sorted by f, q, k, without their system attributes."""
    series, first, last = bind["series"], bind["first"], bind["last"]
    hits = index_read(docs, ("s", "f"), False, (series,), lambda d: aql_eq(d.get("s"), series)
                      and aql_cmp(d.get("f"), first) >= 0 and aql_cmp(d.get("f"), last) <= 0)

    def order(x: dict, y: dict) -> int:
        for name in ("f", "q", "k"):
            c = aql_cmp(x.get(name), y.get(name))
            if c:
                return c
        return aql_cmp(x["_key"], y["_key"])

    return [{k: copy.deepcopy(v) for k, v in d.items() if k not in SYSTEM}
            for d in sorted(hits, key=functools.cmp_to_key(order))]
