"""The records (`base.Records`) of the embedded backend: one table beside the queues',
`<table>_records`, its `due` column indexed where set."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from typing import Any

from shared.adapters.state.base import AlreadyExists, InvalidKey, Record, RevisionConflict, valid_key
from shared.core.errors import BackendUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, rev TEXT NOT NULL, doc TEXT NOT NULL, due TEXT);
CREATE INDEX IF NOT EXISTS {table}_due ON {table} (due, key) WHERE due IS NOT NULL;
"""


def _revision() -> str:
    """Unique per write, as ArangoDB's `_rev`: a record deleted and created again does not take
    a revision an old reader still holds (which a counter from 1 would give it back)."""
    return uuid.uuid4().hex[:16]


def _upper(prefix: str) -> str:
    """The least key above every key starting with `prefix` (keys are ASCII: `base.valid_key`)."""
    return prefix + "\U0010ffff"


class SqliteRecords:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock, table: str) -> None:
        self._db = db
        self._lock = lock
        self.table = table
        db.executescript(SCHEMA.format(table=table))

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                cur = self._db.execute(sql, args)
                return [cur.rowcount, *cur.fetchall()]
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as e:
            raise BackendUnavailable("state", f"sqlite: {e}") from e

    def put(self, key: str, doc: str, *, rev: str | None, due: str | None = None) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        new = _revision()
        if rev is None:
            try:
                self._run(f"INSERT INTO {self.table} (key, rev, doc, due) VALUES (?, ?, ?, ?)", (key, new, doc, due))
            except sqlite3.IntegrityError as e:
                raise AlreadyExists(key) from e
            return new
        [changed] = self._run(f"UPDATE {self.table} SET rev = ?, doc = ?, due = ? WHERE key = ? AND rev = ?",
                              (new, doc, due, key, rev))
        if changed != 1:
            raise RevisionConflict(key)
        return new

    def get(self, key: str) -> tuple[str, str] | None:
        if not valid_key(key):
            return None
        rows = self._run(f"SELECT doc, rev FROM {self.table} WHERE key = ?", (key,))[1:]
        return (rows[0][0], str(rows[0][1])) if rows else None

    def delete(self, key: str, *, rev: str | None = None) -> bool:
        if not valid_key(key):
            return False
        if rev is None:
            return self._run(f"DELETE FROM {self.table} WHERE key = ?", (key,))[0] == 1
        if self._run(f"DELETE FROM {self.table} WHERE key = ? AND rev = ?", (key, rev))[0] == 1:
            return True
        if self.get(key) is not None:
            raise RevisionConflict(key)
        return False

    def scan(self, prefix: str, *, limit: int, after: str | None = None) -> list[Record]:
        rows = self._run(f"SELECT key, doc, rev FROM {self.table} WHERE key >= ? AND key > ? AND key < ?"
                         " ORDER BY key LIMIT ?", (prefix, after if after is not None else "", _upper(prefix),
                                                   limit))[1:]
        return [(k, d, str(r)) for k, d, r in rows]

    def due(self, prefix: str, before: str, limit: int) -> list[Record]:
        rows = self._run(f"SELECT key, doc, rev FROM {self.table} WHERE due IS NOT NULL AND due <= ?"
                         " AND key >= ? AND key < ? ORDER BY due, key LIMIT ?",
                         (before, prefix, _upper(prefix), limit))[1:]
        return [(k, d, str(r)) for k, d, r in rows]

    def count(self, prefix: str) -> int:
        [_, (n,)] = self._run(f"SELECT count(*) FROM {self.table} WHERE key >= ? AND key < ?",
                              (prefix, _upper(prefix)))
        return int(n)
