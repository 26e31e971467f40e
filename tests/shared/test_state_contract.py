"""One contract, every backend: SQLite, ArangoDB through the stand-in, and a real
ArangoDB when ARANGO_URL is set for the test run (see README, "Testing")."""

from __future__ import annotations

import json
import os
import threading
import uuid

import pytest

from shared.adapters.state import AlreadyExists, RevisionConflict, mutate
from shared.adapters.state.arango import ArangoStore
from shared.adapters.state.base import InvalidKey
from shared.adapters.state.sqlite import SqliteStore
from shared.core import facts, lifecycle
from shared.core.config import ArangoSettings
from shared.core.errors import BackendUnavailable
from shared.core.models import QueueStart, QueueState
from tests.arango_standin import ArangoStandIn

# Read at import, before the autouse fixture clears the environment.
REAL_ARANGO = {k: os.environ[k] for k in ("ARANGO_URL", "ARANGO_DB", "ARANGO_USER", "ARANGO_PASSWORD")
               if k in os.environ}
BACKENDS = ["sqlite", "arango-standin"] + (["arango-real"] if REAL_ARANGO.get("ARANGO_URL") else [])


@pytest.fixture(scope="module")
def standin():
    with ArangoStandIn(password="test-secret") as server:
        yield server


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteStore(str(tmp_path / "state.db"))
    elif request.param == "arango-standin":
        server = request.getfixturevalue("standin")
        s = ArangoStore(ArangoSettings(url=server.url, db="streamforge", password="test-secret"))
    else:
        s = ArangoStore(ArangoSettings(url=REAL_ARANGO["ARANGO_URL"],
                                       db=REAL_ARANGO.get("ARANGO_DB", "streamforge"),
                                       user=REAL_ARANGO.get("ARANGO_USER", "root"),
                                       password=REAL_ARANGO.get("ARANGO_PASSWORD", "")))
    yield s
    s.close()


def _doc(symbol="BTCUSDT", started_at="2024-01-01T00:00:00Z", status="pending"):
    state = lifecycle.new_queue(
        queue_id=str(uuid.uuid4()),
        command=QueueStart.parse({"symbol": symbol, "type": "api", "time_range": "2024-01-01:2024-01-02"}),
        now=started_at)
    doc = state.model_dump(mode="json")
    doc["status"] = status
    return doc


def _facts(doc):
    return facts.of(QueueState.model_validate(doc))


def _put(store, doc):
    return store.create(doc["id"], json.dumps(doc), facts=_facts(doc))


def _replace(store, doc, rev, **kw):
    return store.replace(doc["id"], json.dumps(doc), rev=rev, facts=_facts(doc), **kw)


def _get(store, key):
    found = store.get(key)
    return None if found is None else json.loads(found[0])


def test_create_get_round_trip(store):
    doc = _doc()
    rev = _put(store, doc)
    text, got_rev = store.get(doc["id"])
    assert got_rev == rev
    assert json.loads(text) == doc


def test_create_twice_is_already_exists(store):
    doc = _doc()
    _put(store, doc)
    with pytest.raises(AlreadyExists):
        _put(store, doc)


def test_get_missing_is_none(store):
    assert store.get(str(uuid.uuid4())) is None


@pytest.mark.parametrize("key", ["loader-producer/0", "a b", "ключ", "x" * 255, ""])
def test_keys_arangodb_refuses_are_refused_alike(store, key):
    """A key ArangoDB would refuse (or read as a document id, like "pool/0") finds nothing and
    can't be written, on both backends: SQLite accepting it hid a bug ArangoDB had."""
    assert store.get(key) is None
    with pytest.raises(InvalidKey):
        store.create(key, json.dumps(_doc()))
    with pytest.raises(InvalidKey):
        store.replace(key, json.dumps(_doc()), rev="1")


def test_every_key_character_arangodb_allows_is_allowed(store):
    key = "aZ09_-:.@()+,=;$!*'%"
    store.create(key, json.dumps(_doc()))
    assert store.get(key) is not None


def test_replace_is_compare_and_set(store):
    doc = _doc()
    rev = _put(store, doc)
    new_rev = store.replace(doc["id"], json.dumps({**doc, "records_written": 5}), rev=rev)
    assert new_rev != rev
    with pytest.raises(RevisionConflict):
        store.replace(doc["id"], json.dumps({**doc, "records_written": 6}), rev=rev)
    assert _get(store, doc["id"])["records_written"] == 5


def test_list_filters_sorts_and_pages(store):
    symbol = "T" + uuid.uuid4().hex[:8].upper()
    docs = [_doc(symbol=symbol, started_at=f"2024-01-0{i}T00:00:00Z", status=s)
            for i, s in enumerate(["pending", "loading", "finished", "loading", "error"], start=1)]
    for d in docs:
        _put(store, d)

    def listing(**kw):
        texts, total = store.list(symbol=symbol, limit=kw.pop("limit", 10), offset=kw.pop("offset", 0), **kw)
        return [json.loads(t) for t in texts], total

    listed, total = listing(status=None)
    assert total == 5
    assert [d["id"] for d in listed] == [d["id"] for d in reversed(docs)]
    loading, total = listing(status="loading")
    assert total == 2 and {d["status"] for d in loading} == {"loading"}
    page, total = listing(status=None, limit=2, offset=2)
    assert total == 5 and [d["id"] for d in page] == [docs[2]["id"], docs[1]["id"]]


def test_status_filter_follows_replaces(store):
    """A status change is found by the filter; writes with the same facts keep it found."""
    symbol = "S" + uuid.uuid4().hex[:8].upper()
    doc = _doc(symbol=symbol, status="pending")
    rev = _put(store, doc)
    rev = _replace(store, {**doc, "status": "loading"}, rev)
    rev = _replace(store, {**doc, "status": "loading", "records_written": 7}, rev)

    def ids(status):
        return [json.loads(t)["id"] for t in store.list(status=status, symbol=symbol, limit=5, offset=0)[0]]

    assert ids("loading") == [doc["id"]] and ids("pending") == []
    _replace(store, {**doc, "status": "finished"}, rev)
    assert ids("finished") == [doc["id"]] and ids("loading") == []


def test_count_by_status(store):
    before = store.count_by_status()
    for s in ("loading", "loading", "stopped"):
        _put(store, _doc(status=s))
    after = store.count_by_status()
    assert after.get("loading", 0) - before.get("loading", 0) == 2
    assert after.get("stopped", 0) - before.get("stopped", 0) == 1


def test_concurrent_mutations_are_never_lost(store):
    doc = _doc()
    _put(store, doc)
    workers, each = 8, 10

    def bump(state):
        state.unattributed_records += 1
        return True

    def work():
        for _ in range(each):
            mutate(store, doc["id"], bump)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _get(store, doc["id"])["unattributed_records"] == workers * each


def test_ping(store):
    store.ping()


def test_arango_outage_is_backend_unavailable(tmp_path):
    server = ArangoStandIn(password="pw")
    server.start()
    store = ArangoStore(ArangoSettings(url=server.url, db="streamforge", password="pw"))
    doc = _doc()
    _put(store, doc)
    server.stop()
    with pytest.raises(BackendUnavailable):
        store.get(doc["id"])
    server.start()
    assert _get(store, doc["id"])["id"] == doc["id"]
    server.stop()


def test_arango_wrong_password_is_backend_unavailable():
    with ArangoStandIn(password="right") as server:
        store = ArangoStore(ArangoSettings(url=server.url, db="streamforge", password="wrong"))
        with pytest.raises(BackendUnavailable, match="401"):
            store.ping()
