"""Test-wide fixtures: an isolated environment per test, in-process function apps."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shared import runtime
from shared.examples import load

ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIXES = ("KAFKA_", "ARANGO_", "QUEUE_", "JOB_", "QM_", "CA_PATH", "KUBECONFIG", "MAX_BODY",
                "KUBERNETES_SERVICE_HOST")


@pytest.fixture(autouse=True)
def isolate_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Each test starts on the embedded default, in its own folder."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    local = tmp_path / "local"
    monkeypatch.setenv("QM_LOCAL_DIR", str(local))
    runtime.reset()
    yield local
    runtime.reset()


def app_for(target: str) -> TestClient:
    from functions_framework.aio import create_asgi_app

    source = ROOT / "functions" / f"{target}.py"
    return TestClient(create_asgi_app(target=target, source=str(source), signature_type="http"),
                      raise_server_exceptions=False)


@pytest.fixture
def client() -> Callable[[str], TestClient]:
    """client("start") -> a TestClient for that function, run in-process."""
    return app_for


@pytest.fixture
def historical() -> dict:
    return load("historical")


@pytest.fixture
def realtime() -> dict:
    return load("realtime")


@pytest.fixture
def legacy() -> dict:
    return load("legacy")
