"""The functions behind Knative Serving's real queue-proxy, as eventing/services.yaml sets it up.

queue-proxy (knative.dev/serving v0.50.0) gets the env the revision reconciler renders from each
Service (tests/infra/queue_proxy.py): its containerConcurrency, timeoutSeconds and readinessProbe.
The function runs as the Service's container runs it (functions-framework, the Service's env), on
the embedded default. What is checked:

- readiness: queue-proxy answers the kubelet's probe by running the Service's readinessProbe
  against the function: not ready while the function is down or not ready itself, ready once it
  is (every Service);
- requests over containerConcurrency wait in queue-proxy and all succeed: a burst of each
  function's hot request (every Service), and for queue-status never more than the limit in the
  function at once (its live stream /queues/{id}/watch stays in the function until the queue
  ends, so how many are inside is known exactly);
- SIGTERM: queue-proxy turns not-ready at once, keeps serving, lets the requests in flight finish
  with 200 and exits after its fixed 30 s drain; /wait-for-drain (the function container's
  preStop hook) returns when it has drained.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.examples import load
from tests.infra.missing import unavailable
from tests.infra.queue_proxy import (
    DRAIN_SECONDS,
    KUBELET_USER_AGENT,
    QueueProxy,
    QueueProxyError,
    ServiceFunction,
    ensure_binary,
    revision,
    services,
)
from tests.servers import FunctionServer, base_env
from tests.waiting import wait_until

SERVICES = sorted(services())


@pytest.fixture(scope="module", autouse=True)
def queue_binary() -> Path:
    """Build (or reuse) queue-proxy; without it: FAIL under $CI, skip otherwise."""
    try:
        return ensure_binary(build=os.environ.get("STREAMFORGE_KUBE_BUILD", "1") != "0")
    except (QueueProxyError, OSError) as e:
        unavailable(str(e))


@pytest.fixture
def local(tmp_path: Path) -> Path:
    return tmp_path / "local"


@pytest.fixture
def admin(local: Path, tmp_path: Path) -> Iterator[FunctionServer]:
    """The all-in-one function on the same state, straight (not through queue-proxy): it starts
    and stops the queues the status function is watched on."""
    with FunctionServer("all", base_env(local), tmp_path) as srv:
        yield srv


def start_queue(admin: FunctionServer) -> str:
    code, body = admin.call("POST", "/queues/start", {**load("legacy"), "allow_overlap": True},
                            headers={"Idempotency-Key": uuid.uuid4().hex})
    assert code == 200, body
    return str(body["data"]["queue_id"])


def stop_queue(admin: FunctionServer, queue_id: str) -> None:
    code, body = admin.call("POST", f"/queues/stop?queue_id={queue_id}")
    assert code == 200 and body["data"]["status"] == "stopped", body


class Watch(threading.Thread):
    """GET /queues/{id}/watch through queue-proxy: in the function from its headers to its end."""

    def __init__(self, port: int, queue_id: str) -> None:
        super().__init__(daemon=True)
        self.port, self.queue_id = port, queue_id
        self.status: int | None = None
        self.opened: float | None = None
        self.ended: float | None = None
        self.body = b""
        self.error: str | None = None

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
        try:
            conn.request("GET", f"/queues/{self.queue_id}/watch", headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
            self.status, self.opened = resp.status, time.monotonic()
            self.body = resp.read()
        except Exception as e:  # reported by the assertions
            self.error = repr(e)
        finally:
            self.ended = time.monotonic()
            conn.close()

    @property
    def inside(self) -> bool:
        """Answered and not finished: its handler is running in the function."""
        return self.opened is not None and self.ended is None

    def last_state(self) -> dict:
        """The last `queue` frame's data."""
        frames = [f for f in self.body.decode().split("\n\n") if "event: queue\n" in f]
        assert frames, f"no queue frame in {self.body[-500:]!r}"
        data = next(line for line in frames[-1].splitlines() if line.startswith("data: "))
        return json.loads(data[len("data: "):])

    def assert_complete(self) -> None:
        assert self.error is None, self.error
        assert self.status == 200, (self.status, self.body[-300:])
        assert b"request timeout" not in self.body, "cut by queue-proxy's revision timeout"
        assert self.last_state()["status"] == "stopped", self.body[-300:]


def last_end(watches: list[Watch]) -> float:
    ends = [w.ended for w in watches]
    assert None not in ends, "a stream has not ended"
    return max(e for e in ends if e is not None)


