"""A collection's documents in the ArangoDB stand-in (see tests/arango_standin.py).

`DocStore` is the dict of a collection's documents (key -> document). Beside it, it keeps the
sorted structures its persistent indexes give, so that the store's list query walks an index
from the page's start instead of sorting every document (tests/arango_standin_list.py):

* with a persistent index whose first field is `started_at`: all documents ordered by
  (started_at, _key), the index a real ArangoDB walks backwards for
  `SORT q.started_at DESC, q._key ASC`;
* with persistent indexes whose first fields are `status` and/or `symbol`: the documents
  ordered by (status, started_at, _key), (symbol, started_at, _key) and, with both,
  (status, symbol, started_at, _key). These combined structures are the stand-in's own (the
  store's indexes may be single-field ones): a real ArangoDB would walk the started_at index
  and filter, or use the status index and sort its matches; the results are the same.

Entries are flat tuples of `aql_key` pairs (rank, value), which Python orders as AQL orders
the values (null < bool < number < string < array < object), ending with the document's `_key`
(as the pair (3, key)). They are
updated on every write through the dict (`d[key] = doc`, `del d[key]`, `pop`, `clear`), so
single and multi-document calls, imports, AQL writes and transaction commits all keep them.
`SortedEntries` is a list of sorted blocks (at most 2 * LOAD entries each): an insert or
remove moves at most a block, not the whole collection.

A write also tells every running stream transaction (`watchers`, see
tests/arango_standin_trx.py) the document as it was before, the first time after the
transaction began that the key changes: the transaction keeps reading that pre-image.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Any

try:
    from .arango_standin_aql import aql_cmp
except ImportError:  # imported as a top-level module
    from arango_standin_aql import aql_cmp  # type: ignore[no-redef]

SORT_FIELD = "started_at"
FILTER_FIELDS = ("status", "symbol")
TOP = 6  # above every aql_key() rank
LOAD = 512


@functools.total_ordering
class _Composite:
    """An array or object value, ordered by aql_cmp."""

    __slots__ = ("v",)

    def __init__(self, v: Any):
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Composite) and aql_cmp(self.v, other.v) == 0

    def __lt__(self, other: _Composite) -> bool:
        return aql_cmp(self.v, other.v) < 0

    def __hash__(self) -> int:
        return 0  # equal values (e.g. [1] and [1, null]) must hash alike


def aql_key(v: Any) -> tuple:
    """A tuple that Python orders (and compares equal) exactly as aql_cmp orders `v`."""
    if v is None:
        return (0, None)
    if isinstance(v, bool):
        return (1, v)
    if isinstance(v, (int, float)):
        return (2, v)
    if isinstance(v, str):
        return (3, v)
    return (4 if isinstance(v, list) else 5, _Composite(v))


def raw(k: tuple) -> Any:
    """The value an aql_key() was made of."""
    return k[1].v if isinstance(k[1], _Composite) else k[1]


class SortedEntries:
    """A sorted multiset of tuples, in blocks."""

    def __init__(self, items: list | None = None):
        items = sorted(items or [])
        self.blocks = [items[i:i + LOAD] for i in range(0, len(items), LOAD)]
        self.maxes = [b[-1] for b in self.blocks]
        self.size = len(items)

    def __len__(self) -> int:
        return self.size

    def add(self, e: tuple) -> None:
        if not self.blocks:
            self.blocks, self.maxes, self.size = [[e]], [e], 1
            return
        i = min(bisect_left(self.maxes, e), len(self.maxes) - 1)
        b = self.blocks[i]
        insort(b, e)
        self.maxes[i] = b[-1]
        self.size += 1
        if len(b) > 2 * LOAD:
            self.blocks[i:i + 1] = [b[:LOAD], b[LOAD:]]
            self.maxes[i:i + 1] = [b[LOAD - 1], b[-1]]

    def discard(self, e: tuple) -> None:
        i = bisect_left(self.maxes, e)
        if i == len(self.maxes):
            return
        b = self.blocks[i]
        j = bisect_left(b, e)
        if j < len(b) and b[j] == e:
            del b[j]
            self.size -= 1
            if b:
                self.maxes[i] = b[-1]
            else:
                del self.blocks[i], self.maxes[i]

    def rank(self, x: tuple) -> int:
        """How many entries are < x."""
        i = bisect_left(self.maxes, x)
        if i == len(self.maxes):
            return self.size
        return sum(map(len, self.blocks[:i])) + bisect_left(self.blocks[i], x)

    def count(self, lo: tuple, hi: tuple) -> int:
        return max(0, self.rank(hi) - self.rank(lo))

    def up(self, lo: tuple, hi: tuple) -> Iterator[tuple]:
        """The entries lo <= e < hi, ascending."""
        i = bisect_left(self.maxes, lo)
        if i == len(self.maxes):
            return
        j = bisect_left(self.blocks[i], lo)
        while i < len(self.blocks):
            b = self.blocks[i]
            for k in range(j, len(b)):
                if not b[k] < hi:
                    return
                yield b[k]
            i, j = i + 1, 0

    def down(self, lo: tuple, hi: tuple) -> Iterator[tuple]:
        """The entries lo <= e < hi, descending."""
        if not self.blocks:
            return
        i = bisect_left(self.maxes, hi)
        if i == len(self.maxes):
            i, j = i - 1, len(self.blocks[-1])
        else:
            j = bisect_left(self.blocks[i], hi)
        while i >= 0:
            b = self.blocks[i]
            for k in range(j - 1, -1, -1):
                if b[k] < lo:
                    return
                yield b[k]
            i -= 1
            j = len(self.blocks[i]) if i >= 0 else 0


def entry(fields: tuple[str, ...], key: str, doc: dict) -> tuple:
    out: list = []
    for f in fields:
        out += aql_key(doc.get(f))
    return (*out, *aql_key(doc.get(SORT_FIELD)), 3, key)


def wanted_structures(indexes: list[dict]) -> set[tuple[str, ...]]:
    """Which sorted structures the collection's persistent indexes give (see the docstring)."""
    firsts = {i["fields"][0] for i in indexes if i.get("type") == "persistent" and i.get("fields")}
    present = tuple(f for f in FILTER_FIELDS if f in firsts)
    out: set[tuple[str, ...]] = {(f,) for f in present}
    if len(present) == len(FILTER_FIELDS):
        out.add(present)
    if SORT_FIELD in firsts:
        out.add(())
    return out


