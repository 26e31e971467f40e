"""The queue state store: one contract, two backends (ArangoDB, embedded SQLite).

Documents are `QueueState` dumps keyed by queue id. Every write after the
first is a compare-and-set on the document revision; `mutate` retries a
read-modify-write until it wins, so concurrent function instances never lose
an update.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from shared.adapters.state.base import RECOUNT, AlreadyExists, Records, RevisionConflict, StateStore
from shared.core import facts
from shared.core.config import Settings
from shared.core.constants import QUEUE_COLLECTION
from shared.core.errors import BackendUnavailable, NotFound
from shared.core.models import QueueState

__all__ = ["AlreadyExists", "RevisionConflict", "StateStore", "forget", "load", "load_archived", "mutate", "open_store",
           "update_record",
           "reindex", "upkeep"]

MAX_ATTEMPTS = 50
log = logging.getLogger("streamforge.queue_manager")


def open_store(settings: Settings, collection: str = QUEUE_COLLECTION) -> StateStore:
    if settings.arango.enabled:
        from shared.adapters.state.arango import ArangoStore

        return ArangoStore(settings.arango, collection, indexed=collection == QUEUE_COLLECTION)
    from shared.adapters.state.sqlite import SqliteStore

    return SqliteStore.at_dir(settings.local_dir, collection)


def load(store: StateStore, queue_id: str) -> tuple[QueueState, str]:
    """:raises NotFound: no such queue."""
    found = store.get(queue_id)
    if found is None:
        raise NotFound(f"queue {queue_id!r} not found")
    doc, rev = found
    return QueueState.model_validate_json(doc), rev


def load_archived(store: StateStore, queue_id: str) -> QueueState | None:
    """The queue as the archive keeps it, or None."""
    found = store.get(queue_id, archived=True)
    return None if found is None else QueueState.model_validate_json(found[0])


# The last state this process wrote, per queue: a telemetry merge may start
# from it instead of re-reading; if the document changed since, the
# compare-and-set fails and the loop re-reads. A merge that finds nothing to
# change in the remembered state is re-checked against a fresh read, so a
# stale copy can cost a read but never a wrong answer.
_written: OrderedDict[tuple[int, str], tuple[QueueState, str]] = OrderedDict()
_written_lock = threading.Lock()
_WRITTEN_MAX = 1024


def _take(store: StateStore, queue_id: str) -> tuple[QueueState, str] | None:
    with _written_lock:
        return _written.pop((id(store), queue_id), None)


def _keep(store: StateStore, queue_id: str, state: QueueState, rev: str) -> None:
    with _written_lock:
        _written[(id(store), queue_id)] = (state, rev)
        while len(_written) > _WRITTEN_MAX:
            _written.popitem(last=False)


def forget(store: StateStore, queue_ids: Iterable[str]) -> None:
    """Drop remembered writes that did not last (a batch rolled back)."""
    with _written_lock:
        for queue_id in queue_ids:
            _written.pop((id(store), queue_id), None)


def mutate(
    store: StateStore, queue_id: str, change: Callable[[QueueState], bool], *, monotonic: bool = False
) -> tuple[QueueState, bool]:
    """Apply `change` (which edits the state and says whether it changed it) atomically.

    `monotonic` changes (telemetry merges) may start from this process's last
    write instead of a fresh read: the hot path of every delivery.

    :raises NotFound: no such queue.
    :raises BackendUnavailable: the store is down, or the document is too contended.
    """
    for attempt in range(MAX_ATTEMPTS):
        found = _take(store, queue_id) if monotonic and attempt == 0 else None
        state, rev = found or load(store, queue_id)
        if not change(state):
            if found:
                continue  # maybe only the remembered copy is behind: ask the store
            return state, False
        try:
            new_rev = store.replace(queue_id, state.model_dump_json(exclude_none=True), rev=rev,
                                    facts=facts.of(state))
        except RevisionConflict:
            if attempt >= 2:  # contended: let the other writers through, at random
                time.sleep(random.uniform(0, 0.002 * attempt))
            continue
        if monotonic:
            _keep(store, queue_id, state, new_rev)
        else:
            _take(store, queue_id)  # outdated now
        return state, True
    raise BackendUnavailable("state", f"queue {queue_id} too contended, retry")


def update_record(records: Records, key: str, change: Callable[[str], tuple[str, str | None]], *,
                  missing: Callable[[], Exception], what: str) -> str:
    """Read the record `key`, `change(doc)` into (the new doc, its due stamp), compare-and-set,
    until it wins; the doc written. The records' `mutate`.

    :raises: `missing()` when there is no such record
    :raises BackendUnavailable: the store is down, or `what` kept changing under the write
    """
    for _ in range(MAX_ATTEMPTS):
        found = records.get(key)
        if found is None:
            raise missing()
        doc, due = change(found[0])
        try:
            records.put(key, doc, rev=found[1], due=due)
            return doc
        except RevisionConflict:
            continue
    raise BackendUnavailable("state", f"{what} kept changing under the write")


# Given to a document that cannot be read (a model it no longer fits): counted nowhere, found by
# id and in listings as it is, and no longer offered to `reindex` again and again.
UNREADABLE = (f'{{"x":{facts.FORMAT},"c":{{"q":0}},"w":[],"r":null,"d":[],"e":null,"t":null,"l":[],"v":[],'
              '"unreadable":true}')


def reindex(store: StateStore, *, limit: int = 500) -> int:
    """Give facts to documents stored without them (by a version before them, or one that
    dropped them) or with facts of an older format, so they are counted and indexed from then
    on; how many. A document that no
    longer parses gets UNREADABLE (logged); a lost compare-and-set is left for the next call."""
    done = 0
    for key, doc, rev in store.unindexed(limit):
        try:
            found = facts.of(QueueState.model_validate_json(doc))
        except ValueError as e:  # pydantic's ValidationError is one (the queue's, or a request's)
            log.warning("queue %s cannot be read, so it is counted nowhere: %s", key, str(e)[:200])
            found = UNREADABLE
        try:
            store.replace(key, doc, rev=rev, facts=found)
        except RevisionConflict:  # written meanwhile, with its facts
            continue
        done += found is not UNREADABLE
    return done


def upkeep(store: StateStore, *, rounds: int = 20) -> dict[str, int]:
    """What the sweep does for the store's counters: index the documents without facts (or with
    facts of an older format), and rebuild the counters from the facts when a document may have
    been counted twice."""
    indexed = 0
    for _ in range(rounds):
        found = reindex(store)
        indexed += found
        if not found:
            break
    recounted = 0
    # ArangoDB asks for it (RECOUNT) when it indexed a document stored without facts, which an
    # instance of a version before them may have counted once already; facts of an older format
    # (and SQLite's triggers) keep the counters exact by themselves.
    if store.counters(RECOUNT):
        store.recount()
        recounted = 1
    return {"indexed": indexed, "recounted": recounted}
