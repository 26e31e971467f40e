"""Every function test runs on both state backends (tests/backends.py). A test about one
backend only says so with ``@pytest.mark.backend("sqlite", reason=...)``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared import runtime
from tests.backends import BACKENDS, state_env
from tests.functions.schedule_support import Clock


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    only = request.node.get_closest_marker("backend")
    if only is not None and only.args[0] != request.param:
        reason = only.kwargs.get("reason") or pytest.fail("@pytest.mark.backend needs reason=...")
        pytest.skip(f"{only.args[0]} only: {reason}")
    with state_env(request.param) as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        yield request.param
        runtime.reset()


@pytest.fixture
def moved(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The clock of the schedules' tests, moved by the test (tests/functions/schedule_support.py)."""
    return Clock(monkeypatch)
