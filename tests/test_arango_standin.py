"""The ArangoDB stand-in, driven with python-arango exactly as a real server would be."""

from __future__ import annotations

import threading

import pytest
import requests
from arango import ArangoClient
from arango.exceptions import (
    AQLQueryExecuteError,
    CollectionCreateError,
    CursorNextError,
    DocumentDeleteError,
    DocumentGetError,
    DocumentInsertError,
    DocumentRevisionError,
    ServerConnectionError,
    ServerVersionError,
)
from arango.http import DefaultHTTPClient

from shared.adapters.state.arango_aql import COUNTERS_QUERY, LIST_QUERY
from tests.arango_standin import ArangoStandIn

PW = "s3cret"
COL = "queue_state"


@pytest.fixture
def arango():
    with ArangoStandIn(password=PW) as server:
        yield server


@pytest.fixture
def arango_client(arango):
    c = ArangoClient(hosts=arango.url, http_client=DefaultHTTPClient(retry_attempts=0))
    yield c
    c.close()


@pytest.fixture
def db(arango_client):
    return arango_client.db("streamforge", username="root", password=PW)


@pytest.fixture
def col(db):
    return db.create_collection(COL)


def _raw(arango, method, path, password=PW, **kw):
    return requests.request(method, arango.url + path, auth=("root", password), timeout=5, **kw)


def _list(db, batch_size=None, **bind):
    bind = {"@col": COL, "status": None, "symbol": None, "at": None, "key": None, "offset": 0, "limit": 100,
            **bind}
    cursor = db.aql.execute(LIST_QUERY, bind_vars=bind, full_count=True, batch_size=batch_size)
    return [d["_key"] for d in cursor], cursor.statistics()["fullCount"]


def test_version_and_unknown_path(arango, db):
    assert db.version() == "3.12.4"
    assert db.version(details=True)["server"] == "arango"
    r = _raw(arango, "GET", "/_db/streamforge/_api/nonsense")
    assert r.status_code == 404
    assert r.json() == {"error": True, "code": 404, "errorNum": 404,
                        "errorMessage": "unknown path '/_api/nonsense'"}


def test_wrong_password_unknown_database(arango, arango_client):
    with pytest.raises(ServerVersionError) as e:
        arango_client.db("streamforge", username="root", password="wrong").version()
    assert (e.value.http_code, e.value.error_code) == (401, 11)
    with pytest.raises(ServerConnectionError):
        arango_client.db("streamforge", username="root", password="wrong", verify=True)
    with pytest.raises(ServerVersionError) as e:
        arango_client.db("nope", username="root", password=PW).version()
    assert (e.value.http_code, e.value.error_code) == (404, 1228)
    # without valid credentials a missing database is not revealed
    assert _raw(arango, "GET", "/_db/nope/_api/version", password="x").json()["errorNum"] == 11


def test_collection_and_index_creation_idempotent(db):
    assert not db.has_collection(COL)
    col = db.create_collection(COL)
    assert db.has_collection(COL)
    with pytest.raises(CollectionCreateError) as e:
        db.create_collection(COL)
    assert (e.value.http_code, e.value.error_code) == (409, 1207)
    with pytest.raises(CollectionCreateError) as e:
        db.create_collection("bad name!")
    assert e.value.error_code == 1208
    first = col.add_index({"type": "persistent", "fields": ["status"]})
    again = col.add_index({"type": "persistent", "fields": ["status"]})
    assert first["isNewlyCreated"] is True and again["isNewlyCreated"] is False
    assert first["id"] == again["id"]
    assert [i["type"] for i in col.indexes()] == ["primary", "persistent"]
    assert {c["name"] for c in db.collections() if c["system"]} >= {"_graphs", "_analyzers"}


