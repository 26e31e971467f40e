"""The records (`base.Records`) of the ArangoDB backend: collection `<collection>_records`, one
document per record, `{_key: key, doc: <the record's JSON, parsed>, due: <stamp or null>}`,
a sparse persistent index on `due` (RECORDS_INDEXES, made by ArangoStore._ensure_schema).

A prefix walk reads the primary index over the key range [prefix, prefix + U+FFFF): arangod's
primary index orders keys by their bytes, and U+FFFF (EF BF BF) is above every key byte (keys
are ASCII, `base.valid_key`); ICU, which AQL compares strings with where no index answers,
also puts U+FFFF above every character. ICU's order differs from the bytes' for case ("Ab:x"
falls between "ab:" and "ab:" + U+FFFF there): STARTS_WITH, exact either way, keeps the answer
the prefix's own whichever index the optimizer picks.

Records are written outside `ArangoStore.batch` (its stream transaction declares the queues'
collections only).
"""

from __future__ import annotations

import json
from typing import Any

from arango.exceptions import DocumentInsertError, DocumentReplaceError, DocumentRevisionError

from shared.adapters.state.base import AlreadyExists, InvalidKey, Record, RevisionConflict, valid_key

ERR_UNIQUE = 1210
ABOVE = "\uffff"
_RANGE = "r._key >= @low AND r._key < @high AND STARTS_WITH(r._key, @low)"
SCAN_QUERY = (
    f"FOR r IN @@col FILTER {_RANGE} AND r._key > @after SORT r._key LIMIT @limit RETURN [r._key, r.doc, r._rev]"
)
DUE_QUERY = (
    f"FOR r IN @@col FILTER r.due != null AND r.due <= @before AND {_RANGE}"
    " SORT r.due, r._key LIMIT @limit RETURN [r._key, r.doc, r._rev]"
)
COUNT_QUERY = f"FOR r IN @@col FILTER {_RANGE} COLLECT WITH COUNT INTO n RETURN n"
RECORDS_QUERIES = (SCAN_QUERY, DUE_QUERY, COUNT_QUERY)
RECORDS_INDEXES = ({"type": "persistent", "fields": ["due"], "sparse": True},)


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _records(rows: list[Any]) -> list[Record]:
    return [(key, _text(doc), str(rev)) for key, doc, rev in rows]


class ArangoRecords:
    def __init__(self, store: Any, name: str) -> None:
        """`store`: the ArangoStore whose database and `_guard` (schema, outages) these use."""
        self._store = store
        self.name = name
        self._col = store._db.collection(name)

    def _query(self, query: str, **bind: Any) -> list[Any]:
        db = self._store._db  # the cursor read inside the guard too: a second batch is a request
        return list(self._store._guard(lambda: list(db.aql.execute(query, bind_vars={**bind, "@col": self.name}))))

    def put(self, key: str, doc: str, *, rev: str | None, due: str | None = None) -> str:
        if not valid_key(key):
            raise InvalidKey(key)
        body = {"_key": key, "doc": json.loads(doc), "due": due}
        if rev is None:
            try:
                meta = self._store._guard(self._col.insert, body)
            except DocumentInsertError as e:
                if e.error_code == ERR_UNIQUE:
                    raise AlreadyExists(key) from e
                raise
            return str(meta["_rev"])
        # arangod reads an empty revision (or one of "-" only: zero in its encoding) as none
        # given, and would replace whatever is stored.
        if not rev.strip("-"):
            raise RevisionConflict(key)
        try:
            meta = self._store._guard(self._col.replace, {**body, "_rev": rev}, check_rev=True)
        except DocumentRevisionError as e:
            raise RevisionConflict(key) from e
        except DocumentReplaceError as e:
            if e.http_code == 404:  # deleted since `rev` was read
                raise RevisionConflict(key) from e
            raise
        return str(meta["_rev"])

    def get(self, key: str) -> tuple[str, str] | None:
        if not valid_key(key):  # python-arango would read "a/b" as a document id of collection "a"
            return None
        found = self._store._guard(self._col.get, key)
        return None if found is None else (_text(found.get("doc")), str(found["_rev"]))

    def delete(self, key: str, *, rev: str | None = None) -> bool:
        if not valid_key(key):
            return False
        try:
            return bool(self._store._guard(self._col.delete, key, rev=rev, check_rev=rev is not None,
                                           ignore_missing=True, silent=True))
        except DocumentRevisionError as e:
            raise RevisionConflict(key) from e

    def scan(self, prefix: str, *, limit: int, after: str | None = None) -> list[Record]:
        return _records(self._query(SCAN_QUERY, low=prefix, high=prefix + ABOVE,
                                    after=after if after is not None else "", limit=limit))

    def due(self, prefix: str, before: str, limit: int) -> list[Record]:
        return _records(self._query(DUE_QUERY, low=prefix, high=prefix + ABOVE, before=before, limit=limit))

    def count(self, prefix: str) -> int:
        rows = self._query(COUNT_QUERY, low=prefix, high=prefix + ABOVE)
        return int(rows[0]) if rows else 0
