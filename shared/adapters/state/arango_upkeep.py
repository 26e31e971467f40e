"""The ArangoDB backend's upkeep, run by the sweep: retention to the archive, and rebuilding
the counters from the stored facts (shared/adapters/state/arango.py)."""

from __future__ import annotations

import contextlib
from typing import Any

from arango.exceptions import ArangoClientError, ArangoServerError
from requests.exceptions import RequestException

from shared.adapters.state.arango_aql import (
    CLEAR_QUERY,
    ENDED_QUERY,
    PUT_QUERY,
    REMOVE_QUERY,
    SUM_QUERY,
)
from shared.adapters.state.base import GroupConflict
from shared.core.errors import BackendUnavailable

ArangoStore = Any  # shared.adapters.state.arango's, which imports this module

CHUNK = 50  # queues moved per transaction: it holds the counters it changes until it commits
LOCK_TIMEOUT_S = 5


def archive_ended(store: ArangoStore, before: str, limit: int) -> list[str]:
    """Move up to `limit` queues that ended before `before` to the archive, CHUNK per
    transaction (each all or nothing); their keys. A queue written meanwhile ends the run: the
    chunks before it stay moved and are returned, the next sweep goes on."""
    cols = {"@col": store.collection}
    moved: list[str] = []
    while len(moved) < limit:
        chunk: list[str] = []
        try:
            with store.batch():
                into = store._local.db.collection(store.archive_collection)
                for doc in store._query(ENDED_QUERY, before=before, limit=min(CHUNK, limit - len(moved)), **cols):
                    body = {k: v for k, v in doc.items() if k not in ("_id", "_rev")}
                    store._guard(into.insert, body, overwrite=True, silent=True)
                    store._query(REMOVE_QUERY, key=doc["_key"], rev=doc["_rev"],
                                 **cols, **{"@counters": store.counters_collection})
                    chunk.append(doc["_key"])
        except (ArangoServerError, GroupConflict) as e:  # written meanwhile: this chunk did not move
            if isinstance(e, GroupConflict) or e.http_code in (404, 409, 412):
                break
            raise
        moved += chunk
        if len(chunk) < CHUNK:
            break
    return moved


def rebuild_counters(store: ArangoStore) -> None:
    """Rebuild the hot counters from the stored facts in one transaction that holds the queues
    exclusively: writers wait for it while it reads the hot set (the archive's counters are
    exact by construction), so the sweep runs it only when a document was counted late
    (`RECOUNT`, or a reindex)."""
    store._guard(_recount, store)


def _recount(store: ArangoStore) -> None:
    names = [store.collection, store.counters_collection]
    try:
        trx: Any = store._db.begin_transaction(read=names, write=[store.counters_collection],
                                               exclusive=names, lock_timeout=LOCK_TIMEOUT_S)
    except ArangoServerError as e:  # e.g. a lock timeout (errorNum 18): the next sweep tries
        raise BackendUnavailable("arango", f"recount not begun: {e.error_message}") from e
    try:
        rows = [[n, c] for n, c in trx.aql.execute(SUM_QUERY, bind_vars={"@col": store.collection}) if c]
        trx.aql.execute(CLEAR_QUERY, bind_vars={"@counters": store.counters_collection})
        trx.aql.execute(PUT_QUERY, bind_vars={"@counters": store.counters_collection, "rows": rows})
        trx.commit_transaction()
    except BaseException:
        with contextlib.suppress(ArangoServerError, ArangoClientError, RequestException, ConnectionError):
            trx.abort_transaction()
        raise
