"""The ArangoDB backend's reads by index (shared/adapters/state/arango.py): counters, the
queues waiting for a slot, the active queues' facts, written collections, documents without
facts, coverage entries, the database's collections. Each reads what its answer holds, through
the indexes of arango_aql.INDEXES (the coverage entries: COVERAGE_INDEXES)."""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.state.arango_aql import (
    ACTIVE_QUERY,
    COUNTERS_QUERY,
    COVERAGE_QUERY,
    DATASET_QUERY,
    UNINDEXED_QUERY,
    WAITING_FOR_QUERY,
    WAITING_QUERY,
)
from shared.adapters.state.base import ACTIVE, SeenFacts
from shared.core import facts
from shared.core.facts import queue_counter
from shared.core.models import QueueStatus

META = ("_key", "_id", "_rev", "_oldRev", "facts")


def _text(doc: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in doc.items() if k not in META}, separators=(",", ":"))


class IndexReads:
    collection: str
    counters_collection: str
    coverage_collection: str
    _db: Any
    _facts: SeenFacts

    def _query(self, query: str, **bind: Any) -> list[Any]:
        raise NotImplementedError

    def _guard(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def counters(self, prefix: str) -> dict[str, int]:
        rows = self._query(COUNTERS_QUERY, prefix=prefix, **{"@counters": self.counters_collection})
        return {name: int(n) for name, n in rows}

    def count_by_status(self) -> dict[str, int]:
        names = {queue_counter(status.value): status.value for status in QueueStatus}
        found = self._guard(self._db.collection(self.counters_collection).get_many, list(names))
        return {names[d["_key"]]: int(d["n"]) for d in found if d.get("n")}

    def waiting(self, target: str | None, limit: int) -> list[tuple[str, str]]:
        if target is None:
            rows = self._query(WAITING_QUERY, limit=limit, **{"@col": self.collection})
        else:
            rows = self._query(WAITING_FOR_QUERY, target=target, limit=limit, **{"@col": self.collection})
        return [(key, rank) for key, rank in rows]

    def active_facts(self, symbol: str) -> list[tuple[str, str]]:
        rows = self._query(ACTIVE_QUERY, symbol=symbol, active=list(ACTIVE), **{"@col": self.collection})
        return [(key, json.dumps(facts, separators=(",", ":"))) for key, facts in rows]

    def coverage(self, series: str, first: str, last: str) -> list[str]:
        rows = self._query(COVERAGE_QUERY, series=series, first=first, last=last,
                           **{"@coverage": self.coverage_collection})
        return [json.dumps(entry, separators=(",", ":")) for entry in rows]

    def dataset_written(self, name: str) -> bool:
        return bool(self._query(DATASET_QUERY, name=name, **{"@col": self.collection}))

    def unindexed(self, limit: int) -> list[tuple[str, str, str]]:
        docs = self._query(UNINDEXED_QUERY, limit=limit, format=facts.FORMAT, **{"@col": self.collection})
        for d in docs:  # read without facts: their write asks for a recount (see replace); with facts
            self._facts.note(d["_key"], str(d["_rev"]), d.get("facts"))  # of an older format: a diff
        return [(d["_key"], _text(d), str(d["_rev"])) for d in docs]

    def collection_names(self) -> set[str]:
        """The database's collections, system ones left out: one request."""
        return {c["name"] for c in self._guard(self._db.collections) if not c["system"]}

