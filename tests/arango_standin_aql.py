"""AQL and cursor half of the ArangoDB stand-in (see tests/arango_standin.py).

Only the query strings of shared/adapters/state/arango_aql.py are recognised (imported, so
they cannot drift; the facts queries run in tests/arango_standin_facts.py), with ArangoDB's
bind-parameter checks and AQL value ordering; a stand-in made with `general_aql=True` runs
any other query through the AQL subset of tests/arango_standin_aqlx.py /
tests/arango_standin_aqlrun.py. The cursor protocol
follows arangod's RestCursorHandler / QueryResultCursor (3.11/3.12).
"""

from __future__ import annotations

import copy
import functools
import importlib
import itertools
import time
from typing import Any

from shared.adapters.state.arango_aql import LIST_QUERY


class ApiError(Exception):
    """An ArangoDB error response: HTTP status, errorNum, errorMessage (+ extra body fields)."""

    def __init__(self, code: int, num: int, message: str, headers: dict | None = None, **extra: Any):
        super().__init__(f"[HTTP {code}][ERR {num}] {message}")
        self.code, self.num, self.message = code, num, message
        self.headers, self.extra = headers or {}, extra

    def body(self) -> dict:
        return {"error": True, "code": self.code, "errorNum": self.num,
                "errorMessage": self.message, **self.extra}


def _norm(query: str) -> str:
    return " ".join(query.split())


# kind -> declared bind parameters (a collection parameter `@@col` is declared as "@col")
QUERIES = {_norm(LIST_QUERY): "list"}
DECLARED = {"list": ("@col", "status", "symbol", "offset", "limit", "at", "key")}



def _rank(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return 1
    if isinstance(v, (int, float)):
        return 2
    if isinstance(v, str):
        return 3
    return 4 if isinstance(v, list) else 5


def aql_cmp(a: Any, b: Any) -> int:
    """AQL ordering: null < bool < number < string < array < object.

    Strings compare by code point, where arangod uses the ICU collator of the server's
    language. The two orders differ for mixed case, accents and punctuation; the store never
    depends on that: it sorts by `started_at` (UTC timestamps of one fixed shape,
    `YYYY-MM-DDTHH:MM:SS.mmmZ`) and then `_key` (UUIDs: lowercase hex with `-` at fixed places),
    strings that differ only in digits or in a-f at the same positions, which ICU's root order
    also puts digits first, then letters alphabetically. Its filters compare `status` (an enum
    word) and `symbol` (validated `[A-Z0-9]+`) for equality only. `test_aql_sort_matches_icu_for_
    what_the_store_sorts` in tests/test_arango_standin.py pins that claim.
    """
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 0:
        return 0
    if ra < 4:
        return (a > b) - (a < b)
    pairs: Any = (itertools.zip_longest(a, b) if ra == 4  # the shorter array: null-padded
                  else ((a.get(k), b.get(k)) for k in sorted(set(a) | set(b))))
    for x, y in pairs:
        c = aql_cmp(x, y)
        if c:
            return c
    return 0


def aql_eq(a: Any, b: Any) -> bool:
    return aql_cmp(a, b) == 0


def _parse_error(query: str) -> ApiError:
    near = query.strip()[:40]
    return ApiError(400, 1501, "AQL: syntax error, unexpected query (stand-in supports only the "
                    f"project's queries) near '{near}' at position 1:1 (while parsing)")


def execute(cols: dict, query: str, bind: dict, full_count: bool, new_rev: Any = None) -> tuple[list, dict]:
    """Run one of the known queries; return (rows, extra.stats)."""
    started = time.perf_counter()
    kind = QUERIES.get(_norm(query))
    if kind is None:
        raise _parse_error(query)
    for name in DECLARED[kind]:
        if name not in bind:
            raise ApiError(400, 1551, "AQL: no value specified for declared bind parameter "
                           f"'{name}' (while parsing)")
    for name in bind:
        if name not in DECLARED[kind]:
            raise ApiError(400, 1552, f"AQL: bind parameter '{name}' was not declared in the "
                           "query (while parsing)")
    if kind in FACTS.DECLARED:
        rows = FACTS.execute(kind, cols, bind, new_rev)
        return rows, {"writesExecuted": 0, "writesIgnored": 0, "scannedFull": 0, "scannedIndex": len(rows),
                      "filtered": 0, "httpRequests": 0, "executionTime": time.perf_counter() - started,
                      "peakMemoryUsage": 0}
    cname = bind["@col"]
    if not isinstance(cname, str) or not cname:
        raise ApiError(400, 1553, "AQL: bind parameter '@col' has an invalid value or type "
                       "(while parsing)")
    col = cols.get(cname)
    if col is None:
        raise ApiError(404, 1203, f"AQL: collection or view not found: {cname} (while parsing)")
    indexed = importlib.import_module(f"{__package__}.arango_standin_list" if __package__ else "arango_standin_list")
    fast = indexed.answer(col.docs, kind, bind, full_count, started)  # from the indexes' sorted structures
    if fast is not None:
        return fast
    docs: list[dict] = list(col.docs.values())
    stats: dict[str, Any] = {"writesExecuted": 0, "writesIgnored": 0, "documentLookups": 0, "seeks": 0,
             "scannedFull": len(docs), "scannedIndex": 0, "cursorsCreated": 0,
             "cursorsRearmed": 0, "cacheHits": 0, "cacheMisses": 0, "filtered": 0,
             "httpRequests": 0}
    if kind == "list":
        limits: list[int] = []
        for v in (bind["offset"], bind["limit"]):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) < 0:
                raise ApiError(400, 1504, "AQL: LIMIT value is not a number or out of range "
                               "(while instantiating plan)")
            limits.append(int(v))
        status, symbol, at, key = bind["status"], bind["symbol"], bind["at"], bind["key"]
        matched = [d for d in docs
                   if (aql_eq(status, None) or aql_eq(d.get("status"), status))
                   and (aql_eq(symbol, None) or aql_eq(d.get("symbol"), symbol))
                   and (aql_eq(at, None) or aql_cmp(d.get("started_at"), at) < 0
                        or (aql_eq(d.get("started_at"), at) and aql_cmp(d.get("_key"), key) > 0))]
        matched.sort(key=functools.cmp_to_key(
            lambda x, y: -aql_cmp(x.get("started_at"), y.get("started_at"))
            or aql_cmp(x.get("_key"), y.get("_key"))))
        rows = matched[limits[0]:limits[0] + limits[1]]
        stats["filtered"] = len(docs) - len(matched)
        if full_count:
            stats["fullCount"] = len(matched)
    stats.update(executionTime=time.perf_counter() - started, peakMemoryUsage=0,
                 intermediateCommits=0)
    return copy.deepcopy(rows), stats


