"""The contract every state backend fulfils (tests/shared/test_state_contract.py).

Documents cross it as JSON text: the models parse and print JSON far faster
than they build dicts, and the hot path (telemetry) does one of each per event.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class AlreadyExists(Exception):
    """A document with this key exists (ArangoDB errorNum 1210)."""


class RevisionConflict(Exception):
    """The document changed since it was read (ArangoDB 412, errorNum 1200)."""


class StateStore(Protocol):
    backend: str

    def create(self, key: str, doc: str) -> str:
        """Insert the JSON document `doc` under `key`; return its revision.

        :raises AlreadyExists:
        """

    def get(self, key: str) -> tuple[str, str] | None:
        """(document JSON, revision), or None."""

    def replace(self, key: str, doc: str, *, rev: str, same_status: bool = False) -> str:
        """Replace the document if its revision is still `rev`; return the new one.

        `same_status`: the caller vouches that the document's top-level `status`
        is unchanged, so a backend that copies it into an index may skip that.

        :raises RevisionConflict:
        """

    def batch(self) -> AbstractContextManager[None]:
        """Writes made inside commit together, or not at all, where the backend can.

        A backend without multi-document transactions (ArangoDB's document API)
        commits each write by itself: every write is still a compare-and-set.
        """

    def list(
        self, *, status: str | None, symbol: str | None, limit: int, offset: int
    ) -> tuple[list[str], int]:
        """Documents newest first (by `started_at`, then key), filtered; and the total."""

    def count_by_status(self) -> dict[str, int]: ...

    def ping(self) -> None:
        """:raises BackendUnavailable:"""

    def close(self) -> None: ...