def test_insert_get_replace_with_revisions(arango, col):
    meta = col.insert({"_key": "q1", "status": "pending", "n": 1})
    assert meta["_id"] == f"{COL}/q1" and meta["_rev"].endswith("-")
    assert arango.requests[-1] == ("POST", f"/_db/streamforge/_api/document/{COL}", 202)
    doc = col.get("q1")
    assert doc == {"_key": "q1", "_id": f"{COL}/q1", "_rev": meta["_rev"],
                   "status": "pending", "n": 1}
    new = col.replace({"_key": "q1", "_rev": meta["_rev"], "status": "running"}, check_rev=True)
    assert new["_old_rev"] == meta["_rev"] and new["_rev"] != meta["_rev"]
    assert col.get("q1")["status"] == "running" and "n" not in col.get("q1")
    with pytest.raises(DocumentRevisionError) as e:  # stale _rev in the body, ignoreRevs=false
        col.replace({"_key": "q1", "_rev": meta["_rev"], "status": "lost"}, check_rev=True)
    err = e.value
    assert (err.http_code, err.error_code) == (412, 1200)
    assert err.error_message == "conflict, _rev values do not match"
    assert err.response.body["_rev"] == new["_rev"] and err.response.body["_key"] == "q1"
    assert col.get("q1")["status"] == "running"
    # check_rev=False sends ignoreRevs=true: the stale _rev is not compared
    col.replace({"_key": "q1", "_rev": meta["_rev"], "status": "forced"}, check_rev=False)
    assert col.get("q1")["status"] == "forced"


def test_if_match_and_if_none_match(arango, col):
    rev = col.insert({"_key": "k"})["_rev"]
    assert col.get("k", rev=rev)["_rev"] == rev
    with pytest.raises(DocumentRevisionError) as e:
        col.get("k", rev="_stale-rev-")
    assert (e.value.http_code, e.value.error_code) == (412, 1200)
    r = _raw(arango, "GET", f"/_db/streamforge/_api/document/{COL}/k",
             headers={"If-None-Match": f'"{rev}"'})
    assert r.status_code == 304 and r.headers["Etag"] == f'"{rev}"'


def test_insert_duplicate_get_missing_update_delete(db, col):
    col.insert({"_key": "dup"})
    with pytest.raises(DocumentInsertError) as e:
        col.insert({"_key": "dup"})
    assert (e.value.http_code, e.value.error_code) == (409, 1210)
    with pytest.raises(DocumentInsertError) as e:
        col.insert({"_key": "white space"})
    assert e.value.error_code == 1221
    assert col.get("missing") is None
    with pytest.raises(DocumentGetError) as e:
        db.collection("nope").get("x")
    assert (e.value.http_code, e.value.error_code) == (404, 1203)
    col.insert({"_key": "u", "nested": {"a": 1}, "gone": 1})
    col.update({"_key": "u", "nested": {"b": 2}, "gone": None})
    assert col.get("u")["nested"] == {"a": 1, "b": 2} and col.get("u")["gone"] is None
    col.update({"_key": "u", "gone": None}, keep_none=False)
    assert "gone" not in col.get("u")
    assert col.delete("u")["_key"] == "u"
    with pytest.raises(DocumentDeleteError) as e:
        col.delete("u")
    assert e.value.error_code == 1202
    assert col.delete("u", ignore_missing=True) is False


def _seed(col):
    rows = [("a", "running", "BTC", "2024-01-03"), ("b", "stopped", "ETH", "2024-01-05"),
            ("c", "running", "ETH", "2024-01-01"), ("d", "running", "BTC", "2024-01-03"),
            ("e", "failed", "BTC", "2024-01-02")]
    for key, status, symbol, started in rows:
        col.insert({"_key": key, "status": status, "symbol": symbol, "started_at": started})
    col.insert({"_key": "f", "status": "running", "symbol": "BTC"})  # no started_at: null, last


