"""Fixtures for the Knative packaging tests: the real `func` CLI, and the functions as the
image runs them (functions-framework configured only by func.yaml's env).

``func_bin`` builds (or reuses) the func CLI with tests/infra/func/build.sh: skipped without
Go or on a failed build, except under $CI where that FAILS (same rule as tests/infra).
``kafka_broker`` comes from tests/infra/conftest.py (a non-root conftest may not use
``pytest_plugins``, so it is imported).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import kafka_broker  # noqa: F401
from tests.infra.test_knative_tools import FUNC_DIR, _build
from tests.servers import FF, ROOT, FunctionServer, base_env

FUNC_YAML = ROOT / "func.yaml"


def func_yaml() -> dict:
    return yaml.safe_load(FUNC_YAML.read_text())


def literal_envs() -> dict[str, str]:
    """func.yaml's run.envs that are plain values (not {{ secret/configMap }} templates)."""
    return {e["name"]: e["value"] for e in func_yaml()["run"]["envs"]
            if "name" in e and not e["value"].startswith("{{")}


class ImageServer(FunctionServer):
    """`functions-framework` with no flags, configured by func.yaml's env alone, as in the
    image: FUNCTION_TARGET=handle, FUNCTION_SOURCE=functions/main.py, FUNCTION_USE_ASGI,
    QM_FUNCTION. (FunctionServer passes --source functions/<target>.py, which has no
    `handle`.)"""

    def __init__(self, env: dict[str, str], log_dir: Path, **overrides: str) -> None:
        super().__init__("handle", env, log_dir)
        envs = {k: v for k, v in literal_envs().items() if k != "CA_PATH"}  # no Kafka CA here
        self.env = {**env, **envs, "HOST": "127.0.0.1", "PORT": str(self.port), **overrides}

    def start(self, timeout: float = 30) -> ImageServer:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([FF], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"handle exited: {self.log_path.read_text()[-2000:]}")
            try:
                self.call("GET", "/health/live")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"handle not live after {timeout}s")


@pytest.fixture(params=["all", "handle"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FunctionServer]:
    """The all-in-one function: FunctionServer target `all`, and the image's `handle` with
    QM_FUNCTION=all (from func.yaml). State in the test's own QM_LOCAL_DIR."""
    env = base_env(tmp_path / "local")
    srv = FunctionServer("all", env, tmp_path) if request.param == "all" else ImageServer(env, tmp_path)
    with srv:
        yield srv


@pytest.fixture(scope="session")
def func_bin() -> Path:
    return _build(FUNC_DIR / "build.sh", ["func", "funcyamlcheck", "func_yaml-schema.json"])


@pytest.fixture()
def func_env(tmp_path: Path) -> dict[str, str]:
    """Hermetic: no user func config, no kubeconfig, no docker daemon."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNC_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), KUBECONFIG=str(home / "no-kubeconfig"),
               DOCKER_HOST=f"unix://{home}/no-docker.sock", NO_COLOR="1")
    return env


@pytest.fixture()
def fn_dir(tmp_path: Path) -> Path:
    """A writable directory holding a copy of the project's func.yaml (func writes .func/ there)."""
    d = tmp_path / "fn"
    d.mkdir()
    shutil.copy(FUNC_YAML, d / "func.yaml")
    return d
