"""Multi-document half of the ArangoDB stand-in (see tests/arango_standin.py).

Arrays sent to /_api/document/<collection> (insert, replace, update, remove, and the
`onlyget` lookup python-arango's get_many uses) and POST /_api/import, as arangod's
RestDocumentHandler / RestImportHandler answer them: each element goes through the
single-document path, a failing element becomes an error object in the result array (and is
counted in X-Arango-Error-Codes) instead of failing the request.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

try:
    from .arango_standin_aql import ApiError
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError  # type: ignore[no-redef]


def _truthy(v: str | None) -> bool:
    return v is not None and v.strip().lower() in ("true", "yes", "on", "y", "1")


def _error(e: ApiError) -> dict:
    return {"error": True, "errorNum": e.num, "errorMessage": e.message}


def _element_key(elem: Any) -> tuple[str, str | None]:
    """(key, _rev) of an array element: a key/handle string or an object with _key."""
    if isinstance(elem, str):
        return elem.rpartition("/")[2], None
    if isinstance(elem, dict) and isinstance(elem.get("_key"), str):
        rev = elem.get("_rev")
        return elem["_key"], rev if isinstance(rev, str) else None
    raise ApiError(400, 1205, "illegal document identifier")


def many(standin: Any, db: Any, method: str, rest: list, query: dict, body: Any):
    """An array of documents for /_api/document/<collection>."""
    if len(rest) != 1:
        raise ApiError(400, 601, "superfluous suffix, expecting /_api/document/<collection>")
    if not isinstance(body, list):
        raise ApiError(400, 1227, "invalid document type")
    cname = rest[0]
    standin._collection(db, cname, f"collection or view not found: {cname}")
    only_get = method == "PUT" and _truthy(query.get("onlyget"))
    ignore_revs = _truthy(query.get("ignoreRevs", "true"))
    results: list[Any] = []
    errors: Counter[int] = Counter()
    for elem in body:
        try:
            if method == "POST":
                _, out, _ = standin._documents(db, "POST", [cname], query, {}, elem)
            else:
                if method != "DELETE" and not only_get and not isinstance(elem, dict):
                    raise ApiError(400, 1227, "invalid document type")
                key, rev = _element_key(elem)
                headers = {"If-Match": rev} if rev and (only_get or method == "DELETE") \
                    and not ignore_revs else {}
                sub_query = dict(query, ignoreRevs="true" if ignore_revs else "false")
                _, out, _ = standin._documents(db, "GET" if only_get else method, [cname, key],
                                               sub_query, headers,
                                               None if method == "DELETE" else elem)
            results.append(out)
        except ApiError as e:
            errors[e.num] += 1
            results.append(_error(e))
    col = db.cols[cname]
    code = 200 if only_get else (201 if _truthy(query.get("waitForSync")) or col.wait_for_sync
                                 else 202)
    if method == "DELETE" and code == 201:
        code = 200
    headers = {"X-Arango-Error-Codes": json.dumps(dict(errors), separators=(",", ":"))} \
        if errors else {}
    if _truthy(query.get("silent")):
        results = [r for r in results if isinstance(r, dict) and r.get("error")]
    return code, results, headers


def import_documents(standin: Any, db: Any, query: dict, raw: bytes):
    """POST /_api/import (type=array/list/documents/auto)."""
    cname = query.get("collection")
    if not cname:
        raise ApiError(400, 1204, "'collection' is missing")
    standin._collection(db, cname, f"collection or view not found: {cname}")
    text = raw.decode() if raw else ""
    try:
        if query.get("type") in ("array", "list") or text.lstrip().startswith("["):
            docs = json.loads(text) if text.strip() else []
        else:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as e:
        raise ApiError(400, 600, f"VPackError error: {e}") from None
    if not isinstance(docs, list):
        raise ApiError(400, 400, "expecting a JSON array in the request")
    col = db.cols[cname]
    if _truthy(query.get("overwrite")):
        col.docs.clear()
    on_dup = query.get("onDuplicate") or "error"
    mode = {"update": "update", "replace": "replace", "ignore": "ignore"}.get(on_dup)
    counts = {"created": 0, "errors": 0, "empty": 0, "updated": 0, "ignored": 0}
    details: list[str] = []
    sub_query = {"overwriteMode": mode} if mode else {}
    for number, doc in enumerate(docs, 1):
        if isinstance(doc, dict) and not doc:
            counts["empty"] += 1
            continue
        existed = isinstance(doc, dict) and doc.get("_key") in col.docs
        try:
            standin._documents(db, "POST", [cname], sub_query, {}, doc)
        except ApiError as e:
            counts["errors"] += 1
            details.append(f"at position {number}: creating document failed with error "
                           f"'{e.message}', offending document: {json.dumps(doc)}")
            if _truthy(query.get("complete")):
                raise ApiError(409 if e.num == 1210 else 400, e.num, e.message) from None
            continue
        counts["ignored" if existed and mode == "ignore" else
               "updated" if existed else "created"] += 1
    out: dict[str, Any] = {"error": False, **counts}
    if _truthy(query.get("details")):
        out["details"] = details
    return 201, out, {}


def index_by_id(standin: Any, db: Any, method: str, rest: list):
    """GET / DELETE /_api/index/<collection>/<index-id>."""
    if len(rest) != 2:
        raise ApiError(400, 400, "expecting /_api/index/<collection>/<index-id>")
    col = standin._collection(db, rest[0], "collection or view not found")
    wanted = {f"{col.name}/{rest[1]}", rest[1]}
    idx = next((i for i in col.indexes if i["id"] in wanted or i["name"] == rest[1]), None)
    if idx is None:
        raise ApiError(404, 1212, "index not found")
    if method == "GET":
        return 200, {**json.loads(json.dumps(idx)), "error": False, "code": 200}, {}
    if method == "DELETE":
        if idx["type"] == "primary":
            raise ApiError(403, 1213, "cannot drop this index")
        col.indexes.remove(idx)
        col.docs.sync(col.indexes)
        return 200, {"id": idx["id"], "error": False, "code": 200}, {}
    raise ApiError(405, 405, "method not supported")