def test_list_query_filters_sort_and_full_count(db, col):
    _seed(col)
    assert _list(db) == (["b", "a", "d", "e", "c", "f"], 6)  # started_at DESC, then _key ASC
    assert _list(db, status="running") == (["a", "d", "c", "f"], 4)
    assert _list(db, status="running", symbol="BTC") == (["a", "d", "f"], 3)
    assert _list(db, symbol="ETH", offset=1, limit=5) == (["c"], 2)
    assert _list(db, status="nothing") == ([], 0)
    assert _list(db, limit=0) == ([], 6)


def test_list_query_starts_after_a_keyset(db, col):
    """`at`/`key`: the page after (started_at, _key) in the listing's order; fullCount counts
    what is past it. A missing started_at (null) sorts after every string: last."""
    _seed(col)
    order = _list(db)[0]
    docs = {key: col.get(key) for key in order}
    for i, key in enumerate(order[:-1]):
        got, left = _list(db, at=docs[key].get("started_at"), key=key)
        if docs[key].get("started_at") is not None:
            assert got == order[i + 1:] and left == len(order) - i - 1, (key, got)


def test_list_query_pages_across_batches(arango, db, col):
    _seed(col)
    assert _list(db, batch_size=2) == (["b", "a", "d", "e", "c", "f"], 6)
    fetches = [r for r in arango.requests if r[1].startswith("/_db/streamforge/_api/cursor/")]
    assert [r[2] for r in fetches] == [200, 200]
    # the exhausted cursor is gone, as on the server
    r = _raw(arango, "POST", fetches[0][1])
    assert (r.status_code, r.json()["errorNum"]) == (404, 1600)
    cursor = db.aql.execute(LIST_QUERY, count=True, batch_size=4, bind_vars={
        "@col": COL, "status": None, "symbol": None, "at": None, "key": None, "offset": 0, "limit": 10})
    assert len(cursor) == 6 and cursor.has_more() and len(cursor.batch()) == 4
    cursor.close()
    with pytest.raises(CursorNextError):
        cursor.fetch()


def test_cursor_retry_endpoint(arango, col):
    _seed(col)
    body = {"query": LIST_QUERY, "batchSize": 4, "options": {"allowRetry": True},
            "bindVars": {"@col": COL, "status": None, "symbol": None, "at": None, "key": None, "offset": 0, "limit": 9}}
    first = _raw(arango, "POST", "/_db/streamforge/_api/cursor", json=body).json()
    assert first["nextBatchId"] == "2" and first["hasMore"] is True
    path = f"/_db/streamforge/_api/cursor/{first['id']}"
    second = _raw(arango, "POST", f"{path}/2").json()
    assert [d["_key"] for d in second["result"]] == ["c", "f"] and not second["hasMore"]
    assert _raw(arango, "POST", f"{path}/2").json()["result"] == second["result"]  # replayed
    assert _raw(arango, "POST", f"{path}/5").json()["errorNum"] == 1600
    assert _raw(arango, "DELETE", path).status_code == 202


def test_counters_query_by_prefix_without_zeros(db, col):
    counters = db.collection(COL)  # any collection serves as the counters collection here
    counters.insert_many([{"_key": "q.loading", "n": 2}, {"_key": "q.loading.BTC", "n": 0},
                          {"_key": "j.loader.running", "n": 1}, {"_key": "q", "n": 5}])
    rows = list(db.aql.execute(COUNTERS_QUERY, bind_vars={"@counters": COL, "prefix": "q."}))
    assert rows == [["q.loading", 2]]


@pytest.mark.parametrize(("query", "bind", "code", "num"), [
    ("FOR d IN @@col RETURN d", {"@col": COL}, 400, 1501),
    (COUNTERS_QUERY, {}, 400, 1551),
    (COUNTERS_QUERY, {"@counters": COL, "prefix": "q", "extra": 1}, 400, 1552),
    (COUNTERS_QUERY, {"@counters": "missing", "prefix": "q"}, 404, 1203),
    (LIST_QUERY, {"@col": COL, "status": None, "symbol": None, "at": None, "key": None, "offset": -1, "limit": 1},
     400, 1504),
])
def test_aql_errors(db, col, query, bind, code, num):
    with pytest.raises(AQLQueryExecuteError) as e:
        db.aql.execute(query, bind_vars=bind)
    assert (e.value.http_code, e.value.error_code) == (code, num)