class Cursor:
    """A non-stream cursor over a complete result (arangod's QueryResultCursor)."""

    def __init__(self, cid: str, rows: list, batch_size: int, count: bool, extra: dict,
                 retriable: bool, ttl: float):
        self.id, self.rows, self.pos, self.batch_size = cid, rows, 0, batch_size
        self.count, self.extra, self.retriable, self.ttl = count, extra, retriable, ttl
        self.current, self.last_available = 0, 1
        self.last: dict | None = None
        self.expires = time.monotonic() + ttl

    def dump(self, code: int) -> tuple[dict, bool]:
        """Next batch as a response body, and whether the cursor is finished for good."""
        batch = self.rows[self.pos:self.pos + self.batch_size]
        self.pos += len(batch)
        more = self.pos < len(self.rows)
        out: dict[str, Any] = {"result": batch, "hasMore": more}
        if more:
            out["id"] = self.id
        if self.count:
            out["count"] = len(self.rows)
        out["extra"] = copy.deepcopy(self.extra)
        out["cached"] = False
        self.current += 1
        if more:
            out["nextBatchId"] = str(self.current + 1)
            self.last_available = self.current + 1
        out.update(error=False, code=code)
        if self.retriable:
            self.last = copy.deepcopy(out)
        self.expires = time.monotonic() + self.ttl
        return out, not more and not self.retriable


