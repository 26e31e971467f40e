"""The contract every state backend fulfils (tests/shared/test_state_contract.py).

Documents cross it as JSON text: the models parse and print JSON far faster
than they build dicts, and the hot path (telemetry) does one of each per event.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from contextlib import AbstractContextManager
from typing import Protocol

from shared.core import facts

# ArangoDB's rule for a document key (`_key`): 1 to 254 bytes of letters, digits and these
# punctuation characters. Both backends apply it, so the embedded store refuses what production
# would: a key such as "pool/0" is a document *id* to ArangoDB's clients and servers.
_KEY = re.compile(r"[A-Za-z0-9_\-:.@()+,=;$!*'%]{1,254}")


def valid_key(key: object) -> bool:
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


# The active statuses as stored, the archive's counter prefix ("a:" + the hot counter's name),
# and the counter that asks the sweep to rebuild the others: the same for both backends.
ACTIVE = tuple(status.value for status in facts.ACTIVE)
ARCHIVED = "a:"
RECOUNT = "x.recount"

# Results, named: inside the classes below, `list` is the listing method.
Texts = list[str]
Pairs = list[tuple[str, str]]
Triples = list[tuple[str, str, str]]


class InvalidKey(ValueError):
    """Not a key ArangoDB accepts. Reading one finds nothing; writing one is a bug."""


class AlreadyExists(Exception):
    """A document with this key exists (ArangoDB errorNum 1210)."""


class GroupConflict(Exception):
    """A batch lost a write-write conflict (ArangoDB 409, errorNum 1200) and stored nothing;
    the whole group may be merged again."""


class RevisionConflict(Exception):
    """The document changed since it was read (ArangoDB 412, errorNum 1200)."""


class SeenFacts:
    """The facts stored with the revisions this instance last read or wrote, per key: a write
    whose facts equal those of the revision it replaces may skip the indexes. Anything else (a
    revision written elsewhere, an entry forgotten) takes the indexed path, which diffs against
    what is stored, so a miss costs time, never a wrong count."""

    MAX = 4096

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[str, object]] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, key: str, rev: str, facts: object) -> None:
        with self._lock:
            self._seen[key] = (rev, facts)
            self._seen.move_to_end(key)
            while len(self._seen) > self.MAX:
                self._seen.popitem(last=False)

    def at(self, key: str, rev: str) -> tuple[bool, object]:
        """(known, facts): whether this instance saw revision `rev` of `key`, with what facts."""
        with self._lock:
            seen = self._seen.get(key)
        return (True, seen[1]) if seen is not None and seen[0] == rev else (False, None)

    def same(self, key: str, rev: str, facts: object) -> bool:
        known, seen = self.at(key, rev)
        return known and seen is not None and seen == facts


# One record (shared.adapters.state.*_records): (key, document JSON, revision).
Record = tuple[str, str, str]


class Records(Protocol):
    """Small documents beside the queues (schedules, groups), keyed `<kind>:<name>`: a
    compare-and-set on a revision like the queues, a walk by key, and the ones due by a time
    (an indexed `due` stamp, None for a record that is never due)."""

    def put(self, key: str, doc: str, *, rev: str | None, due: str | None = None) -> str:
        """Create (`rev` None) or replace the record at revision `rev`; return the new revision.

        :raises AlreadyExists: `rev` None and the key is taken
        :raises RevisionConflict: the record is gone or changed since `rev`
        :raises InvalidKey:
        """

    def get(self, key: str) -> tuple[str, str] | None:
        """(document JSON, revision), or None."""

    def delete(self, key: str, *, rev: str | None = None) -> bool:
        """Remove the record (at revision `rev` if given); False if there was none.

        :raises RevisionConflict: it changed since `rev`
        """

    def scan(self, prefix: str, *, limit: int, after: str | None = None) -> list[Record]:
        """The records whose key starts with `prefix`, by key, from past `after` (a key)."""

    def due(self, prefix: str, before: str, limit: int) -> list[Record]:
        """The records of `prefix` whose `due` is at or before `before`, earliest first."""

    def count(self, prefix: str) -> int:
        """How many records have a key starting with `prefix`."""


class StateStore(Protocol):
    backend: str
    records: Records
    """Schedules and groups, beside the queues (`Records`)."""

    def create(self, key: str, doc: str, *, facts: str | None = None) -> str:
        """Insert the JSON document `doc` under `key`; return its revision. `facts`
        (`shared.core.facts.of`) are indexed with it, in the same write.

        :raises AlreadyExists:
        :raises InvalidKey: `key` breaks ArangoDB's key rule (`valid_key`)
        """

    def get(self, key: str, *, archived: bool = False) -> tuple[str, str] | None:
        """(document JSON, revision), or None (also for a key no document can have); from the
        archive if `archived`."""

    def replace(self, key: str, doc: str, *, rev: str, facts: str | None = None) -> str:
        """Replace the document if its revision is still `rev`; return the new one.

        `facts`: the document's facts, indexed in the same write. When they equal the facts
        stored at `rev` (`SeenFacts`: this instance read or wrote that revision), the write
        touches no index: most telemetry reports progress only.

        :raises RevisionConflict:
        """

    def batch(self) -> AbstractContextManager[None]:
        """Writes made inside commit together, or not at all (SQLite: one transaction;
        ArangoDB: one stream transaction). Every write is still a compare-and-set.

        :raises GroupConflict: another writer won; none of the group is stored
        :raises BackendUnavailable: the group could not commit; none of it is stored
        """

    def list(
        self, *, status: str | None, symbol: str | None, limit: int, offset: int,
        after: tuple[str, str] | None = None, archived: bool = False,
    ) -> tuple[list[str], int]:
        """Documents (of the archive, if `archived`) newest first (by `started_at`, then
        key), filtered; and the total, from the counters (no count per page). `after` (the
        `started_at` and key of the last one of a page) starts past it: a keyset, stable while
        queues are added, where an offset would shift."""

    def archive(self, before: str, limit: int) -> Texts:
        """Move up to `limit` queues that ended before `before` (an ISO stamp) out of the hot
        set into the archive, their counters with them; the keys moved, oldest first. SQLite
        moves them in one transaction; ArangoDB in transactions of 50, and a queue written
        meanwhile ends the run there (what moved before stays moved and is returned)."""

    def count_by_status(self) -> dict[str, int]:
        """Stored queues by status, from the counters."""

    def recount(self) -> None:
        """Rebuild every counter from the stored facts (reads every document: the sweep runs it
        when documents were indexed late, not per request)."""

    def counters(self, prefix: str) -> dict[str, int]:
        """The maintained counters whose name starts with `prefix`, zeros left out."""

    def waiting(self, target: str | None, limit: int) -> Pairs:
        """(key, rank) of the queues with a job waiting for a slot of `target` (any target:
        None), best first: the facts' `r`, `facts.rank` and the key, read from the index alone."""

    def active_facts(self, symbol: str) -> Pairs:
        """(key, facts) of the active queues of `symbol`: of the facts, the overlap check's
        (`t`, `l`) at least."""

    def coverage(self, series: str, first: str, last: str) -> Texts:
        """The coverage entries (JSON, `shared.core.coverage`) of `series` whose first day is
        in [first, last], by first day: of hot and archived queues alike."""

    def dataset_written(self, name: str) -> bool:
        """Whether a finished job of a stored queue wrote collection `name`."""

    def unindexed(self, limit: int) -> Triples:
        """(key, document, revision) of documents stored without facts (written before they
        existed), for `shared.adapters.state.reindex`."""

    def ping(self) -> None:
        """:raises BackendUnavailable:"""

    def close(self) -> None: ...