# -- readiness -----------------------------------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_readiness_follows_the_function(service: str, local: Path, tmp_path: Path) -> None:
    rev = revision(service)
    probe = rev.container["readinessProbe"]["httpGet"]["path"]
    fn = ServiceFunction(rev, base_env(local), tmp_path)
    with QueueProxy(rev, fn.port, tmp_path) as qp:
        assert qp.probe()[0] == 503, "ready before the function is up"
        # Not a kubelet probe of queue-proxy (no K-Network-Probe: queue): refused.
        code, body = qp.probe({"User-Agent": KUBELET_USER_AGENT})
        assert code == 400 and "unexpected probe header" in body, (code, body)
        assert qp.call("GET", "/health/live")[0] == 502  # traffic to a function that is not there

        with fn:
            assert fn.call("GET", probe)[0] == 200
            assert qp.probe() == (200, "queue")
            # The drain handler knows a kubelet by its User-Agent only: K-Kubelet-Probe without it
            # is not answered by queue-proxy but passed on to the function (GET / is not a route).
            code, body = qp.probe({"K-Kubelet-Probe": "queue", "K-Network-Probe": "queue"})
            assert code in (404, 405) and body["status"] == "error", (code, body)
            code, body = qp.call("GET", probe)  # anything else is the function's
            assert code == 200 and body["status"] == "success", body

        assert qp.probe()[0] == 503, "still ready with the function gone"


def test_a_live_but_unready_function_is_not_ready(tmp_path: Path) -> None:
    """queue-proxy runs the Service's HTTP readinessProbe, not a port check: a function that is
    up but fails its own readiness (its state directory unusable) keeps the pod out."""
    rev = revision("queue-status")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    fn = ServiceFunction(rev, base_env(not_a_dir / "local"), tmp_path)
    with fn, QueueProxy(rev, fn.port, tmp_path) as qp:
        assert fn.call("GET", "/health/live")[0] == 200
        assert fn.call("GET", rev.container["readinessProbe"]["httpGet"]["path"])[0] >= 500
        assert qp.probe()[0] == 503


# -- containerConcurrency ------------------------------------------------------------------------

EXTRA = 3  # requests beyond the limit
HELD = 4
"""The limit the waiting test holds requests to: queue-status's own (512 long-lived streams) would
not fit in its timeoutSeconds on a small machine; the breaker is the same for any limit, and
the manifest's value reaching queue-proxy is checked in test_each_service_limit_reaches_queue_proxy."""


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_limit_reaches_queue_proxy(service: str, tmp_path: Path) -> None:
    rev = revision(service)
    limit = rev.container_concurrency
    assert limit > 0, f"{service} sets no containerConcurrency"
    fn = ServiceFunction(rev, base_env(tmp_path / "local"), tmp_path)
    with fn, QueueProxy(rev, fn.port, tmp_path) as qp:
        # queue-proxy took the manifest's limit; it queues up to 10x more before refusing (503).
        assert qp.breaker() == {"queue_depth": 10 * limit, "max_concurrency": limit, "initial_capacity": limit}


def test_requests_over_container_concurrency_wait_and_succeed(admin: FunctionServer, local: Path,
                                                               tmp_path: Path) -> None:
    rev = revision("queue-status")
    limit = min(HELD, rev.container_concurrency)
    assert limit > 0, "queue-status sets no containerConcurrency: nothing to hold requests to"
    fn = ServiceFunction(rev, base_env(local), tmp_path)
    with fn, QueueProxy(rev, fn.port, tmp_path, container_concurrency=limit) as qp:
        assert qp.breaker() == {"queue_depth": 10 * limit, "max_concurrency": limit, "initial_capacity": limit}
        watches = [Watch(qp.port, start_queue(admin)) for _ in range(limit + EXTRA)]
        first = time.monotonic()
        for w in watches:
            w.start()

        def inside() -> list[Watch]:
            return [w for w in watches if w.inside]

        wait_until(f"{limit} streams in the function", lambda: len(inside()) >= limit, timeout=20)
        time.sleep(1.0)  # the rest stay queued, not failed
        assert len(inside()) == limit, f"{len(inside())} in the function, limit {limit}"
        assert all(w.opened is None and w.ended is None for w in watches if not w.inside)

        for step in range(1, EXTRA + 1):  # one ends: exactly one waiting request gets in
            done = inside()[0]
            stop_queue(admin, done.queue_id)
            wait_until("the stopped stream to end", lambda: done.ended is not None, timeout=10)  # noqa: B023
            wait_until("the next request to get in",
                       lambda: sum(w.opened is not None for w in watches) == limit + step, timeout=10)  # noqa: B023
            time.sleep(0.3)
            assert len(inside()) == limit, f"{len(inside())} in the function after {step} ended, limit {limit}"

        for w in inside():
            stop_queue(admin, w.queue_id)
        for w in watches:
            w.join(20)
        for w in watches:
            w.assert_complete()
        # Queued time counts against the Service's timeoutSeconds (queue-proxy's timeout handler
        # wraps its breaker): all of this had to fit in it.
        assert last_end(watches) - first < rev.timeout_seconds


