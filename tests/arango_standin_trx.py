"""Stream transactions for the ArangoDB stand-in (see tests/arango_standin.py).

POST /_api/transaction/begin, GET/PUT/DELETE /_api/transaction/<id> (status, commit, abort),
GET /_api/transaction (running ones), and requests carrying `x-arango-trx-id`, as arangod's
RestTransactionHandler answers them. A transaction works on a snapshot of the database taken
at begin (RocksDB's snapshot isolation): its own writes are visible to it, nobody else sees
them before commit, abort drops them. Commit applies the transaction's changes; a document
that someone else changed after begin is a write-write conflict (409, errorNum 1200), reported
at the write for a single-document replace/update/remove (as arangod does), else at commit.
Writes through /_api/document and /_api/import to a collection not declared for writing fail
with errorNum 1652. A transaction idle for longer than `IDLE_TIMEOUT_S` (arangod's
--transaction.streaming-idle-timeout, 60 s by default; set on the module) is aborted and
forgotten, and then unknown: 404, errorNum 1655, like one that never existed.
Not implemented, because the store never uses them: exclusive locks and lock timeouts.
"""

from __future__ import annotations

import copy
import time
from typing import Any

try:
    from .arango_standin_aql import ApiError
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError  # type: ignore[no-redef]


IDLE_TIMEOUT_S = 60.0


class Transaction:
    def __init__(self, tid: str, db: Any, write: set[str]):
        self.id, self.db, self.write, self.status = tid, db, write, "running"
        self.used = time.monotonic()
        self.snapshot = {name: copy.deepcopy(col.docs) for name, col in db.cols.items()}
        self.view = copy.copy(db)
        self.view.cursors = {}
        self.view.cols = {}
        for name, col in db.cols.items():
            twin = copy.copy(col)
            twin.docs = copy.deepcopy(col.docs)
            self.view.cols[name] = twin

    def result(self) -> dict:
        return {"id": self.id, "status": self.status}

    def commit(self) -> None:
        changes: list[tuple[Any, str, dict | None]] = []
        for name, twin in self.view.cols.items():
            col, before = self.db.cols.get(name), self.snapshot.get(name, {})
            if col is None:
                continue
            for key in set(before) | set(twin.docs):
                after = twin.docs.get(key)
                if after == before.get(key):
                    continue
                if col.docs.get(key) != before.get(key):
                    self.status = "aborted"
                    raise ApiError(409, 1200, f"write-write conflict on {name}/{key}; "
                                   "transaction aborted")
                changes.append((col, key, after))
        for col, key, after in changes:
            if after is None:
                col.docs.pop(key, None)
            else:
                col.docs[key] = after
        self.status = "committed"


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _registry(db: Any) -> dict[str, Transaction]:
    return db.__dict__.setdefault("transactions", {})


def _find(db: Any, tid: str) -> Transaction:
    registry = _registry(db)
    trx = registry.get(tid)
    if trx is not None and trx.status == "running" and time.monotonic() - trx.used > IDLE_TIMEOUT_S:
        trx.status = "aborted"  # garbage-collected by the server: from now on unknown
        del registry[tid]
        trx = None
    if trx is None:
        raise ApiError(404, 1655, f"transaction '{tid}' not found")
    trx.used = time.monotonic()
    return trx


def transactions(standin: Any, db: Any, method: str, rest: list, body: Any):
    """Everything under /_api/transaction."""
    if method == "POST" and rest == ["begin"]:
        spec = body.get("collections") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise ApiError(400, 10, "missing 'collections' attribute")
        declared = {k: _names(spec.get(k)) for k in ("read", "write", "exclusive")}
        for name in (n for names in declared.values() for n in names):
            standin._collection(db, name, f"collection or view not found: {name}")
        trx = Transaction(str(standin._next()), db, {*declared["write"], *declared["exclusive"]})
        _registry(db)[trx.id] = trx
        return 201, {"error": False, "code": 201, "result": trx.result()}, {}
    if method == "GET" and not rest:
        running = [{"id": t.id, "state": "running"} for t in _registry(db).values()
                   if t.status == "running"]
        return 200, {"error": False, "code": 200, "transactions": running}, {}
    if len(rest) != 1 or method not in ("GET", "PUT", "DELETE"):
        raise ApiError(405, 405, "method not supported")
    trx = _find(db, rest[0])
    if method == "PUT" and trx.status == "running":
        trx.commit()
    elif method == "DELETE" and trx.status == "running":
        trx.status = "aborted"
    elif method == "PUT" and trx.status == "aborted":
        raise ApiError(409, 1653, "transaction aborted, cannot commit")
    elif method == "DELETE" and trx.status == "committed":
        raise ApiError(409, 1653, "transaction committed, cannot abort")
    return 200, {"error": False, "code": 200, "result": trx.result()}, {}


def view_for(db: Any, tid: str, method: str, head: list, rest: list, query: dict) -> Any:
    """The database as the running transaction `tid` sees it."""
    trx = _find(db, tid.strip())
    if trx.status != "running":
        raise ApiError(404, 1655, f"transaction '{trx.id}' is {trx.status}")
    target = rest[0] if head == ["_api", "document"] and rest else (
        query.get("collection") if head == ["_api", "import"] else None)
    if method in ("POST", "PUT", "PATCH", "DELETE") and target and target not in trx.write \
            and not (method == "PUT" and query.get("onlyget")):
        raise ApiError(400, 1652, f"Transaction: collection '{target}' not declared for write")
    if method in ("PUT", "PATCH", "DELETE") and head == ["_api", "document"] and len(rest) == 2:
        # Changing a document someone committed a change to after this transaction began is a
        # write-write conflict at once (RocksDB's snapshot isolation), not only at commit.
        name, key = rest
        col = db.cols.get(name)
        if col is not None and col.docs.get(key) != trx.snapshot.get(name, {}).get(key):
            trx.status = "aborted"
            raise ApiError(409, 1200, f"write-write conflict on {name}/{key}")
    return trx.view
