"""The facts queries answered from the stand-in's path indexes (tests/arango_standin_paths.py)
give what a scan of every document gives, through python-arango, with random writes inside
and outside stream transactions."""

from __future__ import annotations

import random

import pytest
from arango import ArangoClient
from arango.http import DefaultHTTPClient

from shared.adapters.state import arango_aql as q
from tests import arango_standin_paths as paths
from tests.arango_standin import ArangoStandIn
from tests.arango_standin_docs import DocStore

PW = "pw"
INDEXED, PLAIN, COUNTERS = "queue_state", "plain", "counters"
TARGETS = ["loader-producer", "arango-connector", "graph-builder"]
STAMPS = [f"2026-01-0{d}T00:00:00.000Z" for d in range(1, 6)]


@pytest.fixture
def db():
    with ArangoStandIn(password=PW) as server:
        client = ArangoClient(hosts=server.url, http_client=DefaultHTTPClient(retry_attempts=0))
        database = client.db("streamforge", username="root", password=PW)
        indexed = database.create_collection(INDEXED)
        for index in q.INDEXES:
            indexed.add_index(dict(index))
        database.create_collection(PLAIN)
        database.create_collection(COUNTERS)
        yield database
        client.close()


def _doc(rng: random.Random, key: str) -> dict:
    doc = {"_key": key, "symbol": rng.choice(["AAA", "BBB"]), "status": rng.choice(["pending", "loading", "finished"]),
           "started_at": rng.choice(STAMPS)}
    if rng.random() < 0.15:
        return doc  # stored before facts
    waits = sorted(set(rng.sample(TARGETS, rng.randint(0, 2))))
    doc["facts"] = {"c": {"q": 1}, "w": waits, "r": f"{rng.randint(0, 9):02d}|{rng.choice(STAMPS)}" if waits else None,
                    "d": rng.sample(["a_1", "b_2", "c_3"], rng.randint(0, 2)),
                    "e": rng.choice([None, *STAMPS]), "t": None, "l": []}
    if rng.random() < 0.7:  # the current format; else an older one, or none given
        doc["facts"]["x"] = rng.choice([2, 2, 1])
    return doc


def _answers(db, col: str) -> list:
    binds = [(q.WAITING_QUERY, {"limit": 100}), (q.WAITING_QUERY, {"limit": 2}),
             (q.UNINDEXED_QUERY, {"limit": 100, "format": 2}), (q.ENDED_QUERY, {"before": STAMPS[3], "limit": 100})]
    binds += [(q.WAITING_FOR_QUERY, {"target": t, "limit": 100}) for t in TARGETS]
    binds += [(q.ACTIVE_QUERY, {"symbol": s, "active": ["pending", "loading"]}) for s in ("AAA", "BBB")]
    binds += [(q.DATASET_QUERY, {"name": n}) for n in ("a_1", "b_2", "z_9")]
    out = []
    for query, bind in binds:
        rows = list(db.aql.execute(query, bind_vars={"@col": col, **bind}))
        if query in (q.WAITING_QUERY, q.WAITING_FOR_QUERY):
            rows = [r[0] for r in rows]  # their order is the queries' SORT
        elif query == q.ENDED_QUERY:
            rows = [r["_key"] for r in rows]
        elif query == q.UNINDEXED_QUERY:
            rows = sorted(r["_key"] for r in rows)  # no SORT: any order
        elif query == q.ACTIVE_QUERY:
            rows = sorted(r[0] for r in rows)
        out.append((query[:30], bind, rows))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_indexed_answers_equal_a_scan(db, seed):
    rng = random.Random(seed)
    for n in range(60):
        doc = _doc(rng, f"k{n}")
        db.collection(INDEXED).insert(doc)
        db.collection(PLAIN).insert(doc)
    assert _answers(db, INDEXED) == _answers(db, PLAIN)
    for _ in range(80):  # outside a transaction
        key = f"k{rng.randrange(70)}"
        remove, doc = rng.random() < 0.2 and db.collection(PLAIN).has(key), _doc(rng, key)
        for col in (INDEXED, PLAIN):
            if remove:
                db.collection(col).delete(key)
            else:
                db.collection(col).insert(doc, overwrite=True)
    assert _answers(db, INDEXED) == _answers(db, PLAIN)
    trx = db.begin_transaction(read=[INDEXED, PLAIN], write=[INDEXED, PLAIN])
    for _ in range(15):  # inside one: its own writes are seen, the shared index is not trusted for them
        doc = _doc(rng, f"k{rng.randrange(35)}")
        for col in (INDEXED, PLAIN):
            trx.collection(col).insert(doc, overwrite=True)
    for _ in range(10):  # others' writes after it began: it keeps seeing what was there
        doc = _doc(rng, f"k{35 + rng.randrange(35)}")
        for col in (INDEXED, PLAIN):
            db.collection(col).insert(doc, overwrite=True)
    assert _answers(trx, INDEXED) == _answers(trx, PLAIN)
    outside = _answers(db, INDEXED)
    assert outside == _answers(db, PLAIN)
    trx.abort_transaction()
    assert _answers(db, INDEXED) == outside


def test_path_index_entries_expand_arrays_and_leave_out_nulls_when_sparse():
    docs = DocStore()
    docs["a"] = {"facts": {"w": ["x", "y", "x"], "r": "01|t"}}
    docs["b"] = {"facts": {"w": [], "r": None}}
    docs.sync([{"type": "persistent", "fields": ["facts.w[*]"]},
               {"type": "persistent", "fields": ["facts.r"], "sparse": True}])
    waits, ranks = docs.paths[(("facts.w[*]",), False)], docs.paths[(("facts.r",), True)]
    assert sorted(e[-1] + e[1] for e in waits.entries.up((), (9,))) == ["ax", "ay"]
    assert [e[-1] for e in ranks.entries.up((), (9,))] == ["a"]
    docs["b"] = {"facts": {"w": ["x"], "r": "00|t"}}  # a write moves its entries
    del docs["a"]
    assert [e[-1] for e in ranks.entries.up((), (9,))] == ["b"]
    assert [key for key, _ in paths.walk(docs, waits, *paths.stretch("x"))] == ["b"]