class DocStore(dict):
    """key -> document, keeping the sorted structures and telling running transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.sorted: dict[tuple[str, ...], SortedEntries] = {}
        self.paths: dict[tuple[tuple[str, ...], bool], Any] = {}  # (fields, sparse) -> PathIndex
        self.watchers: dict[str, dict[str, dict | None]] = {}  # trx id -> its pre-images here

    def sync(self, indexes: list[dict]) -> None:
        """Build the structures the indexes now give, drop those they no longer give."""
        wanted = wanted_structures(indexes)
        for fields in [f for f in self.sorted if f not in wanted]:
            del self.sorted[fields]
        for fields in wanted - set(self.sorted):
            self.sorted[fields] = SortedEntries([entry(fields, k, d) for k, d in self.items()])
        try:  # every persistent index, by its attribute paths (tests/arango_standin_paths.py)
            from .arango_standin_paths import PathIndex
        except ImportError:  # imported as a top-level module
            from arango_standin_paths import PathIndex  # type: ignore[no-redef]
        declared = {(tuple(i["fields"]), bool(i.get("sparse"))) for i in indexes
                    if i.get("type") == "persistent" and i.get("fields")}
        self.paths = {spec: self.paths.get(spec) or PathIndex(spec[0], spec[1], self) for spec in declared}

    def _changing(self, key: str, old: dict | None) -> None:
        for before in self.watchers.values():
            before.setdefault(key, old)

    def _index(self, key: str, old: dict | None, new: dict | None) -> None:
        for path in self.paths.values():
            path.change(key, old, new)
        for fields, entries in self.sorted.items():
            before = None if old is None else entry(fields, key, old)
            after = None if new is None else entry(fields, key, new)
            if before != after:  # a write that keeps the indexed values moves nothing
                if before is not None:
                    entries.discard(before)
                if after is not None:
                    entries.add(after)

    def __setitem__(self, key: str, doc: dict) -> None:
        old = dict.get(self, key)
        self._changing(key, old)
        dict.__setitem__(self, key, doc)
        self._index(key, old, doc)

    def __delitem__(self, key: str) -> None:
        old = dict.__getitem__(self, key)
        self._changing(key, old)
        self._index(key, old, None)
        dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            old = self[key]
            del self[key]
            return old
        if default:
            return default[0]
        raise KeyError(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, doc in dict(*args, **kwargs).items():
            self[key] = doc

    def popitem(self) -> tuple[str, dict]:
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self) -> None:
        for key, doc in self.items():
            self._changing(key, doc)
        dict.clear(self)
        self.sorted = {fields: SortedEntries() for fields in self.sorted}
        for path in self.paths.values():
            path.entries = SortedEntries()
