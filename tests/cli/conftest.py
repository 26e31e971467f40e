"""Fixtures of the `sfq` tests: a fresh `all` per test on each state backend, and sfq run in-process."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from shared import cli
from tests.backends import BACKENDS, fresh_all


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh `all` per test, on each state backend."""
    with fresh_all(request.param, tmp_path) as srv:
        yield srv


@pytest.fixture
def sfq(server, capsys) -> Callable[..., tuple[int, str, str]]:
    """sfq(*argv) -> (exit code, stdout, stderr), run in-process against `server`."""

    def run(*argv: str, url: str | None = None) -> tuple[int, str, str]:
        out = io.StringIO()
        capsys.readouterr()
        code = cli.main(["--url", url or server.url, *argv], out=out)
        return code, out.getvalue(), capsys.readouterr().err

    return run
