"""A Knative adapter (ApiServerSource's, PingSource's) run as a local process: started in a
session of its own that dies with the test process, its output in a log file, read back as the
zap (JSON) records it wrote."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tests.infra.children import die_with_parent


class AdapterError(RuntimeError):
    """The adapter is missing, could not be built, exited, or did not get ready."""


class AdapterProcess:
    name = "the adapter"

    def __init__(self, workdir: Path, log_name: str) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / log_name
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def spawn(self, binary: Path, env: dict[str, str], ready: Callable[[], bool], timeout: float, waiting: str
              ) -> None:
        """Start `binary` with `env` (plus HOME and PATH) and wait until `ready()`.

        :raises AdapterError: it exited, or was not ready within `timeout` seconds (then stopped)
        """
        env = {**env, "HOME": str(self.workdir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True,
                                     preexec_fn=die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise AdapterError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise AdapterError(f"{self.name} did not {waiting} in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL; nothing is delivered after this returns."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def records(self) -> list[dict[str, Any]]:
        """Its zap (JSON) log records."""
        out = []
        for line in self.lines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines()[-lines:])
