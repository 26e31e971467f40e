"""Persistent indexes on attribute paths for the ArangoDB stand-in, as arangod keeps them.

`PathIndex` is one persistent index: its fields are attribute paths (`facts.r`,
`symbol`), at most one of them expanded over an array (`facts.w[*]`: one entry per distinct
element, none for a value that is not an array); a sparse index leaves out the documents
where a field is null or missing. Entries are flat `aql_key` tuples ending with the key, so
they sort as ArangoDB's index does, by the values in AQL order and then by `_key`.
tests/arango_standin_docs.py keeps them on every write; `walk` reads a stretch of one in
order, also in a stream transaction, where the documents the transaction sees differently
(tests/arango_standin_trx.py's Overlay `changes()`) are left out of the shared index and
merged in from what the transaction sees.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

# The module, not its names: importing arango_standin_docs first imports this one before that
# module has defined them (docs -> aql -> facts -> paths -> docs).
try:
    from . import arango_standin_docs as docstore
except ImportError:  # imported as a top-level module
    import arango_standin_docs as docstore  # type: ignore[no-redef]

def value_at(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


class PathIndex:
    def __init__(self, fields: tuple[str, ...], sparse: bool, docs: dict):
        self.fields, self.sparse = fields, sparse
        self.entries = docstore.SortedEntries([e for k, d in docs.items() for e in self.entries_for(k, d)])

    def entries_for(self, key: str, doc: dict | None) -> set[tuple]:
        if doc is None:
            return set()
        combos: list[tuple] = [()]
        for field in self.fields:
            if field.endswith("[*]"):
                found = value_at(doc, field[:-3])
                elements = found if isinstance(found, list) else []
                keys = list(dict.fromkeys(docstore.aql_key(v) for v in elements if not (self.sparse and v is None)))
            else:
                v = value_at(doc, field)
                if self.sparse and v is None:
                    return set()
                keys = [docstore.aql_key(v)]
            combos = [(*c, *k) for c in combos for k in keys]
        return {(*c, 3, key) for c in combos}

    def change(self, key: str, old: dict | None, new: dict | None) -> None:
        before, after = self.entries_for(key, old), self.entries_for(key, new)
        for e in before - after:
            self.entries.discard(e)
        for e in after - before:
            self.entries.add(e)


def index_of(docs: Any, fields: tuple[str, ...], sparse: bool) -> PathIndex | None:
    base = getattr(docs, "base", docs)  # a transaction's Overlay reads through to the shared store
    paths = getattr(base, "paths", None)
    return None if paths is None else paths.get((fields, sparse))


def walk(docs: Any, index: PathIndex, lo: tuple, hi: tuple) -> Iterator[tuple[str, dict]]:
    """(key, document) for the entries lo <= e < hi, in index order (a document once per entry)."""
    changes = docs.changes() if hasattr(docs, "changes") else {}
    shared = ((e, e[-1]) for e in index.entries.up(lo, hi) if e[-1] not in changes)
    own = sorted((e, k) for k, d in changes.items() for e in index.entries_for(k, d) if lo <= e < hi)
    base = getattr(docs, "base", docs)
    for _, key in heapq.merge(shared, own):
        doc = changes[key] if key in changes else base.get(key)
        if doc is not None:
            yield key, doc


def stretch(*values: Any) -> tuple[tuple, tuple]:
    """The (lo, hi) of the entries whose leading fields equal `values`."""
    prefix = tuple(x for v in values for x in docstore.aql_key(v))
    return prefix, (*prefix, 9)
