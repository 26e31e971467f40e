"""Stream transactions for the ArangoDB stand-in (see tests/arango_standin.py).

POST /_api/transaction/begin, GET/PUT/DELETE /_api/transaction/<id> (status, commit, abort),
GET /_api/transaction (running ones), and requests carrying `x-arango-trx-id`, as arangod's
RestTransactionHandler answers them. A transaction sees the database as it was at begin
(RocksDB's snapshot isolation): its own writes are visible to it, nobody else sees them before
commit, abort drops them. Commit applies the transaction's changes; a document that someone
else changed after begin is a write-write conflict (409, errorNum 1200), reported at the write
for a single-document replace/update/remove (as arangod does), else at commit.
Writes through /_api/document and /_api/import to a collection not declared for writing fail
with errorNum 1652. A transaction idle for longer than `IDLE_TIMEOUT_S` (arangod's
--transaction.streaming-idle-timeout, 60 s by default; set on the module) is aborted and
forgotten, and then unknown: 404, errorNum 1655, like one that never existed.
Not implemented, because the store never uses them: exclusive locks and lock timeouts.

Begin copies nothing (O(number of collections), not of documents): each collection of the
transaction's view is an `Overlay` over the shared documents, holding
* `writes`: the transaction's own writes (key -> document, None once removed), and
* `before`: the pre-images: when anyone else writes a key while the transaction runs, the
  collection's DocStore (tests/arango_standin_docs.py) records the document as it was, the
  first time only, in every running transaction (`DocStore.watchers`).
A read looks in `writes`, then in `before`, then at the shared document, so documents nobody
changed are shared, and a changed one is seen as it was at begin. The snapshot check compares
a key's pre-image with its current document: different means someone else changed it after
begin. A transaction stops collecting pre-images when it commits, aborts or expires (an idle
one is swept at the next begin).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

try:
    from .arango_standin_aql import ApiError
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError  # type: ignore[no-redef]


IDLE_TIMEOUT_S = 60.0
KEPT = 1024  # finished transactions still known (status, commit/abort answers), newest first


class Overlay(MutableMapping):
    """A collection's documents as one transaction sees them."""

    def __init__(self, base: Any, before: dict, writes: dict):
        self.base, self.before, self.writes = base, before, writes

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self.writes:
            doc = self.writes[key]
        elif key in self.before:
            doc = self.before[key]
        else:
            doc = self.base.get(key)
        return default if doc is None else doc

    def __getitem__(self, key: Any) -> dict:
        doc = self.get(key)
        if doc is None:
            raise KeyError(key)
        return doc

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def __setitem__(self, key: str, doc: dict) -> None:
        self.writes[key] = doc

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.writes[key] = None

    def __iter__(self) -> Iterator[str]:
        changed = {**dict.fromkeys(self.before), **dict.fromkeys(self.writes)}
        for key in self.base:
            if key not in changed or key in self:
                yield key
        for key in changed:
            if key not in self.base and key in self:
                yield key

    def __len__(self) -> int:
        changed = set(self.before) | set(self.writes)
        return len(self.base) + sum((k in self) - (k in self.base) for k in changed)

    def clear(self) -> None:
        for key in list(self):
            self.writes[key] = None

    def changes(self) -> dict[str, dict | None]:
        """The keys whose document differs from the shared one: key -> the one seen here."""
        return {k: self.get(k) for k in {*self.before, *self.writes}
                if self.get(k) is not self.base.get(k)}

    def sync(self, indexes: list[dict]) -> None:
        self.base.sync(indexes)


class Transaction:
    def __init__(self, tid: str, db: Any, write: set[str]):
        self.id, self.db, self.write, self.status = tid, db, write, "running"
        self.used = time.monotonic()
        self.before: dict[str, dict] = {}  # collection -> key -> document as at begin
        self.writes: dict[str, dict] = {}  # collection -> key -> own write (None: removed)
        self.bases: dict[str, Any] = {}  # collection -> its shared documents
        self.view = copy.copy(db)
        self.view.cursors = {}
        self.view.cols = {}
        for name, col in db.cols.items():
            self.before[name], self.writes[name], self.bases[name] = {}, {}, col.docs
            col.docs.watchers[tid] = self.before[name]
            twin = copy.copy(col)
            twin.docs = Overlay(col.docs, self.before[name], self.writes[name])
            twin.writable = name in write  # what a query may write (tests/arango_standin_facts.py)
            self.view.cols[name] = twin

    def result(self) -> dict:
        return {"id": self.id, "status": self.status}

    def end(self, status: str) -> None:
        self.status = status
        _running(self.db).pop(self.id, None)
        for docs in self.bases.values():
            docs.watchers.pop(self.id, None)

    def changed_by_others(self, name: str, key: str) -> bool:
        col, before = self.db.cols.get(name), self.before.get(name, {})
        return col is not None and key in before and before[key] != col.docs.get(key)

    def commit(self) -> None:
        changes: list[tuple[Any, str, dict | None]] = []
        for name, writes in self.writes.items():
            col = self.db.cols.get(name)
            if col is None:
                continue
            for key, after in writes.items():
                before = self.before[name].get(key, col.docs.get(key))
                if after == before:
                    continue
                if self.changed_by_others(name, key):
                    self.end("aborted")
                    raise ApiError(409, 1200, f"write-write conflict on {name}/{key}; "
                                   "transaction aborted")
                changes.append((col, key, after))
        self.end("committed")
        for col, key, after in changes:
            if after is None:
                col.docs.pop(key, None)
            else:
                col.docs[key] = after


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _registry(db: Any) -> dict[str, Transaction]:
    return db.__dict__.setdefault("transactions", {})


def _running(db: Any) -> dict[str, Transaction]:
    return db.__dict__.setdefault("running_transactions", {})


def _expired(trx: Transaction) -> bool:
    return trx.status == "running" and time.monotonic() - trx.used > IDLE_TIMEOUT_S


def _find(db: Any, tid: str) -> Transaction:
    registry = _registry(db)
    trx = registry.get(tid)
    if trx is not None and _expired(trx):
        trx.end("aborted")  # garbage-collected by the server: from now on unknown
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
        registry = _registry(db)
        for old in [t for t in _running(db).values() if _expired(t)]:
            old.end("aborted")  # the server's garbage collection of idle transactions
            del registry[old.id]
        if len(registry) > 2 * KEPT:  # long finished ones are forgotten, as arangod forgets them
            for tid in [t for t in registry if t not in _running(db)][:len(registry) - KEPT]:
                del registry[tid]
        trx = Transaction(str(standin._next()), db, {*declared["write"], *declared["exclusive"]})
        _registry(db)[trx.id] = _running(db)[trx.id] = trx
        return 201, {"error": False, "code": 201, "result": trx.result()}, {}
    if method == "GET" and not rest:
        running = [{"id": t.id, "state": "running"} for t in _running(db).values()]
        return 200, {"error": False, "code": 200, "transactions": running}, {}
    if len(rest) != 1 or method not in ("GET", "PUT", "DELETE"):
        raise ApiError(405, 405, "method not supported")
    trx = _find(db, rest[0])
    if method == "PUT" and trx.status == "running":
        trx.commit()
    elif method == "DELETE" and trx.status == "running":
        trx.end("aborted")
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
        if trx.changed_by_others(name, key):
            trx.end("aborted")
            raise ApiError(409, 1200, f"write-write conflict on {name}/{key}")
    return trx.view
