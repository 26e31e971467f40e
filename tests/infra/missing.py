"""One rule for a server or tool a test needs and cannot have: under CI (``$CI`` set) that is a
failure, so a missing server never passes silently; elsewhere the test is skipped."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
