"""Scale to zero ends a pod with SIGTERM: nothing accepted before it may be lost.

The server is the real thing (functions-framework --asgi: a gunicorn master and one
UvicornWorker). A start is held in flight deterministically: it is sent with
`Expect: 100-continue` and its body is held back until after SIGTERM; uvicorn answers
`100 Continue` on the handler's first read of the body, so the request is provably being
handled when the signal arrives. Meanwhile other clients keep sending complete starts.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from shared.examples import load
from tests.integration.kafka_support import assert_started_event
from tests.knative.conftest import ImageServer
from tests.servers import ROOT, FunctionServer, base_env

GRACE = 30  # gunicorn's graceful_timeout: functions-framework leaves the default
PAYLOAD = {**load("historical"), "allow_overlap": True}  # many queues for one range


class HeldStart:
    """POST /queues/start, accepted and in the handler, its body not sent yet."""

    def __init__(self, port: int, key: str, token: str | None = None) -> None:
        self.body = json.dumps(PAYLOAD).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock.sendall((f"POST /queues/start HTTP/1.1\r\nHost: qm\r\nContent-Type: application/json\r\n"
                           f"Idempotency-Key: {key}\r\nExpect: 100-continue\r\n{auth}"
                           f"Content-Length: {len(self.body)}\r\n\r\n").encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = self.sock.recv(1)
            assert chunk, f"closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"

    def finish(self) -> tuple[int, dict]:
        self.sock.sendall(self.body)
        raw = b""
        while chunk := self.sock.recv(65536):  # the server closes: it is shutting down
            raw += chunk
        self.sock.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)


class Burst:
    """Threads sending complete starts until the server stops answering."""

    def __init__(self, server: FunctionServer, threads: int = 3) -> None:
        self.server = server
        self.ok: dict[str, str] = {}  # Idempotency-Key -> queue_id, for every 200
        self.other: list[int] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, n: int) -> None:
        for i in range(10_000):
            key = f"burst-{n}-{i}"
            try:
                code, body = self.server.call("POST", "/queues/start", PAYLOAD, headers={"Idempotency-Key": key})
            except OSError:  # refused or reset: shutting down, never got a 200
                return
            with self._lock:
                if code == 200:
                    self.ok[key] = body["data"]["queue_id"]
                else:
                    self.other.append(code)

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 30
        while len(self.ok) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.ok) >= n, self.other

    def join(self) -> None:
        for t in self._threads:
            t.join(GRACE)
            assert not t.is_alive()


def wait_refused(port: int) -> float:
    """Until new connections are refused (the worker closed its listener): shutdown has begun."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError("still accepting connections 10s after SIGTERM")


def worker_pids(master: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def test_requests_in_flight_at_sigterm_complete_and_persist(tmp_path: Path) -> None:
    local = tmp_path / "local"
    server = FunctionServer("all", base_env(local, GUNICORN_LOG_LEVEL="info"), tmp_path).start()
    assert server.proc is not None
    burst = Burst(server)
    burst.wait_for(3)
    held = [HeldStart(server.port, f"held-{i}") for i in range(3)]

    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    wait_refused(server.port)
    assert server.proc.poll() is None  # still up: waiting for the requests in flight
    answers = [h.finish() for h in held]
    rc = server.proc.wait(GRACE)
    took = time.monotonic() - t0
    burst.join()

    assert [code for code, _ in answers] == [200, 200, 200], answers
    assert rc == 0, server.log_path.read_text()
    assert took < GRACE / 2, f"exit took {took:.1f}s"
    assert not burst.other, burst.other
    log = server.log_path.read_text()
    assert "Handling signal: term" in log and "Shutting down: Master" in log

    # every start that got its 200 is in the state, whole, with its started event
    accepted = {**burst.ok, **{f"held-{i}": body["data"]["queue_id"] for i, (_, body) in enumerate(answers)}}
    assert len(set(accepted.values())) == len(accepted)
    with FunctionServer("status", base_env(local), tmp_path) as after:
        code, listing = after.call("GET", "/queues?limit=500")
        assert code == 200 and listing["page"]["total"] >= len(accepted)
        for key, queue_id in accepted.items():
            code, body = after.call("GET", f"/queues/{queue_id}")
            assert code == 200 and len(body["data"]["jobs"]) == 6, (key, body)
            assert body["data"]["idempotency_key"] == key
    events = [json.loads(line)["event"] for line in (local / "events.jsonl").read_text().splitlines()]
    started = {e["subject"] for e in events if e["type"] == "dev.streamforge.queue.started"}
    assert started >= set(accepted.values())


def test_uvicorn_worker_skips_atexit_on_sigterm(tmp_path: Path) -> None:
    """Pins what the stack does (gunicorn 27, uvicorn-worker 0.4, uvicorn 0.54): on SIGTERM the
    worker shuts down gracefully (in-flight requests finish, ASGI lifespan shutdown runs), then
    uvicorn re-raises SIGTERM with the default handler that UvicornWorker.init_signals
    installed, so the worker dies by the signal: its atexit handlers do NOT run. Only the
    gunicorn master runs atexit. shared/runtime.py's atexit.register(reset) therefore never
    closes the worker's backends (the ones runtime.get() opened while serving)."""
    marks = tmp_path / "atexit.log"
    env = base_env(tmp_path / "local", GUNICORN_LOG_LEVEL="info", QM_ATEXIT_LOG=str(marks))
    server = ImageServer(env, tmp_path, FUNCTION_SOURCE=str(ROOT / "tests" / "knative" / "atexit_probe.py")).start()
    assert server.proc is not None
    assert server.call("POST", "/queues/start", PAYLOAD)[0] == 200  # the worker opened its backends
    [worker] = worker_pids(server.proc.pid)
    assert server.stop(signal.SIGTERM, timeout=GRACE) == 0
    ran = [int(p) for p in marks.read_text().split()]
    assert ran == [server.proc.pid]
    assert worker not in ran
    assert f"Worker (pid:{worker}) was sent SIGTERM!" in server.log_path.read_text()


@pytest.mark.kafka
def test_started_event_of_a_start_held_over_sigterm_reaches_kafka(kafka_broker, tmp_path: Path) -> None:
    topic = "queue-events"
    kafka_broker.create_topic(topic, exist_ok=True)
    kafka_broker.create_topic("queue-control", exist_ok=True)
    env = base_env(tmp_path / "local", KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers)
    server = FunctionServer("all", env, tmp_path).start()
    assert server.proc is not None
    held = HeldStart(server.port, f"kafka-{tmp_path.name}")
    server.proc.send_signal(signal.SIGTERM)
    wait_refused(server.port)
    code, body = held.finish()
    assert code == 200, body
    assert server.proc.wait(GRACE) == 0
    queue_id = body["data"]["queue_id"]

    assert_started_event(kafka_broker, queue_id, topic)
