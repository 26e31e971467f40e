"""The stand-in's index structures and copy-free stream transactions give the same answers as a
brute-force scan, through python-arango, with writes inside and outside transactions."""

from __future__ import annotations

import random

import pytest
from arango import ArangoClient
from arango.exceptions import DocumentReplaceError, TransactionCommitError
from arango.http import DefaultHTTPClient

from shared.adapters.state.arango import LIST_QUERY
from tests import arango_standin_docs, arango_standin_list
from tests.arango_standin import ArangoStandIn
from tests.arango_standin_docs import DocStore, SortedEntries, aql_key, entry

PW = "pw"
COL, PLAIN = "queue_state", "plain"  # with the store's indexes / without any
STATUSES = ["pending", "loading", "finished", None]
SYMBOLS = ["AAA", "BBB", "CCC"]
TIMES = [f"2026-01-0{d}T00:00:00.000Z" for d in range(1, 6)] + [None]  # ties on purpose


@pytest.fixture
def arango():
    with ArangoStandIn(password=PW) as server:
        yield server


@pytest.fixture
def db(arango):
    client = ArangoClient(hosts=arango.url, http_client=DefaultHTTPClient(retry_attempts=0))
    database = client.db("streamforge", username="root", password=PW)
    indexed = database.create_collection(COL)
    for fields in (["status"], ["symbol"], ["started_at"]):
        indexed.add_index({"type": "persistent", "fields": fields})
    database.create_collection(PLAIN)
    yield database
    client.close()


def _rank(v):
    return (0, "") if v is None else (1, v)


def brute_list(model, status, symbol, at, key, offset, limit):
    hits = [d for d in model.values()
            if (status is None or d.get("status") == status) and (symbol is None or d.get("symbol") == symbol)
            and (at is None or _rank(d.get("started_at")) < _rank(at)
                 or (_rank(d.get("started_at")) == _rank(at) and d["_key"] > key))]
    hits.sort(key=lambda d: d["_key"])
    hits.sort(key=lambda d: _rank(d.get("started_at")), reverse=True)
    return [d["_key"] for d in hits[offset:offset + limit]], len(hits)


def run_list(db, col, status, symbol, at, key, offset, limit):
    bind = {"@col": col, "status": status, "symbol": symbol, "at": at, "key": key,
            "offset": offset, "limit": limit}
    cursor = db.aql.execute(LIST_QUERY, bind_vars=bind, full_count=True)
    return [d["_key"] for d in cursor], cursor.statistics()["fullCount"]


def random_doc(rng, key):
    doc = {"_key": key, "symbol": rng.choice(SYMBOLS), "n": rng.randrange(1000)}
    for field, values in (("status", STATUSES), ("started_at", TIMES)):
        value = rng.choice(values)
        if value is not None or rng.random() < 0.5:  # null or a missing attribute: both null
            doc[field] = value
    return doc


def check_lists(rng, db, model, cols=(COL, PLAIN), rounds=6):
    ordered = brute_list(model, None, None, None, None, 0, len(model))[0]
    for _ in range(rounds):
        status, symbol = rng.choice(STATUSES + [None]), rng.choice(SYMBOLS + [None, None])
        at = key = None
        if ordered and rng.random() < 0.6:
            after = model[rng.choice(ordered)]
            at, key = after.get("started_at"), after["_key"]
            if rng.random() < 0.2:
                at = rng.choice(TIMES[:-1])
        offset, limit = rng.choice([0, 0, 1, 3]), rng.choice([1, 5, 1000])
        expected = brute_list(model, status, symbol, at, key, offset, limit)
        for col in cols:
            assert run_list(db, col, status, symbol, at, key, offset, limit) == expected, (col, status, symbol, at)


def check_structures(arango):
    docs = arango.dbs["streamforge"].cols[COL].docs
    assert set(docs.sorted) == {(), ("status",), ("symbol",), ("status", "symbol")}
    for fields, entries in docs.sorted.items():
        assert [e for b in entries.blocks for e in b] == sorted(entry(fields, k, d) for k, d in docs.items())
        assert len(entries) == len(docs)


def write(rng, cols, model, keys):
    """One random insert, or replace or remove of one of `keys`, on `cols` and `model`: its key."""
    roll, candidates = rng.random(), sorted(set(model) & keys)
    if roll < 0.5 or not candidates:
        doc = random_doc(rng, f"k{rng.randrange(10**9):09d}")
        for col in cols:
            col.insert(doc)
        model[doc["_key"]] = doc
    elif roll < 0.8:
        doc = random_doc(rng, rng.choice(candidates))
        for col in cols:
            col.replace(doc)
        model[doc["_key"]] = doc
    else:
        doc = model.pop(rng.choice(candidates))
        for col in cols:
            col.delete(doc["_key"])
    return doc["_key"]