def hot_request(service: str, admin: FunctionServer) -> tuple[str, str, dict | None]:
    """(method, path, body) of the request each function serves most."""
    if service == "queue-start":
        return "POST", "/queues/start", {**load("historical"), "allow_overlap": True}
    if service == "queue-stop":
        return "POST", f"/queues/stop?queue_id={start_queue(admin)}", None
    if service == "queue-telemetry":
        code, body = admin.call("POST", "/queues/start", {**load("legacy"), "allow_overlap": True},
                                headers={"Idempotency-Key": uuid.uuid4().hex})
        job = body["data"]["jobs"][0]["id"]
        return "POST", "/telemetry", {"type": "telemetry", "queue_id": body["data"]["queue_id"], "job_id": job,
                                      "status": "loading", "records_written": 1}
    return "GET", f"/queues/{start_queue(admin)}", None


@pytest.mark.parametrize("service", SERVICES)
def test_a_burst_over_container_concurrency_is_queued_not_failed(service: str, admin: FunctionServer, local: Path,
                                                                  tmp_path: Path) -> None:
    """As many requests at once as one pod's queue-proxy takes: the limit, plus 10x it waiting
    (capped at 64 in all). Every one answered 200."""
    rev = revision(service)
    limit = rev.container_concurrency
    assert limit > 0, f"{service} sets no containerConcurrency"
    requests = [hot_request(service, admin) for _ in range(min(limit + 10 * limit, 64))]
    fn = ServiceFunction(rev, base_env(local), tmp_path)
    with fn, QueueProxy(rev, fn.port, tmp_path) as qp:
        assert qp.breaker() == {"queue_depth": 10 * limit, "max_concurrency": limit, "initial_capacity": limit}
        go = threading.Barrier(len(requests))
        answers: list[tuple[int, bytes] | str] = []

        def send(method: str, path: str, body: dict | None) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", qp.port, timeout=60)
            try:
                data = None if body is None else json.dumps(body).encode()
                headers = {"content-type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
                go.wait()
                conn.request(method, path, data, headers)
                resp = conn.getresponse()
                answers.append((resp.status, resp.read()))
            except Exception as e:
                answers.append(repr(e))
            finally:
                conn.close()

        threads = [threading.Thread(target=send, args=r, daemon=True) for r in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        failed = [a for a in answers if isinstance(a, str) or a[0] != 200]
        assert len(answers) == len(requests) and not failed, failed[:3]


# -- SIGTERM -------------------------------------------------------------------------------------

def test_sigterm_drains_requests_in_flight(admin: FunctionServer, local: Path, tmp_path: Path) -> None:
    rev = revision("queue-status")
    fn = ServiceFunction(rev, base_env(local), tmp_path)
    with fn, QueueProxy(rev, fn.port, tmp_path) as qp:
        assert qp.probe() == (200, "queue")
        watches = [Watch(qp.port, start_queue(admin)) for _ in range(min(3, rev.container_concurrency or 3))]
        for w in watches:
            w.start()
        wait_until("the streams to open", lambda: all(w.opened for w in watches), timeout=20)

        # The kubelet ends the pod: the function container's preStop hook asks queue-proxy to
        # drain, queue-proxy (no hook) gets SIGTERM at the same time.
        pre_stop: dict[str, object] = {}

        def pre_stop_hook() -> None:
            try:
                pre_stop.update(code=qp.wait_for_drain(), at=time.monotonic())
            except OSError as e:
                pre_stop.update(error=repr(e))

        hook = threading.Thread(target=pre_stop_hook, daemon=True)
        hook.start()
        sigterm = time.monotonic()
        qp.terminate()
        wait_until("queue-proxy to report not ready", lambda: qp.probe()[0] == 503, timeout=2, interval=0.05)
        assert qp.probe()[1].strip() == "shutting down"

        # Until the endpoints are updated, traffic still comes: it is served during the drain.
        time.sleep(1.0)
        code, body = qp.call("GET", f"/queues/{watches[0].queue_id}")
        assert code == 200 and body["data"]["status"] != "stopped", body
        last_request = time.monotonic()
        assert all(w.inside for w in watches), "a stream was cut by SIGTERM"

        time.sleep(2.0)
        for w in watches:  # the requests in flight finish normally
            stop_queue(admin, w.queue_id)
        for w in watches:
            w.join(10)
            w.assert_complete()
        assert qp.proc is not None and qp.proc.poll() is None, "exited before the drain"

        assert qp.wait(timeout=DRAIN_SECONDS + 20) == 0, qp.log()[-2000:]
        drained = qp.exited_at - last_request  # type: ignore[operator]
        assert drained >= DRAIN_SECONDS - 0.5, f"exited {drained:.1f}s after the last request"
        hook.join(5)
        assert pre_stop.get("code") == 200, pre_stop
        assert pre_stop["at"] <= qp.exited_at  # type: ignore[operator]
        assert "Shutdown complete" in qp.log()
        # What the kubelet allows: terminationGracePeriodSeconds = timeoutSeconds (deploy.go).
        assert last_end(watches) - sigterm < rev.timeout_seconds
