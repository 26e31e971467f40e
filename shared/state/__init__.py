"""The queue state store: one contract, two backends (ArangoDB, embedded SQLite).

Documents are `QueueState` dumps keyed by queue id. Every write after the
first is a compare-and-set on the document revision; `mutate` retries a
read-modify-write until it wins, so concurrent function instances never lose
an update.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.config import Settings
from shared.constants import QUEUE_COLLECTION
from shared.errors import BackendUnavailable, NotFound
from shared.models import QueueState
from shared.state.base import AlreadyExists, RevisionConflict, StateStore

__all__ = ["AlreadyExists", "RevisionConflict", "StateStore", "load", "mutate", "open_store"]

MAX_ATTEMPTS = 50


def open_store(settings: Settings, collection: str = QUEUE_COLLECTION) -> StateStore:
    if settings.arango.enabled:
        from shared.state.arango import ArangoStore

        return ArangoStore(settings.arango, collection)
    from shared.state.sqlite import SqliteStore

    return SqliteStore.at_dir(settings.local_dir, collection)


def load(store: StateStore, queue_id: str) -> tuple[QueueState, str]:
    """:raises NotFound: no such queue."""
    found = store.get(queue_id)
    if found is None:
        raise NotFound(f"queue {queue_id!r} not found")
    doc, rev = found
    return QueueState.model_validate_json(doc), rev


def mutate(
    store: StateStore, queue_id: str, change: Callable[[QueueState], bool]
) -> tuple[QueueState, bool]:
    """Apply `change` (which edits the state and says whether it changed it) atomically.

    :raises NotFound: no such queue.
    :raises BackendUnavailable: the store is down, or the document is too contended.
    """
    for _ in range(MAX_ATTEMPTS):
        state, rev = load(store, queue_id)
        if not change(state):
            return state, False
        try:
            store.replace(queue_id, state.model_dump_json(), rev=rev)
        except RevisionConflict:
            continue
        return state, True
    raise BackendUnavailable("state", f"queue {queue_id} too contended, retry")
