"""The records (`shared.adapters.state.base.Records`), one contract for every backend: SQLite,
ArangoDB through the stand-in, and a real ArangoDB when ARANGO_URL is set for the test run.

The stand-in (and a real server) outlives each test: every test writes under a prefix of its own."""

from __future__ import annotations

import json
import uuid

import pytest
from arango import ArangoClient
from arango.exceptions import AQLQueryExecuteError

from shared.adapters.state.arango import ArangoStore
from shared.adapters.state.arango_records import COUNT_QUERY, DUE_QUERY, SCAN_QUERY
from shared.adapters.state.base import AlreadyExists, InvalidKey, RevisionConflict
from shared.adapters.state.sqlite import SqliteStore
from shared.core.config import ArangoSettings
from shared.core.errors import BackendUnavailable
from tests.arango_standin import ArangoStandIn
from tests.shared.test_state_contract import BACKENDS, REAL_ARANGO


@pytest.fixture(scope="module")
def standin():
    with ArangoStandIn(password="test-secret") as server:
        yield server


def _open(backend, request, tmp_path):
    if backend == "sqlite":
        return SqliteStore(str(tmp_path / "state.db"))
    if backend == "arango-standin":
        server = request.getfixturevalue("standin")
        return ArangoStore(ArangoSettings(url=server.url, db="streamforge", password="test-secret"))
    return ArangoStore(ArangoSettings(url=REAL_ARANGO["ARANGO_URL"], db=REAL_ARANGO.get("ARANGO_DB", "streamforge"),
                                      user=REAL_ARANGO.get("ARANGO_USER", "root"),
                                      password=REAL_ARANGO.get("ARANGO_PASSWORD", "")))


@pytest.fixture(params=BACKENDS)
def opener(request, tmp_path):
    """Opens the backend's store, again after a close: the same file, the same server."""
    opened = []

    def open_store():
        opened.append(_open(request.param, request, tmp_path))
        return opened[-1]

    yield open_store
    for s in opened:
        s.close()


@pytest.fixture
def store(opener):
    return opener()


@pytest.fixture
def kind():
    """A prefix no other test writes under ("<kind>:")."""
    return f"k{uuid.uuid4().hex[:12]}:"


def _doc(**fields):
    return json.dumps(fields)


def _keys(found):
    return [key for key, _, _ in found]


def test_create_get_round_trip(store, kind):
    doc = {"cron": "0 * * * *", "nested": {"list": [1, 2.5, None, "x"]}, "on": True}
    rev = store.records.put(kind + "a", json.dumps(doc), rev=None)
    text, got_rev = store.records.get(kind + "a")
    assert got_rev == rev
    assert json.loads(text) == doc
    assert store.records.get(kind + "missing") is None


def test_create_twice_is_already_exists(store, kind):
    store.records.put(kind + "a", _doc(n=1), rev=None)
    with pytest.raises(AlreadyExists):
        store.records.put(kind + "a", _doc(n=2), rev=None)
    assert json.loads(store.records.get(kind + "a")[0]) == {"n": 1}


def test_replace_is_compare_and_set(store, kind):
    rev = store.records.put(kind + "a", _doc(n=1), rev=None)
    new_rev = store.records.put(kind + "a", _doc(n=2), rev=rev)
    assert new_rev != rev
    text, got_rev = store.records.get(kind + "a")
    assert (json.loads(text), got_rev) == ({"n": 2}, new_rev)
    for stale in (rev, "", "-", "not-a-revision"):
        with pytest.raises(RevisionConflict):
            store.records.put(kind + "a", _doc(n=3), rev=stale)
    assert json.loads(store.records.get(kind + "a")[0]) == {"n": 2}


def test_replace_of_a_missing_record_is_revision_conflict(store, kind):
    rev = store.records.put(kind + "a", _doc(n=1), rev=None)
    assert store.records.delete(kind + "a")
    with pytest.raises(RevisionConflict):
        store.records.put(kind + "a", _doc(n=2), rev=rev)
    with pytest.raises(RevisionConflict):
        store.records.put(kind + "never", _doc(n=2), rev=rev)
    assert store.records.get(kind + "a") is None and store.records.get(kind + "never") is None


def test_delete_with_and_without_revision(store, kind):
    rev = store.records.put(kind + "a", _doc(n=1), rev=None)
    new_rev = store.records.put(kind + "a", _doc(n=2), rev=rev)
    with pytest.raises(RevisionConflict):
        store.records.delete(kind + "a", rev=rev)
    assert store.records.get(kind + "a") is not None
    assert store.records.delete(kind + "a", rev=new_rev) is True
    assert store.records.get(kind + "a") is None
    store.records.put(kind + "b", _doc(n=1), rev=None)
    assert store.records.delete(kind + "b") is True
    assert store.records.get(kind + "b") is None


