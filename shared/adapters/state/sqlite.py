"""Embedded backend: one SQLite file, safe across processes (WAL, CAS on a revision).

The filter columns are copied out of the JSON document by SQLite itself: symbol and start
time once at insert (they never change), status with the facts, when they change. (Indexed
generated columns cost four times as much per update.) Counters, slot waiters, written
collections and the archive's counters are kept by triggers from the stored facts.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from shared.adapters.state.base import (
    ACTIVE,
    ARCHIVED,
    AlreadyExists,
    InvalidKey,
    Pairs,
    Records,
    RevisionConflict,
    SeenFacts,
    Texts,
    Triples,
    valid_key,
)
from shared.adapters.state.sqlite_records import SqliteRecords
from shared.adapters.state.sqlite_schema import ADD, COVERAGE, DROP, FACT_COLUMNS, FACTS, OUTDATED, SCHEMA
from shared.core import facts
from shared.core.constants import QUEUE_COLLECTION
from shared.core.errors import BackendUnavailable
from shared.core.facts import queue_counter
from shared.core.models import QueueStatus

_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE)  # as SQL: the partial index and its query say it alike
_OUTDATED = OUTDATED.format(format=facts.FORMAT)  # the same, for the partial index of what reindex takes


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: str, table: str = QUEUE_COLLECTION) -> None:
        self.path = path
        self.table = table
        # Held for a statement, or for a whole batch: one connection, one transaction.
        self._lock = threading.RLock()
        self._facts = SeenFacts()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=10,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint (and fsync) every ~32 MB of WAL instead of every 4 MB: writes are
            # frequent and small, and each checkpoint costs an fsync.
            self._db.execute("PRAGMA wal_autocheckpoint=8000")
            self._db.execute("PRAGMA journal_size_limit=67108864")
            # 64 MB of page cache per connection (the default is 2 MB): with a long history the
            # indexes' inner pages stay in memory, so a write's index updates do not read the disk.
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(SCHEMA.format(table=table))
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column in FACT_COLUMNS:  # a file from before the facts: they are filled by reindex
                if column not in have:
                    try:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
                    except sqlite3.OperationalError as e:  # another process added it just now
                        if "duplicate column" not in str(e):
                            raise
            self._db.executescript(FACTS.format(table=table, add=ADD.format(table=table),
                                                drop=DROP.format(table=table), active=_ACTIVE,
                                                format=facts.FORMAT, outdated=_OUTDATED))
            self._db.executescript(COVERAGE.format(table=table))
            current = f"{table}_unindexed_{facts.FORMAT}"  # the partial index of an older format: gone
            for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?"
                                            " AND name != ?", (f"{table}_unindexed_%", current)).fetchall():
                self._db.execute(f'DROP INDEX IF EXISTS "{name}"')
            self.records: Records = SqliteRecords(self._db, self._lock, f"{table}_records")
        except sqlite3.Error as e:
            raise BackendUnavailable("state", f"sqlite {path}: {e}") from e

    @classmethod
    def at_dir(cls, directory: str, table: str = QUEUE_COLLECTION) -> SqliteStore:
        os.makedirs(directory, exist_ok=True)
        return cls(os.path.join(directory, "state.db"), table)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction: its writes share one commit (most of a small write's cost)."""
        with self._lock:
            if self._db.in_transaction:  # nested: the outer batch commits
                yield
                return
            self._run("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise BackendUnavailable("state", f"sqlite commit: {e}") from e

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as e:
            raise BackendUnavailable("state", f"sqlite: {e}") from e

    def create(self, key: str, doc: str, *, facts: str | None = None) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        try:
            # A queue id is used once, hot or archived: a key in the archive is taken.
            cur = self._run(
                f"INSERT INTO {self.table} (key, rev, doc, status, symbol, started_at, facts, wait_rank, ended_at)"
                " SELECT ?1, 1, ?2, json_extract(?2, '$.status'), json_extract(?2, '$.symbol'),"
                " json_extract(?2, '$.started_at'), ?3, json_extract(?3, '$.r'), json_extract(?3, '$.e')"
                f" WHERE NOT EXISTS (SELECT 1 FROM {self.table}_archive WHERE key = ?1)",
                (key, doc, facts),
            )
            if cur.rowcount != 1:
                raise AlreadyExists(key)
        except sqlite3.IntegrityError as e:
            raise AlreadyExists(key) from e
        if facts is not None:
            self._facts.note(key, "1", facts)
        return "1"

    def get(self, key: str, *, archived: bool = False) -> tuple[str, str] | None:
        if not valid_key(key):
            return None
        table = f"{self.table}_archive" if archived else self.table
        row = self._run(f"SELECT doc, rev, facts FROM {table} WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if not archived:
            self._facts.note(key, str(row[1]), row[2])
        return row[0], str(row[1])

    def replace(self, key: str, doc: str, *, rev: str, facts: str | None = None) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        new_rev = int(rev) + 1
        # Naming an indexed column in SET re-indexes it even when the value is the same: more
        # than half the cost of a telemetry write. Facts that did not change are not named.
        written = facts
        if facts is not None and self._facts.same(key, rev, facts):
            facts = None  # as stored: no index to touch
        indexed = "" if facts is None else (
            ", status = json_extract(?2, '$.status'), facts = ?5, wait_rank = json_extract(?5, '$.r'),"
            " ended_at = json_extract(?5, '$.e')")
        cur = self._run(
            f"UPDATE {self.table} SET rev = ?1, doc = ?2{indexed} WHERE key = ?3 AND rev = ?4",
            (new_rev, doc, key, int(rev)) + (() if facts is None else (facts,)),
        )
        if cur.rowcount != 1:
            raise RevisionConflict(key)
        if written is not None:
            self._facts.note(key, str(new_rev), written)
        return str(new_rev)

    def list(
        self, *, status: str | None, symbol: str | None, limit: int, offset: int,
        after: tuple[str, str] | None = None, archived: bool = False,
    ) -> tuple[list[str], int]:
        table = f"{self.table}_archive" if archived else self.table
        where: list[str] = []
        args: list[object] = []
        if status:
            where.append("status = ?")
            args.append(status)
        if symbol:
            where.append("symbol = ?")
            args.append(symbol)
        if after is not None:
            where.append("(started_at < ? OR (started_at = ? AND key > ?))")
            args.extend((after[0], after[0], after[1]))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._run(
            f"SELECT doc FROM {table}{clause} ORDER BY started_at DESC, key LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        name = queue_counter(status, symbol)
        row = self._run(f"SELECT n FROM {self.table}_counters WHERE name = ?",
                        (ARCHIVED + name if archived else name,)).fetchone()
        return [r[0] for r in rows], 0 if row is None else int(row[0])

    def archive(self, before: str, limit: int) -> Texts:
        with self.batch():
            keys = [k for (k,) in self._run(
                f"SELECT key FROM {self.table} WHERE ended_at IS NOT NULL AND ended_at < ? ORDER BY ended_at LIMIT ?",
                (before, limit)).fetchall()]
            if keys:
                marks = ", ".join("?" * len(keys))
                self._run(f"DELETE FROM {self.table}_archive WHERE key IN ({marks})", tuple(keys))
                self._run(f"INSERT OR REPLACE INTO {self.table}_archive (key, rev, doc, status, symbol, started_at,"
                          f" facts) SELECT key, rev, doc, status, symbol, started_at, facts FROM {self.table}"
                          f" WHERE key IN ({marks})", tuple(keys))
                self._run(f"DELETE FROM {self.table} WHERE key IN ({marks})", tuple(keys))
        return keys

    def recount(self) -> None:
        """Rebuild the hot counters from the stored facts, in one transaction (the archive's,
        "a:", are exact by construction: each queue's own move with it)."""
        with self.batch():
            self._run(f"DELETE FROM {self.table}_counters WHERE name NOT LIKE 'a:%'")
            self._run(f"INSERT INTO {self.table}_counters (name, n) SELECT c.key, SUM(c.value)"
                      f" FROM {self.table} q, json_each(q.facts, '$.c') c WHERE q.facts IS NOT NULL GROUP BY c.key")

    def counters(self, prefix: str) -> dict[str, int]:
        rows = self._run(f"SELECT name, n FROM {self.table}_counters WHERE name >= ? AND name < ? AND n != 0",
                         (prefix, prefix + "\U0010ffff")).fetchall()
        return dict(rows)

    def count_by_status(self) -> dict[str, int]:
        names = {queue_counter(status.value): status.value for status in QueueStatus}
        rows = self._run(f"SELECT name, n FROM {self.table}_counters WHERE name IN ({', '.join('?' * len(names))})"
                         " AND n != 0", tuple(names)).fetchall()
        return {names[name]: n for name, n in rows}

    def waiting(self, target: str | None, limit: int) -> Pairs:
        if target is None:
            sql = f"SELECT key, wait_rank FROM {self.table} WHERE wait_rank IS NOT NULL ORDER BY wait_rank LIMIT ?"
            args: tuple[object, ...] = (limit,)
        else:
            sql = f"SELECT key, rank FROM {self.table}_waits WHERE target = ? ORDER BY rank LIMIT ?"
            args = (target, limit)
        return [(k, r) for k, r in self._run(sql, args).fetchall()]

    def active_facts(self, symbol: str) -> Pairs:
        # The statuses written out, so the partial index (which holds the facts) answers alone:
        # no row of the table, and so none of its document's pages, is read.
        rows = self._run(
            "SELECT key, json_object('t', json_extract(facts, '$.t'), 'l', json(json_extract(facts, '$.l')))"
            f" FROM {self.table} INDEXED BY {self.table}_active_overlap"
            f" WHERE symbol = ? AND status IN ({_ACTIVE}) AND facts IS NOT NULL", (symbol,)).fetchall()
        return [(k, f) for k, f in rows]

    def coverage(self, series: str, first: str, last: str) -> Texts:
        rows = self._run(f"SELECT entry FROM {self.table}_coverage WHERE series = ? AND first BETWEEN ? AND ?"
                         " ORDER BY first, queue, kind", (series, first, last)).fetchall()
        return [e for (e,) in rows]

    def dataset_written(self, name: str) -> bool:
        row = self._run(f"SELECT 1 FROM {self.table}_datasets WHERE name = ?", (name,)).fetchone()
        return row is not None

    def unindexed(self, limit: int) -> Triples:
        rows = self._run(f"SELECT key, doc, rev FROM {self.table} WHERE {_OUTDATED} LIMIT ?", (limit,)).fetchall()
        return [(k, d, str(r)) for k, d, r in rows]

    def ping(self) -> None:
        self._run("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()
