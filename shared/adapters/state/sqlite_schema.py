"""The embedded backend's tables, indexes and triggers (shared/adapters/state/sqlite.py)."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    key TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    doc TEXT NOT NULL,
    status TEXT,
    symbol TEXT,
    started_at TEXT
);
CREATE INDEX IF NOT EXISTS {table}_started ON {table} (started_at, key);
"""
# The facts (shared/core/facts.py) and what is kept from them. Triggers keep the counters,
# the slot waiters and the written collections from the stored facts, old and new, in the
# statement that writes a document: no writer can skip them, none can count twice.
FACTS = """
DROP INDEX IF EXISTS {table}_status;
DROP INDEX IF EXISTS {table}_symbol;
CREATE INDEX IF NOT EXISTS {table}_status_started ON {table} (status, started_at, key);
CREATE INDEX IF NOT EXISTS {table}_symbol_started ON {table} (symbol, started_at, key);
CREATE INDEX IF NOT EXISTS {table}_waiting ON {table} (wait_rank, key) WHERE wait_rank IS NOT NULL;
DROP INDEX IF EXISTS {table}_active;
CREATE INDEX IF NOT EXISTS {table}_active_overlap ON {table}
    (symbol, status, key, json_extract(facts, '$.t'), json_extract(facts, '$.l'))
    WHERE status IN ({active}) AND facts IS NOT NULL;
DROP INDEX IF EXISTS {table}_unindexed;
CREATE INDEX IF NOT EXISTS {table}_unindexed_{format} ON {table} (key) WHERE {outdated};
CREATE TABLE IF NOT EXISTS {table}_counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {table}_waits (
    target TEXT, rank TEXT, key TEXT, PRIMARY KEY (target, rank, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {table}_datasets (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {table}_ended ON {table} (ended_at) WHERE ended_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {table}_archive (
    key TEXT PRIMARY KEY, rev INTEGER NOT NULL, doc TEXT NOT NULL, status TEXT, symbol TEXT, started_at TEXT,
    facts TEXT);
CREATE INDEX IF NOT EXISTS {table}_archive_started ON {table}_archive (started_at, key);
CREATE INDEX IF NOT EXISTS {table}_archive_status_started ON {table}_archive (status, started_at, key);
CREATE INDEX IF NOT EXISTS {table}_archive_symbol_started ON {table}_archive (symbol, started_at, key);
CREATE TRIGGER IF NOT EXISTS {table}_archived AFTER INSERT ON {table}_archive WHEN NEW.facts IS NOT NULL BEGIN
INSERT INTO {table}_counters (name, n) SELECT 'a:' || key, value FROM json_each(NEW.facts, '$.c')
    WHERE key = 'q' OR key LIKE 'q.%' OR key LIKE 's.%' ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;
CREATE TRIGGER IF NOT EXISTS {table}_unarchived AFTER DELETE ON {table}_archive WHEN OLD.facts IS NOT NULL BEGIN
INSERT INTO {table}_counters (name, n) SELECT 'a:' || key, -value FROM json_each(OLD.facts, '$.c')
    WHERE key = 'q' OR key LIKE 'q.%' OR key LIKE 's.%' ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;
CREATE TRIGGER IF NOT EXISTS {table}_facts_in AFTER INSERT ON {table} WHEN NEW.facts IS NOT NULL BEGIN
{add}
END;
CREATE TRIGGER IF NOT EXISTS {table}_facts_up AFTER UPDATE OF facts ON {table}
WHEN OLD.facts IS NOT NEW.facts BEGIN
{drop}
{add}
END;
CREATE TRIGGER IF NOT EXISTS {table}_facts_out AFTER DELETE ON {table} WHEN OLD.facts IS NOT NULL BEGIN
{drop}
END;
"""
ADD = """INSERT INTO {table}_counters (name, n) SELECT key, value FROM json_each(NEW.facts, '$.c') WHERE true
    ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
INSERT OR IGNORE INTO {table}_waits (target, rank, key)
    SELECT value, json_extract(NEW.facts, '$.r'), NEW.key FROM json_each(NEW.facts, '$.w');
INSERT OR IGNORE INTO {table}_datasets (name) SELECT value FROM json_each(NEW.facts, '$.d');"""
DROP = """INSERT INTO {table}_counters (name, n) SELECT key, -value FROM json_each(OLD.facts, '$.c') WHERE true
    ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
DELETE FROM {table}_waits WHERE target IN (SELECT value FROM json_each(OLD.facts, '$.w'))
    AND rank = json_extract(OLD.facts, '$.r') AND key = OLD.key;"""
FACT_COLUMNS = ("facts", "wait_rank", "ended_at")
# Documents without facts, or with facts of an older format (`facts.FORMAT`): what reindex takes.
OUTDATED = "coalesce(json_extract(facts, '$.x'), 0) < {format}"
# Coverage entries (shared/core/coverage.py) by series and first day, kept from the facts' `v`:
# rows are replaced as a job's state changes and outlive the queue's archiving (its history).
COVERAGE = """
CREATE TABLE IF NOT EXISTS {table}_coverage (
    series TEXT, first TEXT, queue TEXT, kind TEXT, entry TEXT NOT NULL,
    PRIMARY KEY (series, first, queue, kind)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS {table}_coverage_in AFTER INSERT ON {table}
WHEN json_type(NEW.facts, '$.v') = 'array' BEGIN
INSERT OR REPLACE INTO {table}_coverage (series, first, queue, kind, entry)
    SELECT value ->> '$.s', value ->> '$.f', NEW.key, value ->> '$.k', value FROM json_each(NEW.facts, '$.v');
END;
CREATE TRIGGER IF NOT EXISTS {table}_coverage_up AFTER UPDATE OF facts ON {table}
WHEN OLD.facts IS NOT NEW.facts AND json_type(NEW.facts, '$.v') = 'array' BEGIN
INSERT OR REPLACE INTO {table}_coverage (series, first, queue, kind, entry)
    SELECT value ->> '$.s', value ->> '$.f', NEW.key, value ->> '$.k', value FROM json_each(NEW.facts, '$.v')
    WHERE value NOT IN (SELECT value FROM json_each(OLD.facts, '$.v'));
END;
"""