def create_cursor(db: Any, body: Any, new_id: str) -> tuple[int, dict]:
    """POST /_api/cursor (RestCursorHandler::registerQueryOrCursor + handleQueryResult)."""
    if isinstance(body, dict) and not body:
        raise ApiError(400, 600, "invalid JSON object")
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, str) or not query:
        raise ApiError(400, 1502, "query is empty")
    bind = body.get("bindVars")
    if bind is not None and not isinstance(bind, dict):
        raise ApiError(400, 17, "expecting object for <bindVars>")
    options = body.get("options") if isinstance(body.get("options"), dict) else {}
    batch_size = body.get("batchSize")
    if isinstance(batch_size, (int, float)) and not isinstance(batch_size, bool):
        if batch_size <= 0:
            raise ApiError(400, 17, "expecting positive value for <batchSize>")
        batch_size = int(batch_size)
    else:
        batch_size = 1000
    ttl = body.get("ttl")
    ttl = float(ttl) if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > 0 else 30.0
    count = body.get("count") is True
    if (options.get("stream") is True or body.get("stream") is True) and count:
        raise ApiError(400, 10, "cannot use 'count' option for a streaming query")
    general_aql = getattr(db.standin, "general_aql", False)
    if not general_aql or _norm(query) in QUERIES:
        rows, stats = execute(db.cols, query, bind or {}, options.get("fullCount") is True,
                              db.standin.new_rev)
    else:  # the general subset (imported here: it builds on this module)
        try:
            from . import arango_standin_aqlrun as general
        except ImportError:
            import arango_standin_aqlrun as general  # type: ignore[no-redef]
        rows, stats = general.run(db, query, bind or {}, options.get("fullCount") is True)
    extra = {"warnings": [], "stats": stats}
    if len(rows) <= batch_size:  # answered directly, no server-side cursor
        out: dict[str, Any] = {"result": rows, "hasMore": False}
        if count:
            out["count"] = len(rows)
        out.update(cached=False, extra=extra, error=False, code=201)
        return 201, out
    cursor = Cursor(new_id, rows, batch_size, count, extra, options.get("allowRetry") is True, ttl)
    db.cursors[new_id] = cursor
    out, done = cursor.dump(201)
    if done:
        del db.cursors[new_id]
    return 201, out


def _lookup(db: Any, raw_id: str) -> Cursor:
    now = time.monotonic()
    for cid in [c for c, cur in db.cursors.items() if cur.expires < now]:
        del db.cursors[cid]
    cid = str(int(raw_id)) if raw_id.isdigit() else "0"
    cursor = db.cursors.get(cid)
    if cursor is None:
        raise ApiError(404, 1600, "cursor not found")
    return cursor


def cursor_request(db: Any, method: str, rest: list[str], body: Any, new_id: str) -> tuple[int, dict]:
    """Everything under /_api/cursor."""
    if method == "POST" and not rest:
        return create_cursor(db, body, new_id)
    if method in ("POST", "PUT") and len(rest) == 1:
        cursor = _lookup(db, rest[0])
        out, done = cursor.dump(200)
        if done:
            db.cursors.pop(cursor.id, None)
        return 200, out
    if method == "POST" and len(rest) == 2:  # retry endpoint, /_api/cursor/<id>/<batch-id>
        cursor = _lookup(db, rest[0])
        batch = int(rest[1]) if rest[1].isdigit() else 0
        if batch == cursor.current and not cursor.retriable:
            raise ApiError(400, 400, "expecting allowRetry option to be true")
        if batch == cursor.current + 1 and batch == cursor.last_available:
            out, done = cursor.dump(200)
            if done:
                db.cursors.pop(cursor.id, None)
            return 200, out
        if batch != cursor.current or cursor.last is None:
            raise ApiError(404, 1600, "batch id not found")
        return 200, copy.deepcopy(cursor.last)
    if method == "DELETE" and len(rest) == 1:
        cid = str(int(rest[0])) if rest[0].isdigit() else "0"
        if db.cursors.pop(cid, None) is None:
            raise ApiError(404, 1600, "cursor not found")
        return 202, {"id": rest[0], "error": False, "code": 202}
    if method in ("POST", "PUT", "DELETE"):
        raise ApiError(400, 400, f"expecting {method} /_api/cursor/<cursor-id>")
    raise ApiError(405, 405, "method not supported")


# The facts queries (last: that module builds on this one).

def _facts_module() -> Any:
    try:
        from . import arango_standin_facts as facts
    except ImportError:  # imported as a top-level module
        import arango_standin_facts as facts  # type: ignore[no-redef]
    return facts


FACTS = _facts_module()
QUERIES.update({_norm(query): kind for query, kind in FACTS.KINDS.items()})
DECLARED.update(FACTS.DECLARED)
