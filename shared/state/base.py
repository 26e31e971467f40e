"""The contract every state backend fulfils (tests/shared/test_state_contract.py)."""

from __future__ import annotations

from typing import Any, Protocol

Doc = dict[str, Any]


class AlreadyExists(Exception):
    """A document with this key exists (ArangoDB errorNum 1210)."""


class RevisionConflict(Exception):
    """The document changed since it was read (ArangoDB 412, errorNum 1200)."""


class StateStore(Protocol):
    backend: str

    def create(self, doc: Doc) -> str:
        """Insert `doc` under `doc["id"]`; return its revision.

        :raises AlreadyExists:
        """

    def get(self, key: str) -> Doc | None:
        """The document with its revision in `_rev`, or None."""

    def replace(self, doc: Doc, *, rev: str) -> str:
        """Replace the document if its revision is still `rev`; return the new one.

        :raises RevisionConflict:
        """

    def list(
        self, *, status: str | None, symbol: str | None, limit: int, offset: int
    ) -> tuple[list[Doc], int]:
        """Newest first, filtered; and the total before paging."""

    def count_by_status(self) -> dict[str, int]: ...

    def ping(self) -> None:
        """:raises BackendUnavailable:"""

    def close(self) -> None: ...


def strip_meta(doc: dict[str, Any]) -> Doc:
    """Drop the backend's own fields, keeping `_rev`."""
    return {k: v for k, v in doc.items() if k not in ("_key", "_id", "_oldRev")}
