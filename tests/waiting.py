"""Polling for the tests: wait until something holds, or fail saying what was seen last."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    """`fn` never returned anything truthy in time."""


def wait_until(what: str, fn: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1) -> T:
    """Call ``fn`` until it returns something truthy, and return that.

    :raises TimedOut: naming ``what`` and the last value.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimedOut(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