def test_delete_missing_is_false(store, kind):
    assert store.records.delete(kind + "missing") is False
    assert store.records.delete(kind + "missing", rev="1") is False
    rev = store.records.put(kind + "a", _doc(n=1), rev=None)
    assert store.records.delete(kind + "a") is True
    assert store.records.delete(kind + "a", rev=rev) is False


@pytest.mark.parametrize("key", ["schedule/0", "a b", "ключ", "x" * 255, ""])
def test_invalid_keys(store, key):
    with pytest.raises(InvalidKey):
        store.records.put(key, _doc(n=1), rev=None)
    with pytest.raises(InvalidKey):
        store.records.put(key, _doc(n=1), rev="1")
    assert store.records.get(key) is None
    assert store.records.delete(key) is False
    assert store.records.delete(key, rev="1") is False


def test_every_key_character_is_allowed(store, kind):
    key = kind + "aZ09_-:.@()+,=;$!*'%"
    rev = store.records.put(key, _doc(n=1), rev=None)
    assert store.records.get(key)[1] == rev
    assert _keys(store.records.scan(kind, limit=10)) == [key]


def test_scan_by_prefix_in_key_order_with_paging(store, kind):
    other = kind[:-1] + "x:"  # another kind
    names = ["b", "a", "C", "a0", "z", "_", "%"]
    revs = {kind + n: store.records.put(kind + n, _doc(name=n), rev=None) for n in names}
    store.records.put(other + "a", _doc(name="other"), rev=None)
    store.records.put(kind[:-1], _doc(name="no colon"), rev=None)  # the prefix without its ":"
    expected = sorted(kind + n for n in names)  # by the key's characters (ASCII)
    found = store.records.scan(kind, limit=100)
    assert _keys(found) == expected
    assert {k: r for k, _, r in found} == revs
    assert {k: json.loads(d)["name"] for k, d, _ in found} == {kind + n: n for n in names}
    assert _keys(store.records.scan(kind, limit=3)) == expected[:3]
    assert _keys(store.records.scan(kind, limit=3, after=expected[2])) == expected[3:6]
    assert _keys(store.records.scan(kind, limit=3, after=expected[5])) == expected[6:]
    assert store.records.scan(kind, limit=3, after=expected[-1]) == []
    assert _keys(store.records.scan(kind, limit=100, after=kind + "a")) == [k for k in expected if k > kind + "a"]
    assert _keys(store.records.scan(other, limit=100)) == [other + "a"]
    assert store.records.scan(kind + "nothing", limit=100) == []


def test_due_earliest_first_within_the_prefix(store, kind):
    other = kind[:-1] + "x:"
    r = store.records
    r.put(kind + "late", _doc(n="late"), rev=None, due="2024-01-03T00:00:00Z")
    r.put(kind + "b-early", _doc(n="b"), rev=None, due="2024-01-01T00:00:00Z")
    r.put(kind + "a-early", _doc(n="a"), rev=None, due="2024-01-01T00:00:00Z")
    r.put(kind + "mid", _doc(n="mid"), rev=None, due="2024-01-02T00:00:00Z")
    r.put(kind + "never", _doc(n="never"), rev=None, due=None)
    r.put(other + "early", _doc(n="other"), rev=None, due="2023-01-01T00:00:00Z")
    found = r.due(kind, "2024-01-02T00:00:00Z", 10)  # at or before
    assert _keys(found) == [kind + "a-early", kind + "b-early", kind + "mid"]
    assert json.loads(found[0][1]) == {"n": "a"} and found[0][2] == r.get(kind + "a-early")[1]
    assert _keys(r.due(kind, "2024-01-02T00:00:00Z", 2)) == [kind + "a-early", kind + "b-early"]
    assert _keys(r.due(kind, "2030-01-01T00:00:00Z", 10)) == [kind + k for k in ("a-early", "b-early", "mid", "late")]
    assert r.due(kind, "2023-12-31T00:00:00Z", 10) == []
    assert _keys(r.due(other, "2030-01-01T00:00:00Z", 10)) == [other + "early"]


def test_a_put_that_clears_due_leaves_the_due_ones(store, kind):
    r = store.records
    rev = r.put(kind + "a", _doc(n=1), rev=None, due="2024-01-01T00:00:00Z")
    r.put(kind + "b", _doc(n=1), rev=None, due="2024-01-05T00:00:00Z")
    assert _keys(r.due(kind, "2024-01-02T00:00:00Z", 10)) == [kind + "a"]
    rev = r.put(kind + "a", _doc(n=2), rev=rev, due=None)
    assert r.due(kind, "2030-01-01T00:00:00Z", 10)[0][0] == kind + "b"
    assert _keys(r.due(kind, "2030-01-01T00:00:00Z", 10)) == [kind + "b"]
    r.put(kind + "a", _doc(n=3), rev=rev, due="2024-01-06T00:00:00Z")  # due again, later
    assert _keys(r.due(kind, "2030-01-01T00:00:00Z", 10)) == [kind + "b", kind + "a"]
    assert r.delete(kind + "b")
    assert _keys(r.due(kind, "2030-01-01T00:00:00Z", 10)) == [kind + "a"]


