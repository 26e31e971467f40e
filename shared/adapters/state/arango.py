"""ArangoDB backend (python-arango): collection `queue_state`, CAS on `_rev`.

Only these calls reach the server, and the test stand-in implements exactly
them: document insert/get/replace (`If-Match`-free, `_rev` in the body with
`ignoreRevs=false`; the records' delete with `If-Match`), collection listing and creation, index
creation, the AQL queries below and the records' (arango_records.py), and stream transactions
(`batch`: begin, the `x-arango-trx-id` header on the document calls and queries, commit, abort).

A document keeps its facts (`shared/core/facts.py`) in its `facts` attribute, where the
indexes find them; the counters live in `<collection>_counters`, one document per counter,
the coverage entries (facts `v`) in `<collection>_coverage`, one document per entry, the
records (`base.Records`) in `<collection>_records`.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
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

from shared.adapters.state.arango_aql import (
    ARCHIVE_INDEXES,
    COVERAGE_INDEXES,
    CREATE_QUERY,
    INDEXES,
    LIST_QUERY,
    REPLACE_QUERY,
)
from shared.adapters.state.arango_reads import IndexReads, _text
from shared.adapters.state.arango_records import RECORDS_INDEXES, ArangoRecords
from shared.adapters.state.arango_upkeep import archive_ended, rebuild_counters
from shared.adapters.state.base import (
    ARCHIVED,
    RECOUNT,
    AlreadyExists,
    GroupConflict,
    InvalidKey,
    Records,
    RevisionConflict,
    SeenFacts,
    Texts,
    valid_key,
)
from shared.core.config import ArangoSettings
from shared.core.constants import QUEUE_COLLECTION
from shared.core.errors import BackendUnavailable
from shared.core.facts import queue_counter

ERR_UNIQUE = 1210
ERR_NOT_FOUND = 1202
# arangod: "AQL: unique constraint violated - in index primary of type primary over '_key';
# conflicting key: <key> (while executing)": the queue's own key, or a counter's
CONFLICTING_KEY = re.compile(r"conflicting key: ([^\s]+)")
CREATE_ATTEMPTS = 8
ERR_CONFLICT = 1200  # 409 "write-write conflict" in a transaction; 412 is a revision mismatch
LOCK_TIMEOUT_S = 5
ERR_TRX_GONE = 1655  # the stream transaction expired (idle too long) or the server restarted


class ArangoStore(IndexReads):
    backend = "arango"

    def __init__(self, settings: ArangoSettings, collection: str = QUEUE_COLLECTION, *, indexed: bool = True) -> None:
        self.collection = collection
        self.indexed = indexed  # the queues: facts indexes, counters, archive; the leases: none
        self.counters_collection = f"{collection}_counters"
        self.archive_collection = f"{collection}_archive"
        self.coverage_collection = f"{collection}_coverage"
        self.records_collection = f"{collection}_records"
        # One retry at most: Knative retries the whole delivery on our 503.
        self._client = ArangoClient(
            hosts=settings.url,
            request_timeout=settings.timeout_s,
            http_client=DefaultHTTPClient(retry_attempts=1, backoff_factor=0.1),
        )
        self._db = self._client.db(settings.db, username=settings.user, password=settings.password)
        self._col = self._db.collection(collection)
        self.records: Records = ArangoRecords(self, self.records_collection)  # created with the schema if indexed
        self._ready = False
        self._local = threading.local()  # .col and .db: this thread's transaction inside a batch
        self._batch_lock = threading.Lock()
        self._facts = SeenFacts()

    def _collection(self) -> Any:
        col = getattr(self._local, "col", None)  # not `or`: a collection's len() is a count request
        return self._col if col is None else col

    def _query(self, query: str, **bind: Any) -> list[Any]:
        db = getattr(self._local, "db", None)
        db = self._db if db is None else db
        return list(self._guard(db.aql.execute, query, bind_vars=bind))

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
        names = (self.collection, self.counters_collection, self.archive_collection,
                 self.coverage_collection, self.records_collection) if self.indexed else (self.collection,)
        for name in names:
            if not self._db.has_collection(name):
                try:
                    self._db.create_collection(name)
                except ArangoServerError as e:
                    if e.error_code != 1207:  # created meanwhile by another instance
                        raise
        if self.indexed:
            # Built in the background: an index added to a collection that holds data (an upgrade)
            # must not lock its writers out while it is built.
            for index in INDEXES:
                self._col.add_index({**index, "inBackground": True})
            for index in ARCHIVE_INDEXES:
                self._db.collection(self.archive_collection).add_index({**index, "inBackground": True})
            for index in COVERAGE_INDEXES:
                self._db.collection(self.coverage_collection).add_index({**index, "inBackground": True})
            for index in RECORDS_INDEXES:
                self._db.collection(self.records_collection).add_index({**index, "inBackground": True})
        self._ready = True

    def _conflict(self, key: str) -> Exception:
        """A write that lost to another writer. Inside a transaction (another writer changed the
        document after our snapshot, or holds it) retrying in it can't help: the whole group is
        merged again."""
        return RevisionConflict(key) if getattr(self._local, "db", None) is None else GroupConflict(key)

    def _write(self, query: str, doc: dict[str, Any], key: str, **bind: Any) -> str:
        """A write whose facts changed: the document, the counters, the coverage in one query.

        :raises AlreadyExists: (a create) the key is taken
        :raises RevisionConflict: (outside a batch) the revision changed, the document went (to
            the archive), or another writer held a counter: nothing was written, merge again
        :raises GroupConflict: the same, inside a batch
        """
        try:
            found = self._query(query, doc=doc, **bind,
                                **{"@col": self.collection, "@counters": self.counters_collection,
                                   "@coverage": self.coverage_collection})
            if not found:  # CREATE_QUERY: the key is in the archive (a queue that ended long ago)
                raise AlreadyExists(key)
        except ArangoServerError as e:
            taken = CONFLICTING_KEY.search(str(e.error_message or ""))
            if e.error_code == ERR_UNIQUE and taken is not None and taken.group(1) == key:
                raise AlreadyExists(key) from e
            # 1210 on a counter: two writers created the same one at once (UPSERT is not atomic
            # across writers); 1200/409/412: a revision or counter another writer changed; 1202:
            # the document is gone. Nothing of the query was stored.
            if e.error_code in (ERR_UNIQUE, ERR_CONFLICT, ERR_NOT_FOUND) or e.http_code in (409, 412):
                raise self._conflict(key) from e
            raise
        return str(found[0])

    def create(self, key: str, doc: str, *, facts: str | None = None) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        body = {**json.loads(doc), "_key": key}
        if facts is not None:
            body["facts"] = json.loads(facts)
            for attempt in range(CREATE_ATTEMPTS):
                try:
                    rev = self._write(CREATE_QUERY, body, key, archive=self.archive_collection)
                except RevisionConflict:  # a counter another writer held: the insert did not happen
                    time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                    continue
                self._facts.note(key, rev, body["facts"])
                return rev
            raise BackendUnavailable("arango", f"queue {key}: counters too contended, retry")
        try:
            meta = self._guard(self._collection().insert, body)
        except DocumentInsertError as e:
            if e.error_code == ERR_UNIQUE:
                raise AlreadyExists(key) from e
            raise
        return str(meta["_rev"])

    def get(self, key: str, *, archived: bool = False) -> tuple[str, str] | None:
        if not valid_key(key):  # python-arango would read "a/b" as a document id of collection "a"
            return None
        col = self._db.collection(self.archive_collection) if archived else self._collection()
        doc = self._guard(col.get, key)
        if doc is None:
            return None
        if not archived:
            self._facts.note(key, str(doc["_rev"]), doc.get("facts"))
        return _text(doc), str(doc["_rev"])

    def replace(self, key: str, doc: str, *, rev: str, facts: str | None = None) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        body = {**json.loads(doc), "_key": key, "_rev": rev}
        if facts is not None:
            body["facts"] = parsed = json.loads(facts)
            if not self._facts.same(key, rev, parsed):  # changed, or not known: counted anew
                known, seen = self._facts.at(key, rev)
                # Read without facts: stored before they existed (never counted), or rewritten
                # by an instance that does not know them (counted once already): the sweep
                # recounts (RECOUNT) to tell.
                extra = {RECOUNT: 1} if known and seen is None else {}
                new_rev = self._write(REPLACE_QUERY, body, key, extra=extra)
                self._facts.note(key, new_rev, parsed)
                return new_rev
        try:
            meta = self._guard(self._collection().replace, body, check_rev=True)
        except DocumentRevisionError as e:
            raise RevisionConflict(key) from e
        except DocumentReplaceError as e:
            if e.http_code in (404, 409):  # 404: gone meanwhile (to the archive)
                raise self._conflict(key) from e
            raise
        if facts is not None:
            self._facts.note(key, str(meta["_rev"]), body["facts"])
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
                names = [self.collection, self.counters_collection, self.archive_collection,
                         self.coverage_collection]
                trx = self._guard(self._db.begin_transaction, read=names, write=names, lock_timeout=LOCK_TIMEOUT_S)
            except ArangoServerError as e:  # e.g. a lock timeout (errorNum 18): try again later
                raise BackendUnavailable("arango", f"transaction not begun: {e.error_message}") from e
            self._local.col = trx.collection(self.collection)
            self._local.db = trx
            try:
                yield
            except BaseException:
                self._local.col = self._local.db = None
                with contextlib.suppress(ArangoServerError, ArangoClientError, RequestException, ConnectionError):
                    trx.abort_transaction()
                raise
            self._local.col = self._local.db = None
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
        after: tuple[str, str] | None = None, archived: bool = False,
    ) -> tuple[list[str], int]:
        docs = self._query(LIST_QUERY, status=status, symbol=symbol, offset=offset, limit=limit,
                           at=after[0] if after else None, key=after[1] if after else None,
                           **{"@col": self.archive_collection if archived else self.collection})
        name = (ARCHIVED if archived else "") + queue_counter(status, symbol)
        counter = self._guard(self._db.collection(self.counters_collection).get, name)
        return [_text(d) for d in docs], int(counter["n"]) if counter else 0

    def archive(self, before: str, limit: int) -> Texts:
        return archive_ended(self, before, limit)

    def recount(self) -> None:
        rebuild_counters(self)

    def collection_exists(self, name: str) -> bool:
        """The pipeline's collections live in the same database as `queue_state`."""
        return bool(self._guard(self._db.has_collection, name))

    def ping(self) -> None:
        self._guard(self._db.version)

    def close(self) -> None:
        self._client.close()
