"""Embedded backend: one SQLite file, safe across processes (WAL, CAS on a revision).

The filter columns are copied out of the JSON document by SQLite itself:
symbol and start time once at insert (they never change), status at every
write. (Indexed generated columns cost four times as much per update.)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from shared.adapters.state.base import AlreadyExists, InvalidKey, RevisionConflict, valid_key
from shared.core.constants import QUEUE_COLLECTION
from shared.core.errors import BackendUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    key TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    doc TEXT NOT NULL,
    status TEXT,
    symbol TEXT,
    started_at TEXT
);
CREATE INDEX IF NOT EXISTS {table}_status ON {table} (status);
CREATE INDEX IF NOT EXISTS {table}_symbol ON {table} (symbol);
CREATE INDEX IF NOT EXISTS {table}_started ON {table} (started_at, key);
"""


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: str, table: str = QUEUE_COLLECTION) -> None:
        self.path = path
        self.table = table
        # Held for a statement, or for a whole batch: one connection, one transaction.
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=10,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint (and fsync) every ~32 MB of WAL instead of every 4 MB: writes are
            # frequent and small, and each checkpoint costs an fsync.
            self._db.execute("PRAGMA wal_autocheckpoint=8000")
            self._db.execute("PRAGMA journal_size_limit=67108864")
            self._db.executescript(SCHEMA.format(table=table))
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

    def create(self, key: str, doc: str) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        try:
            self._run(
                f"INSERT INTO {self.table} (key, rev, doc, status, symbol, started_at) VALUES (?1, 1, ?2,"
                " json_extract(?2, '$.status'), json_extract(?2, '$.symbol'),"
                " json_extract(?2, '$.started_at'))",
                (key, doc),
            )
        except sqlite3.IntegrityError as e:
            raise AlreadyExists(key) from e
        return "1"

    def get(self, key: str) -> tuple[str, str] | None:
        if not valid_key(key):
            return None
        row = self._run(f"SELECT doc, rev FROM {self.table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], str(row[1]))

    def replace(self, key: str, doc: str, *, rev: str, same_status: bool = False) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        new_rev = int(rev) + 1
        # Naming the indexed status column in SET re-indexes it even when the value
        # is the same: more than half the cost of a telemetry write.
        status = "" if same_status else ", status = json_extract(?2, '$.status')"
        cur = self._run(
            f"UPDATE {self.table} SET rev = ?1, doc = ?2{status} WHERE key = ?3 AND rev = ?4",
            (new_rev, doc, key, int(rev)),
        )
        if cur.rowcount != 1:
            raise RevisionConflict(key)
        return str(new_rev)

    def list(
        self, *, status: str | None, symbol: str | None, limit: int, offset: int,
        after: tuple[str, str] | None = None,
    ) -> tuple[list[str], int]:
        where: list[str] = []
        args: list[object] = []
        if status:
            where.append("status = ?")
            args.append(status)
        if symbol:
            where.append("symbol = ?")
            args.append(symbol)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self._run(f"SELECT COUNT(*) FROM {self.table}{clause}", tuple(args)).fetchone()[0]
        if after is not None:
            where.append("(started_at < ? OR (started_at = ? AND key > ?))")
            args.extend((after[0], after[0], after[1]))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._run(
            f"SELECT doc FROM {self.table}{clause} ORDER BY started_at DESC, key LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [r[0] for r in rows], total

    def count_by_status(self) -> dict[str, int]:
        rows = self._run(f"SELECT status, COUNT(*) FROM {self.table} GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def collection_exists(self, name: str) -> bool:
        """Embedded stand-in for ArangoDB's catalog: a finished job of some queue wrote it."""
        from shared.core.lineage import written_by  # lineage knows what each request writes

        rows = self._run(f"SELECT doc FROM {self.table} WHERE doc LIKE ?", (f'%"{name}"%',)).fetchall()
        return any(written_by(doc, name) for (doc,) in rows)

    def ping(self) -> None:
        self._run("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()