def test_pause_resume_and_restart_keep_data(arango, col):
    # the HTTP client settings of shared/adapters/state/arango.py: one urllib3 retry for GETs
    c = ArangoClient(hosts=arango.url, http_client=DefaultHTTPClient(retry_attempts=1,
                                                                     backoff_factor=0.1))
    mine = c.db("streamforge", username="root", password=PW).collection(COL)
    try:
        col.insert({"_key": "keep"})
        arango.pause()  # 503 with errorNum 503, as during startup/maintenance
        with pytest.raises(ConnectionAbortedError):  # python-arango gives up on the host
            mine.insert({"_key": "x"})
        with pytest.raises(requests.exceptions.RetryError):  # a GET 503 is retried by urllib3 first
            mine.get("keep")
        arango.pause(mode="shutdown")  # 503 with errorNum 30: an ordinary server error
        with pytest.raises(DocumentInsertError) as e:
            mine.insert({"_key": "x"})
        assert (e.value.http_code, e.value.error_code) == (503, 30)
        arango.resume()
        assert mine.get("keep")["_key"] == "keep" and mine.get("x") is None
        url = arango.url
        arango.stop()
        with pytest.raises(ConnectionAbortedError):  # refused, after python-arango's 3 tries
            mine.get("keep")
        arango.start()
        assert arango.url == url and mine.get("keep")["_key"] == "keep"
    finally:
        c.close()


def test_concurrent_compare_and_swap_loses_no_update(arango, col):
    col.insert({"_key": "ctr", "n": 0})

    def bump(times):
        c = ArangoClient(hosts=arango.url, http_client=DefaultHTTPClient(retry_attempts=0))
        mine = c.db("streamforge", username="root", password=PW).collection(COL)
        try:
            for _ in range(times):
                while True:
                    doc = mine.get("ctr")
                    try:
                        mine.replace({**doc, "n": doc["n"] + 1}, check_rev=True)
                        break
                    except DocumentRevisionError:
                        continue
        finally:
            c.close()

    threads = [threading.Thread(target=bump, args=(15,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert col.get("ctr")["n"] == 90


def test_aql_sort_matches_icu_for_what_the_store_sorts():
    """The stand-in orders strings by code point, arangod by ICU collation. For what the store
    sorts (fixed-shape UTC timestamps, UUID keys) the two agree: checked against ICU itself, as
    Node.js's Intl.Collator ships it (root order, as ArangoDB's default language)."""
    import functools
    import json
    import random
    import shutil
    import subprocess
    import uuid as uuidlib

    from tests.arango_standin_aql import aql_cmp
    from tests.infra.missing import unavailable

    node = shutil.which("node")
    if node is None:
        unavailable("node not found: ICU's order comes from Node.js's Intl.Collator")
    rnd = random.Random(7)
    stamps = [f"20{rnd.randint(20, 29)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T"
              f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}."
              f"{rnd.randint(0, 999):03d}Z" for _ in range(300)]
    keys = [str(uuidlib.UUID(int=rnd.getrandbits(128))) for _ in range(300)]

    def icu_sorted(values: list[str]) -> list[str]:
        out = subprocess.run([node, "-e", "const v = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
                              "console.log(JSON.stringify(v.sort(new Intl.Collator('und').compare)))"],
                             input=json.dumps(values), capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    for values in (stamps, keys):
        assert icu_sorted(values) == sorted(values, key=functools.cmp_to_key(aql_cmp))
    # where they differ (mixed case), which the store never sorts by
    mixed = ["b", "B", "a"]
    assert icu_sorted(mixed) != sorted(mixed, key=functools.cmp_to_key(aql_cmp))
