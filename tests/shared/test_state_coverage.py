"""The coverage index kept from the facts' entries (`v`, shared/core/coverage.py), on every
backend (the fixtures of test_state_contract.py): written with the queue in the same write,
only what changed, kept when the queue is archived, read by series and first day."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.adapters.state import RevisionConflict
from shared.adapters.state.arango import ArangoStore
from shared.adapters.state.base import GroupConflict
from shared.core import facts, lifecycle, lineage
from shared.core.config import ArangoSettings
from shared.core.models import JobStatus, QueueStart, QueueState, QueueStatus
from tests.shared import test_state_contract as contract

standin, store = contract.standin, contract.store  # the contract's fixtures: every backend
TYPE = "api_candles_5m"
EVERYTHING = ("0000-01-01", "9999-12-31")


def _symbol() -> str:
    return "C" + uuid.uuid4().hex[:8].upper()


def _state(symbol: str, time_range: str = "2024-05-20:2024-07-03", type_: str = TYPE) -> QueueState:
    command = QueueStart.parse({
        "symbol": symbol, "type": "api", "time_range": time_range, "partition": "month",
        "requests": [{"target": "loader-producer", "type": type_}, {"target": "arango-connector", "type": type_}]})
    return lifecycle.new_queue(queue_id=str(uuid.uuid4()), command=command, now="2024-01-01T00:00:00.000Z",
                               needs=lineage.plan(command))


def _create(store, state: QueueState) -> str:
    return store.create(state.id, state.model_dump_json(), facts=facts.of(state))


def _replace(store, state: QueueState, rev: str) -> str:
    return store.replace(state.id, state.model_dump_json(), rev=rev, facts=facts.of(state))


def _entries(state: QueueState) -> list[dict]:
    return json.loads(facts.of(state))["v"]


def _ordered(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda e: (e["f"], e["q"], e["k"]))


def _coverage(store, symbol: str, first: str = EVERYTHING[0], last: str = EVERYTHING[1],
              type_: str = TYPE) -> list[dict]:
    return [json.loads(text) for text in store.coverage(f"{symbol}|{type_}", first, last)]


def _revs(store, state: QueueState) -> dict[str, str] | None:
    """ArangoDB: the revisions of the queue's coverage documents (what was rewritten); None
    elsewhere."""
    if not isinstance(store, ArangoStore):
        return None
    ids = [e["id"] for e in _entries(state)]
    return {d["_key"]: d["_rev"] for d in store._db.collection(store.coverage_collection).get_many(ids)}


def _finish(state: QueueState, index: int) -> QueueState:
    changed = state.model_copy(deep=True)
    changed.jobs[index].status = JobStatus.FINISHED
    return changed


def test_entries_appear_on_create(store):
    state = _state(_symbol())
    _create(store, state)
    found = _coverage(store, state.symbol)
    assert len(found) == 6  # 3 months, a topic and a collection each
    assert found == _ordered(_entries(state))
    assert {e["st"] for e in found} == {"in_flight"} and {e["q"] for e in found} == {state.id}


def test_a_replace_rewrites_only_the_entries_it_changes(store):
    state = _state(_symbol())
    rev = _create(store, state)
    before, revs = _coverage(store, state.symbol), _revs(store, state)
    changed = _finish(state, 2)  # one job: one entry
    _replace(store, changed, rev)
    after = _coverage(store, state.symbol)
    differing = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    assert len(differing) == 1
    old, new = differing[0]
    assert (old["st"], new["st"]) == ("in_flight", "loaded") and new["id"] == old["id"]
    assert after == _ordered(_entries(changed))
    if revs is not None:
        now = _revs(store, state)
        assert {k for k in now if now[k] != revs.get(k)} == {new["id"]}


def test_a_replace_with_the_same_entries_changes_nothing(store):
    state = _state(_symbol())
    rev = _create(store, state)
    before, revs = _coverage(store, state.symbol), _revs(store, state)
    same = state.model_copy(deep=True)
    same.unattributed_records += 3  # not in the facts
    rev = _replace(store, same, rev)
    same.status = QueueStatus.LOADING  # in the facts (the counters), not in the entries
    assert json.loads(facts.of(same))["c"] != json.loads(facts.of(state))["c"]
    _replace(store, same, rev)
    assert _coverage(store, state.symbol) == before
    assert _revs(store, state) == revs


def test_entries_of_a_document_stored_without_facts_appear_once_written_with_them(store):
    state = _state(_symbol())
    store.create(state.id, state.model_dump_json())
    assert _coverage(store, state.symbol) == []
    _, rev = store.get(state.id)
    _replace(store, state, rev)
    assert _coverage(store, state.symbol) == _ordered(_entries(state))


def test_archiving_keeps_the_entries(store):
    state = _state(_symbol())
    state.status = QueueStatus.FINISHED
    state.finished_at = "2000-01-01T00:00:00.000Z"
    assert json.loads(facts.of(state))["e"] is not None
    _create(store, state)
    before = _coverage(store, state.symbol)
    assert len(before) == 6
    assert state.id in store.archive("2000-01-02T00:00:00.000Z", 10)
    assert store.get(state.id) is None
    assert _coverage(store, state.symbol) == before


def test_coverage_reads_a_series_by_first_day_inclusive_in_order(store):
    symbol = _symbol()
    a, b = _state(symbol), _state(symbol, "2024-06-10:2024-08-05")
    other_type, other_symbol = _state(symbol, type_="api_candles_1m"), _state(_symbol())
    for state in (a, b, other_type, other_symbol):
        _create(store, state)
    mine = _entries(a) + _entries(b)
    assert {e["f"] for e in mine} == {"2024-05-20", "2024-06-01", "2024-06-10", "2024-07-01", "2024-08-01"}
    assert _coverage(store, symbol) == _ordered(mine)
    found = _coverage(store, symbol, "2024-06-01", "2024-07-01")
    assert found == _ordered([e for e in mine if "2024-06-01" <= e["f"] <= "2024-07-01"])
    assert [(e["f"], e["k"]) for e in found[:4]] == [("2024-06-01", "collection"), ("2024-06-01", "topic"),
                                                     ("2024-06-10", "collection"), ("2024-06-10", "topic")]
    assert [e["q"] for e in found[4:]] == sorted([a.id, a.id, b.id, b.id])
    assert _coverage(store, symbol, "2024-06-02", "2024-06-30") == _ordered(
        [e for e in _entries(b) if e["f"] == "2024-06-10"])
    assert _coverage(store, symbol, "2024-09-01", "2024-12-31") == []
    assert _coverage(store, symbol, type_="api_candles_1m") == _ordered(_entries(other_type))


def test_a_replace_that_loses_the_revision_changes_no_entry(store):
    state = _state(_symbol())
    rev = _create(store, state)
    newer = _replace(store, _finish(state, 0), rev)
    before, revs = _coverage(store, state.symbol), _revs(store, state)
    with pytest.raises(RevisionConflict):
        _replace(store, _finish(state, 1), rev)
    assert _coverage(store, state.symbol) == before
    assert _revs(store, state) == revs
    assert store.get(state.id)[1] == newer


def test_a_group_that_fails_changes_no_entry(store):
    state, fresh = _state(_symbol()), _state(_symbol())
    rev = _create(store, state)
    before = _coverage(store, state.symbol)
    with pytest.raises(GroupConflict), store.batch():
        _replace(store, _finish(state, 3), rev)
        _create(store, fresh)
        assert _coverage(store, state.symbol) != before  # seen inside the group
        raise GroupConflict(state.id)  # as a merge that lost to another writer does
    assert _coverage(store, state.symbol) == before
    assert _coverage(store, fresh.symbol) == []
    assert store.get(state.id)[1] == rev and store.get(fresh.id) is None


def test_arango_a_group_losing_a_write_conflict_changes_no_entry(standin):
    """Another instance writes a queue after the group's transaction read it: the commit is a
    write-write conflict, and of the group's entries none is stored; the other's are."""
    settings = ArangoSettings(url=standin.url, db="streamforge", password="test-secret")
    mine, other = ArangoStore(settings), ArangoStore(settings)
    try:
        state = _state(_symbol())
        _create(mine, state)
        theirs = _finish(state, 1)
        with pytest.raises(GroupConflict), mine.batch():
            _, rev = mine.get(state.id)
            _replace(other, theirs, other.get(state.id)[1])
            _replace(mine, _finish(state, 4), rev)
        assert _coverage(mine, state.symbol) == _ordered(_entries(theirs))
    finally:
        mine.close()
        other.close()


def test_active_facts_hold_the_overlap_check_only(store):
    state = _state(_symbol())
    _create(store, state)
    stored = json.loads(facts.of(state))
    assert stored["v"]
    found = dict(store.active_facts(state.symbol))
    assert list(found) == [state.id]
    assert json.loads(found[state.id]) == {"t": stored["t"], "l": stored["l"]}


def test_arango_lists_the_collections(standin):
    store = ArangoStore(ArangoSettings(url=standin.url, db="streamforge", password="test-secret"))
    try:
        store.ping()
        names = store.collection_names()
        assert {store.collection, store.counters_collection, store.archive_collection,
                store.coverage_collection} <= names
        assert not any(name.startswith("_") for name in names)
        assert store.collection_exists(store.coverage_collection)
    finally:
        store.close()


def test_a_history_from_before_coverage_gets_its_entries_from_the_sweep(store) -> None:
    """Facts of the format before coverage (no `x`, no `v`): upkeep indexes them again, so the
    queues loaded before the upgrade are covered, and every counter stays what it was."""
    from shared.adapters.state import upkeep

    symbol = _symbol()
    old = QueueStart.parse({"symbol": symbol, "time_range": "2024-05-01:2024-06-30",
                            "requests": [{"target": "loader-producer", "type": TYPE},
                                         {"target": "arango-connector", "type": TYPE}]})
    state = lifecycle.new_queue(queue_id=str(uuid.uuid4()), command=old, now="2024-01-01T00:00:00.000Z",
                                needs=lineage.plan(old))
    for job in state.jobs:
        job.status, job.records_written, job.finished_at = JobStatus.FINISHED, 7, "2024-07-01T00:00:00.000Z"
    state.status = QueueStatus.FINISHED
    before = json.loads(facts.of(state))
    legacy = {k: v for k, v in before.items() if k not in ("x", "v")}
    store.create(state.id, state.model_dump_json(), facts=json.dumps(legacy, separators=(",", ":")))
    counted = {**store.counters("q"), **store.counters("s.")}
    assert _coverage(store, symbol) == []
    assert state.id in {k for k, _, _ in store.unindexed(1000)}
    upkeep(store)
    found = _coverage(store, symbol)
    assert [(e["f"], e["t"], e["k"], e["st"], e.get("r")) for e in found] == [
        ("2024-05-01", "2024-06-30", "collection", "loaded", 7), ("2024-05-01", "2024-06-30", "topic", "loaded", 7)]
    assert {**store.counters("q"), **store.counters("s.")} == counted
    assert state.id not in {k for k, _, _ in store.unindexed(1000)}
