"""The two state backends the behavioural suites run on: the embedded SQLite default, and
ArangoDB as production runs it, here the stand-in of tests/arango_standin.py (a fresh server per
use: no ArangoDB server runs on these machines)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.arango_standin import ArangoStandIn
from tests.servers import FunctionServer, base_env

BACKENDS = ("sqlite", "arango")
PASSWORD = "state-test-secret"


@contextlib.contextmanager
def state_env(backend: str) -> Iterator[dict[str, str]]:
    """The env that points the functions at ``backend`` (nothing for the embedded default)."""
    if backend == "sqlite":
        yield {}
        return
    with ArangoStandIn(password=PASSWORD) as server:
        yield {"ARANGO_URL": server.url, "ARANGO_PASSWORD": PASSWORD}


@contextlib.contextmanager
def fresh_all(backend: str, tmp_path: Path) -> Iterator[FunctionServer]:
    """A fresh `all` function on ``backend`` (one per test: queues for the same data would
    overlap, 409, on a shared one)."""
    with state_env(backend) as env, FunctionServer("all", base_env(tmp_path / "state", **env), tmp_path) as srv:
        yield srv
