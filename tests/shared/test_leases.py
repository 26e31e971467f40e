"""Concurrency slots (shared/services/leases.py) on both state backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.state import RevisionConflict
from shared.adapters.state.arango import ArangoStore
from shared.adapters.state.base import StateStore
from shared.adapters.state.sqlite import SqliteStore
from shared.core.config import ArangoSettings
from shared.services.leases import MAX_ROUNDS, Slots
from tests.arango_standin import ArangoStandIn
from tests.backends import BACKENDS, PASSWORD


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        s: StateStore = SqliteStore(str(tmp_path / "leases.db"), "leases")
        yield s
        s.close()
        return
    with ArangoStandIn(password=PASSWORD) as server:
        s = ArangoStore(ArangoSettings(url=server.url, db="streamforge", password=PASSWORD), "leases")
        yield s
        s.close()


def test_a_limit_of_two_gives_two_slots_and_keeps_them_per_holder(store):
    slots = Slots(store, {"loader-producer": 2}, ttl_s=60)
    assert slots.acquire("loader-producer", "job-a")
    assert slots.acquire("loader-producer", "job-a")  # again: its own slot, not a second
    assert slots.acquire("loader-producer", "job-b")
    assert not slots.acquire("loader-producer", "job-c")
    assert slots.usage("loader-producer") == (2, 2)
    slots.release("loader-producer", "job-a")
    assert slots.acquire("loader-producer", "job-c")
    assert slots.full_pool("loader-producer") == "loader-producer 2/2 in use"


def test_the_overall_limit_counts_every_target(store):
    slots = Slots(store, {"*": 1}, ttl_s=60)
    assert slots.acquire("loader-producer", "job-a")
    assert not slots.acquire("graph-builder", "job-b")


def test_slot_documents_have_keys_arangodb_accepts(store):
    """ArangoDB reads "loader-producer/0" as a document id: every slot key must be a valid key."""
    slots = Slots(store, {"loader-producer": 1, "*": 1}, ttl_s=60)
    assert slots.acquire("loader-producer", "job-a")
    found = store.get("loader-producer:0")
    assert found is not None and json.loads(found[0])["holder"] == "job-a"
    assert store.get("*:0") is not None


class AlwaysRaced:
    """A store where every write loses its compare-and-set, as under a storm of instances."""

    def __init__(self, inner: StateStore) -> None:
        self.inner, self.writes = inner, 0

    def get(self, key: str):
        return self.inner.get(key)

    def create(self, key: str, doc: str) -> str:
        self.writes += 1
        raise RevisionConflict(key)

    def replace(self, key: str, doc: str, *, rev: str, same_status: bool = False) -> str:
        self.writes += 1
        raise RevisionConflict(key)


def test_a_take_that_keeps_losing_races_gives_up_after_a_bound(store):
    raced = AlwaysRaced(store)
    slots = Slots(raced, {"loader-producer": 3}, ttl_s=60)  # type: ignore[arg-type]
    assert not slots.acquire("loader-producer", "job-a")  # no RecursionError: it waits instead
    assert raced.writes == MAX_ROUNDS