def test_count_by_prefix(store, kind):
    assert store.records.count(kind) == 0
    for n in ("a", "b", "c"):
        store.records.put(kind + n, _doc(n=n), rev=None)
    store.records.put(kind[:-1] + "x:a", _doc(n="other"), rev=None)
    assert store.records.count(kind) == 3
    assert store.records.count(kind + "b") == 1
    store.records.delete(kind + "a")
    assert store.records.count(kind) == 2


def test_records_survive_reopening(opener, kind):
    first = opener()
    rev = first.records.put(kind + "a", _doc(n=1), rev=None, due="2024-01-01T00:00:00Z")
    first.close()
    again = opener()
    text, got_rev = again.records.get(kind + "a")
    assert (json.loads(text), got_rev) == ({"n": 1}, rev)
    assert _keys(again.records.due(kind, "2024-01-01T00:00:00Z", 10)) == [kind + "a"]
    assert again.records.count(kind) == 1


def test_arango_outage_makes_records_backend_unavailable():
    server = ArangoStandIn(password="pw")
    server.start()
    try:
        store = ArangoStore(ArangoSettings(url=server.url, db="streamforge", password="pw"))
        rev = store.records.put("s:a", _doc(n=1), rev=None, due="2024-01-01T00:00:00Z")
        server.pause()
        calls = [lambda: store.records.put("s:b", _doc(n=1), rev=None),
                 lambda: store.records.put("s:a", _doc(n=2), rev=rev),
                 lambda: store.records.get("s:a"), lambda: store.records.delete("s:a"),
                 lambda: store.records.scan("s:", limit=10), lambda: store.records.due("s:", "2030", 10),
                 lambda: store.records.count("s:")]
        for call in calls:
            with pytest.raises(BackendUnavailable):
                call()
        server.resume()
        assert store.records.get("s:a")[1] == rev
        assert store.records.count("s:") == 1
        store.close()
    finally:
        server.stop()


def test_arango_records_live_beside_the_queues_with_a_sparse_due_index(standin):
    store = ArangoStore(ArangoSettings(url=standin.url, db="streamforge", password="test-secret"))
    try:
        store.records.put("s:indexed", _doc(n=1), rev=None)
        col = standin.dbs["streamforge"].cols["queue_state_records"]
        assert col.docs["s:indexed"]["doc"] == {"n": 1} and col.docs["s:indexed"]["due"] is None
        assert [(i["fields"], i["sparse"]) for i in col.indexes[1:]] == [(["due"], True)]
    finally:
        store.close()


@pytest.mark.parametrize(("query", "bind", "code", "num"), [
    (SCAN_QUERY, {"low": "s:", "high": "s:\uffff", "after": ""}, 400, 1551),  # @limit missing
    (COUNT_QUERY, {"low": "s:", "high": "s:\uffff", "limit": 1}, 400, 1552),  # not declared
    (DUE_QUERY, {"low": "s:", "high": "s:\uffff", "before": "2030", "limit": -1}, 400, 1504),
    (COUNT_QUERY, {"@col": "no_such_records", "low": "s:", "high": "s:\uffff"}, 404, 1203),
])
def test_standin_checks_the_records_queries_bind_parameters(standin, query, bind, code, num):
    store = ArangoStore(ArangoSettings(url=standin.url, db="streamforge", password="test-secret"))
    client = ArangoClient(hosts=standin.url)
    try:
        store.records.count("s:")  # the schema made
        db = client.db("streamforge", username="root", password="test-secret")
        with pytest.raises(AQLQueryExecuteError) as failed:
            db.aql.execute(query, bind_vars={"@col": "queue_state_records", **bind})
        assert (failed.value.http_code, failed.value.error_code) == (code, num)
    finally:
        client.close()
        store.close()


def test_a_record_deleted_and_created_again_refuses_the_old_revision(store, kind):
    """A reader holding the revision of the record before it was deleted must not overwrite the
    one created since under the same key (revisions are never given out twice)."""
    old = store.records.put(kind + "a", _doc(n=1), rev=None)
    assert store.records.delete(kind + "a")
    store.records.put(kind + "a", _doc(n=2), rev=None)
    with pytest.raises(RevisionConflict):
        store.records.put(kind + "a", _doc(n=3), rev=old)
    with pytest.raises(RevisionConflict):
        store.records.delete(kind + "a", rev=old)
    assert json.loads(store.records.get(kind + "a")[0]) == {"n": 2}
