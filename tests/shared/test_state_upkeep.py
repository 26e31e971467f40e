"""The state contract's upkeep, on every backend (the fixtures of test_state_contract.py):
documents stored without facts, a writer that drops them, the recount, the archive's keys."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.adapters.state import AlreadyExists, RevisionConflict, mutate, reindex, upkeep
from shared.adapters.state.sqlite import SqliteStore
from shared.core.models import QueueStatus
from tests.shared import test_state_contract as contract

standin, store = contract.standin, contract.store  # the contract's fixtures: every backend
_doc, _put, _replace = contract._doc, contract._put, contract._replace


def test_documents_stored_without_facts_are_counted_once_reindexed(store):
    """What an earlier version stored has no facts: `reindex` counts it, exactly once, also when
    a write reached it first."""
    before = store.count_by_status()
    legacy = [_doc(status="finished"), _doc(status="finished"), _doc(status="error")]
    for doc in legacy:
        store.create(doc["id"], json.dumps(doc))
    assert store.count_by_status() == before
    assert {k for k, _, _ in store.unindexed(1000)} >= {d["id"] for d in legacy}

    def note(state):
        state.unattributed_records += 1  # changes no fact
        return True

    mutate(store, legacy[0]["id"], note)
    while reindex(store):
        pass
    assert store.unindexed(1000) == []
    after = store.count_by_status()
    assert after.get("finished", 0) - before.get("finished", 0) == 2
    assert after.get("error", 0) - before.get("error", 0) == 1


def test_an_sqlite_file_from_before_the_facts_is_upgraded(tmp_path):
    import sqlite3

    path = str(tmp_path / "state.db")
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE queue_state (key TEXT PRIMARY KEY, rev INTEGER NOT NULL, doc TEXT NOT NULL,"
                     " status TEXT, symbol TEXT, started_at TEXT);"
                     " CREATE INDEX queue_state_status ON queue_state (status);")
    doc = _doc(status="loading")
    db.execute("INSERT INTO queue_state VALUES (?, 1, ?, 'loading', 'BTCUSDT', ?)",
               (doc["id"], json.dumps(doc), doc["started_at"]))
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.count_by_status() == {}
    assert reindex(store) == 1
    assert store.count_by_status() == {"loading": 1}
    assert store.list(status="loading", symbol="BTCUSDT", limit=5, offset=0)[1] == 1
    store.close()


def test_a_writer_that_drops_the_facts_costs_a_recount_not_the_counts(store):
    """An instance of a version before facts, still serving during a rollout, rewrites a
    counted document without them (ArangoDB) or without updating them (SQLite); the next writes
    and the sweep's upkeep leave the counters as a recount from the documents gives."""
    doc = _doc(status="pending")
    rev = _put(store, doc)
    rev = store.replace(doc["id"], json.dumps({**doc, "status": "loading"}), rev=rev)  # the old writer

    def finish(state):
        state.status = QueueStatus.FINISHED
        return True

    mutate(store, doc["id"], finish)
    upkeep(store)
    stored: dict[str, int] = {}
    after = None
    while True:  # every stored document, by keyset pages
        page, _ = store.list(status=None, symbol=None, limit=100, offset=0, after=after)
        for text in page:
            found = json.loads(text)
            stored[found["status"]] = stored.get(found["status"], 0) + 1
            after = (found["started_at"], found["id"])
        if len(page) < 100:
            break
    assert store.count_by_status() == stored


def test_recount_gives_the_counters_kept_by_the_writes(store):
    for status in ("pending", "loading", "loading", "finished"):
        _put(store, _doc(status=status))
    kept = {**store.counters("q"), **store.counters("s."), **store.counters("j.")}
    store.recount()
    assert {**store.counters("q"), **store.counters("s."), **store.counters("j.")} == kept


def test_replacing_an_archived_document_is_a_conflict(store):
    doc = {**_doc(status="finished"), "finished_at": "2000-01-01T00:00:00.000Z"}
    rev = _put(store, doc)
    assert doc["id"] in store.archive("2001-01-01T00:00:00.000Z", 10)
    with pytest.raises(RevisionConflict):
        _replace(store, {**doc, "records_written": 1}, rev)
    assert json.loads(store.get(doc["id"], archived=True)[0])["status"] == "finished"


def test_a_document_that_cannot_be_read_is_set_aside_not_retried(store):
    key = str(uuid.uuid4())
    store.create(key, json.dumps({"id": key, "status": "loading"}))  # no symbol, no type: no QueueState
    assert reindex(store) == 0
    assert key not in {k for k, _, _ in store.unindexed(1000)}
    upkeep(store)  # and the sweep's upkeep goes on
    assert json.loads(store.get(key)[0])["status"] == "loading"


def test_a_key_in_the_archive_is_taken(store):
    doc = {**_doc(status="finished"), "finished_at": "2000-01-01T00:00:00.000Z"}
    _put(store, doc)
    assert store.archive("2001-01-01T00:00:00.000Z", 10) == [doc["id"]]
    with pytest.raises(AlreadyExists):
        _put(store, {**doc, "status": "pending"})
    assert store.get(doc["id"]) is None
