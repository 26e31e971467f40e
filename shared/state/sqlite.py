"""Embedded backend: one SQLite file, safe across processes (WAL, CAS on a revision).

The filter columns are copied out of the JSON document by SQLite itself:
symbol and start time once at insert (they never change), status at every
write. (Indexed generated columns cost four times as much per update.)
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from shared.errors import BackendUnavailable
from shared.state.base import AlreadyExists, RevisionConflict

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_state (
    key TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    doc TEXT NOT NULL,
    status TEXT NOT NULL,
    symbol TEXT NOT NULL,
    started_at TEXT
);
CREATE INDEX IF NOT EXISTS queue_state_status ON queue_state (status);
CREATE INDEX IF NOT EXISTS queue_state_symbol ON queue_state (symbol);
CREATE INDEX IF NOT EXISTS queue_state_started ON queue_state (started_at, key);
"""


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=10,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise BackendUnavailable("state", f"sqlite {path}: {e}") from e

    @classmethod
    def at_dir(cls, directory: str) -> SqliteStore:
        os.makedirs(directory, exist_ok=True)
        return cls(os.path.join(directory, "state.db"))

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as e:
            raise BackendUnavailable("state", f"sqlite: {e}") from e

    def create(self, key: str, doc: str) -> str:
        try:
            self._run(
                "INSERT INTO queue_state (key, rev, doc, status, symbol, started_at) VALUES (?1, 1, ?2,"
                " json_extract(?2, '$.status'), json_extract(?2, '$.symbol'),"
                " json_extract(?2, '$.started_at'))",
                (key, doc),
            )
        except sqlite3.IntegrityError as e:
            raise AlreadyExists(key) from e
        return "1"

    def get(self, key: str) -> tuple[str, str] | None:
        row = self._run("SELECT doc, rev FROM queue_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], str(row[1]))

    def replace(self, key: str, doc: str, *, rev: str) -> str:
        new_rev = int(rev) + 1
        cur = self._run(
            "UPDATE queue_state SET rev = ?1, doc = ?2, status = json_extract(?2, '$.status')"
            " WHERE key = ?3 AND rev = ?4",
            (new_rev, doc, key, int(rev)),
        )
        if cur.rowcount != 1:
            raise RevisionConflict(key)
        return str(new_rev)

    def list(
        self, *, status: str | None, symbol: str | None, limit: int, offset: int
    ) -> tuple[list[str], int]:
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if symbol:
            where.append("symbol = ?")
            args.append(symbol)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self._run(f"SELECT COUNT(*) FROM queue_state{clause}", tuple(args)).fetchone()[0]
        rows = self._run(
            f"SELECT doc FROM queue_state{clause} ORDER BY started_at DESC, key LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [r[0] for r in rows], total

    def count_by_status(self) -> dict[str, int]:
        rows = self._run("SELECT status, COUNT(*) FROM queue_state GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def ping(self) -> None:
        self._run("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()