def test_list_equals_brute_force_under_random_writes(arango, db):
    rng = random.Random(7)
    model: dict = {}
    cols = [db.collection(COL), db.collection(PLAIN)]
    for step in range(240):
        write(rng, cols, model, set(model))
        if step % 12 == 0:
            check_lists(rng, db, model)
    check_structures(arango)
    # multi-document calls and imports keep the structures too
    docs = [random_doc(rng, f"m{i:03d}") for i in range(40)]
    for col in cols:
        col.insert_many(docs)
        col.import_bulk([random_doc(random.Random(i), f"i{i:03d}") for i in range(30)])
        col.delete_many([f"m{i:03d}" for i in range(0, 40, 3)])
    model.update({d["_key"]: d for d in docs})
    model.update({f"i{i:03d}": random_doc(random.Random(i), f"i{i:03d}") for i in range(30)})
    for i in range(0, 40, 3):
        del model[f"m{i:03d}"]
    check_structures(arango)
    check_lists(rng, db, model, rounds=20)
    bind = {"@col": COL, "status": "pending", "symbol": None, "at": None, "key": None, "offset": 0, "limit": 2}
    stats = db.aql.execute(LIST_QUERY, bind_vars=bind, full_count=True).statistics()
    assert stats["scanned_full"] == 0 and stats["scanned_index"] <= 2 + len(TIMES)  # walked, not scanned
    assert stats["fullCount"] == sum(d.get("status") == "pending" for d in model.values()) > 2


def test_list_in_transactions_equals_brute_force(arango, db):
    rng = random.Random(11)
    model: dict = {}
    outside = [db.collection(COL), db.collection(PLAIN)]
    for _ in range(60):
        write(rng, outside, model, set(model))
    for round_ in range(8):
        trx = db.begin_transaction(read=[COL, PLAIN], write=[COL, PLAIN])
        inside = [trx.collection(COL), trx.collection(PLAIN)]
        seen = dict(model)  # the transaction's snapshot, then its own writes
        ours, theirs = set(), set()
        for step in range(30):
            if rng.random() < 0.6:  # only keys nobody else wrote since begin: no conflict
                ours.add(write(rng, inside, seen, set(seen) - theirs))
            else:
                theirs.add(write(rng, outside, model, set(model) - ours))
            if step % 10 == 9:
                check_lists(rng, trx, seen, rounds=3)
                check_lists(rng, db, model, rounds=3)
        if round_ % 3 == 2:
            trx.abort_transaction()
        else:
            trx.commit_transaction()
            for key in ours:
                if key in seen:
                    model[key] = seen[key]
                else:
                    model.pop(key, None)
        check_lists(rng, db, model, rounds=4)
    check_structures(arango)
    assert arango_standin_docs.DocStore is type(arango.dbs["streamforge"].cols[COL].docs)
    assert all(not c.docs.watchers for c in arango.dbs["streamforge"].cols.values())


def test_a_transaction_reads_the_documents_as_they_were_at_begin(arango, db):
    col = db.collection(COL)
    col.insert({"_key": "a", "status": "pending", "started_at": TIMES[0], "v": 1})
    col.insert({"_key": "b", "status": "pending", "started_at": TIMES[1], "v": 1})
    trx = db.begin_transaction(read=[COL], write=[COL])
    state = arango.dbs["streamforge"].transactions[trx.transaction_id]
    assert state.before[COL] == {} and state.view.cols[COL].docs.base is arango.dbs["streamforge"].cols[COL].docs
    col.replace({"_key": "a", "status": "finished", "started_at": TIMES[2], "v": 2})
    col.delete("b")
    col.insert({"_key": "c", "status": "pending", "started_at": TIMES[3]})
    assert set(state.before[COL]) == {"a", "b", "c"}  # pre-images of what others changed only
    tcol = trx.collection(COL)
    assert tcol.get("a")["v"] == 1 and tcol.get("b")["v"] == 1 and tcol.get("c") is None
    assert tcol.count() == 2 and col.count() == 2
    assert run_list(trx, COL, "pending", None, None, None, 0, 10) == (["b", "a"], 2)
    assert run_list(db, COL, "pending", None, None, None, 0, 10) == (["c"], 1)
    tcol.insert({"_key": "d", "status": "pending", "started_at": TIMES[4]})
    assert run_list(trx, COL, "pending", None, None, None, 0, 10) == (["d", "b", "a"], 3)
    assert run_list(db, COL, "pending", None, None, None, 0, 10) == (["c"], 1)
    with pytest.raises(DocumentReplaceError) as e:  # changed by someone else after begin
        tcol.replace({"_key": "a", "status": "loading"})
    assert (e.value.http_code, e.value.error_code) == (409, 1200)
    with pytest.raises(TransactionCommitError) as c:
        trx.commit_transaction()
    assert c.value.error_code == 1653  # aborted by the conflict
    assert col.get("d") is None and not arango.dbs["streamforge"].cols[COL].docs.watchers


