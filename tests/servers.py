"""The functions as real servers: functions-framework processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.infra.children import free_port

ROOT = Path(__file__).resolve().parent.parent
FF = str(Path(sys.executable).parent / "functions-framework")


class FunctionServer:
    """`functions-framework --asgi` serving one target; `env` is the whole environment."""

    def __init__(self, target: str, env: dict[str, str], log_dir: Path) -> None:
        self.target = target
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{target}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> FunctionServer:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [FF, "--source", str(ROOT / "functions" / f"{self.target}.py"), "--target", self.target,
                 "--asgi", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target} exited: {self.log_path.read_text()[-2000:]}")
            try:
                self.call("GET", "/health/live")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.target} not live after {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> FunctionServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
        return http_call(self.url + path, method, body, headers, raw=raw, timeout=timeout)


def http_call(url: str, method: str, body: Any = None, headers: dict[str, str] | None = None,
              raw: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
    """One request with a JSON body (or `raw` bytes): (status, the reply parsed as JSON, or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, _parse(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, _parse(e.read())


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def base_env(local_dir: Path, **extra: str) -> dict[str, str]:
    """The process environment minus project settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "ARANGO_", "QUEUE_", "JOB_", "QM_", "KUBECONFIG"))}
    env["QM_LOCAL_DIR"] = str(local_dir)
    env.update(extra)
    return env
