"""ArangoDB backend (python-arango): collection `queue_state`, CAS on `_rev`.

Only these calls reach the server, and the test stand-in implements exactly
them: document insert/get/replace (`If-Match`-free, `_rev` in the body with
`ignoreRevs=false`), collection/index creation, the two AQL queries below, and
stream transactions (`batch`: begin, the `x-arango-trx-id` header on the
document calls, commit, abort).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from arango import ArangoClient
from arango.exceptions import (
    ArangoClientError,
    ArangoServerError,
    DocumentInsertError,
    DocumentReplaceError,
    DocumentRevisionError,
)
from arango.http import DefaultHTTPClient
from requests.exceptions import RequestException

from shared.adapters.state.base import AlreadyExists, GroupConflict, InvalidKey, RevisionConflict, valid_key
from shared.core.config import ArangoSettings
from shared.core.constants import QUEUE_COLLECTION
from shared.core.errors import BackendUnavailable

LIST_QUERY = (
    "FOR q IN @@col"
    " FILTER (@status == null OR q.status == @status) AND (@symbol == null OR q.symbol == @symbol)"
    " FILTER @at == null OR q.started_at < @at OR (q.started_at == @at AND q._key > @key)"
    " SORT q.started_at DESC, q._key ASC LIMIT @offset, @limit RETURN q"
)
TOTAL_QUERY = (
    "RETURN LENGTH(FOR q IN @@col"
    " FILTER (@status == null OR q.status == @status) AND (@symbol == null OR q.symbol == @symbol) RETURN 1)"
)
COUNT_QUERY = "FOR q IN @@col COLLECT s = q.status WITH COUNT INTO n RETURN {status: s, count: n}"
INDEXES = (["status"], ["symbol"], ["started_at"])
ERR_UNIQUE = 1210
ERR_CONFLICT = 1200  # 409 "write-write conflict" in a transaction; 412 is a revision mismatch
LOCK_TIMEOUT_S = 5
ERR_TRX_GONE = 1655  # the stream transaction expired (idle too long) or the server restarted
_META = ("_key", "_id", "_rev", "_oldRev")


def _text(doc: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in _META}, separators=(",", ":"))


class ArangoStore:
    backend = "arango"

    def __init__(self, settings: ArangoSettings, collection: str = QUEUE_COLLECTION) -> None:
        self.collection = collection
        # One retry at most: Knative retries the whole delivery on our 503.
        self._client = ArangoClient(
            hosts=settings.url,
            request_timeout=settings.timeout_s,
            http_client=DefaultHTTPClient(retry_attempts=1, backoff_factor=0.1),
        )
        self._db = self._client.db(settings.db, username=settings.user, password=settings.password)
        self._col = self._db.collection(collection)
        self._ready = False
        self._local = threading.local()  # .col: this thread's collection inside a batch
        self._batch_lock = threading.Lock()

    def _collection(self) -> Any:
        col = getattr(self._local, "col", None)  # not `or`: a collection's len() is a count request
        return self._col if col is None else col

    def _guard(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            if not self._ready:
                self._ensure_schema()
            return call(*args, **kwargs)
        except (RequestException, ArangoClientError, ConnectionError) as e:
            raise BackendUnavailable("arango", str(e)) from e
        except ArangoServerError as e:
            if e.http_code in (401, 403) or (e.http_code or 0) >= 500 or e.error_code == ERR_TRX_GONE:
                raise BackendUnavailable("arango", f"{e.http_code} {e.error_message}") from e
            raise

    def _ensure_schema(self) -> None:
        if not self._db.has_collection(self.collection):
            try:
                self._db.create_collection(self.collection)
            except ArangoServerError as e:
                if e.error_code != 1207:  # created meanwhile by another instance
                    raise
        for fields in INDEXES:
            self._col.add_index({"type": "persistent", "fields": fields})
        self._ready = True

    def create(self, key: str, doc: str) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        try:
            meta = self._guard(self._collection().insert, {**json.loads(doc), "_key": key})
        except DocumentInsertError as e:
            if e.error_code == ERR_UNIQUE:
                raise AlreadyExists(key) from e
            raise
        return str(meta["_rev"])

    def get(self, key: str) -> tuple[str, str] | None:
        if not valid_key(key):  # python-arango would read "a/b" as a document id of collection "a"
            return None
        doc = self._guard(self._collection().get, key)
        return None if doc is None else (_text(doc), str(doc["_rev"]))

    def replace(self, key: str, doc: str, *, rev: str, same_status: bool = False) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        body = {**json.loads(doc), "_key": key, "_rev": rev}
        try:
            meta = self._guard(self._collection().replace, body, check_rev=True)
        except DocumentRevisionError as e:
            raise RevisionConflict(key) from e
        except DocumentReplaceError as e:
            if e.http_code == 409:
                if getattr(self._local, "col", None) is None:
                    raise RevisionConflict(key) from e
                # Inside a transaction: another writer changed it after our snapshot (errorNum
                # 1200), or holds it. Retrying in the same transaction can't help; the whole
                # group is merged again.
                raise GroupConflict(key) from e
            raise
        return str(meta["_rev"])

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One stream transaction: the writes made inside commit together, or not at all."""
        if getattr(self._local, "col", None) is not None:  # nested: the outer batch commits
            yield
            return
        # One group at a time per process, as SQLite's write lock gives: groups of one instance
        # never conflict with each other; only another instance's writes can.
        with self._batch_lock:
            try:
                trx = self._guard(self._db.begin_transaction, read=[self.collection], write=[self.collection],
                                  lock_timeout=LOCK_TIMEOUT_S)
            except ArangoServerError as e:  # e.g. a lock timeout (errorNum 18): try again later
                raise BackendUnavailable("arango", f"transaction not begun: {e.error_message}") from e
            self._local.col = trx.collection(self.collection)
            try:
                yield
            except BaseException:
                self._local.col = None
                with contextlib.suppress(ArangoServerError, ArangoClientError, RequestException, ConnectionError):
                    trx.abort_transaction()
                raise
            self._local.col = None
            try:
                self._guard(trx.commit_transaction)
            except ArangoServerError as e:  # not committed: nothing of the group is stored
                with contextlib.suppress(ArangoServerError, ArangoClientError, RequestException, ConnectionError):
                    trx.abort_transaction()
                if e.http_code == 409 and e.error_code == ERR_CONFLICT:
                    raise GroupConflict(self.collection) from e
                raise BackendUnavailable("arango", f"transaction not committed: {e.error_message}") from e

    def list(
        self, *, status: str | None, symbol: str | None, limit: int, offset: int,
        after: tuple[str, str] | None = None,
    ) -> tuple[list[str], int]:
        cursor = self._guard(
            self._db.aql.execute,
            LIST_QUERY,
            bind_vars={"@col": self.collection, "status": status, "symbol": symbol,
                       "offset": offset, "limit": limit, "at": after[0] if after else None,
                       "key": after[1] if after else None},
            full_count=True,
        )
        docs = [_text(d) for d in cursor]
        if after is None:
            return docs, int(cursor.statistics().get("fullCount", len(docs)))
        # past a cursor, fullCount counts what is left: the total is the filter's, whole
        total = self._guard(self._db.aql.execute, TOTAL_QUERY,
                            bind_vars={"@col": self.collection, "status": status, "symbol": symbol})
        return docs, int(next(iter(total), 0))

    def count_by_status(self) -> dict[str, int]:
        cursor = self._guard(self._db.aql.execute, COUNT_QUERY, bind_vars={"@col": self.collection})
        return {row["status"]: row["count"] for row in cursor}

    def collection_exists(self, name: str) -> bool:
        """The pipeline's collections live in the same database as `queue_state`."""
        return bool(self._guard(self._db.has_collection, name))

    def ping(self) -> None:
        self._guard(self._db.version)

    def close(self) -> None:
        self._client.close()