def test_a_conflict_on_an_insert_shows_at_commit_and_nothing_is_stored(db):
    col = db.collection(COL)
    trx = db.begin_transaction(read=[COL], write=[COL])
    trx.collection(COL).insert({"_key": "x", "status": "pending"})
    trx.collection(COL).insert({"_key": "y", "status": "pending"})
    col.insert({"_key": "x", "status": "loading"})
    with pytest.raises(TransactionCommitError) as e:
        trx.commit_transaction()
    assert (e.value.http_code, e.value.error_code) == (409, 1200)
    assert col.get("x")["status"] == "loading" and col.get("y") is None


def test_sorted_entries_blocks_split_and_merge(monkeypatch):
    monkeypatch.setattr(arango_standin_docs, "LOAD", 4)
    rng = random.Random(3)
    entries, plain = SortedEntries(), []
    for _ in range(600):
        e = (*aql_key(rng.choice(TIMES)), 3, f"k{rng.randrange(200)}")
        if e in plain and rng.random() < 0.5:
            entries.discard(e)
            plain.remove(e)
        elif e not in plain:
            entries.add(e)
            plain.append(e)
        plain.sort()
        lo, hi = sorted([aql_key(rng.choice(TIMES)), (*aql_key(rng.choice(TIMES)), 6)])
        assert list(entries.up(lo, hi)) == [x for x in plain if lo <= x < hi]
        assert list(entries.down(lo, hi)) == [x for x in reversed(plain) if lo <= x < hi]
        assert entries.count(lo, hi) == sum(lo <= x < hi for x in plain)
    assert len(entries.blocks) > 10 and max(map(len, entries.blocks)) <= 8


def test_totals_and_counts_by_status_from_the_structures():
    rng = random.Random(5)
    docs, indexes = DocStore(), [{"type": "persistent", "fields": [f]} for f in ("status", "symbol", "started_at")]
    docs.sync(indexes)
    model: dict = {}
    for i in range(300):
        doc = random_doc(rng, f"k{rng.randrange(150)}")
        if rng.random() < 0.2 and doc["_key"] in docs:
            docs.pop(doc["_key"])
            model.pop(doc["_key"])
        else:
            docs[doc["_key"]] = model[doc["_key"]] = doc
        if i % 30:
            continue
        for status in STATUSES:
            for symbol in SYMBOLS + [None]:
                rows, _ = arango_standin_list.answer(docs, "total", {"status": status, "symbol": symbol}, False, 0)
                assert rows == [brute_list(model, status, symbol, None, None, 0, 0)[1]]
        rows, _ = arango_standin_list.answer(docs, "count", {}, False, 0)
        counts = {s: sum(d.get("status") == s for d in model.values()) for s in STATUSES}
        assert rows == [{"status": s, "count": counts[s]} for s in [None, "finished", "loading", "pending"]
                        if counts[s]]


def test_dropping_an_index_drops_its_structure_and_lists_stay_right(arango, db):
    col = db.collection(COL)
    rng = random.Random(1)
    model = {}
    for _ in range(50):
        write(rng, [col, db.collection(PLAIN)], model, set(model))
    index = next(i for i in col.indexes() if i["fields"] == ["started_at"])
    col.delete_index(index["id"])
    assert () not in arango.dbs["streamforge"].cols[COL].docs.sorted
    check_lists(rng, db, model, rounds=15)


def test_aql_key_orders_as_aql_does():
    from tests.arango_standin_aql import aql_cmp

    values = [None, False, True, 0, 1, 1.0, 1.5, -2, "", "a", "B", "ab", [], [1], [1, None], [1, 2], [2],
              {}, {"a": None}, {"a": 1}, {"b": 1}, {"a": 1, "b": 0}]
    for a in values:
        for b in values:
            expected = aql_cmp(a, b)
            got = (aql_key(a) > aql_key(b)) - (aql_key(a) < aql_key(b))
            assert got == expected and (aql_key(a) == aql_key(b)) == (expected == 0), (a, b)
