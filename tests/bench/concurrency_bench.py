"""Each function's latency and throughput by concurrency, through the real queue-proxy.

For every Service of eventing/services.yaml: its function as the Service runs it
(tests/infra/queue_proxy.py ServiceFunction, embedded default: SQLite, local events, local
launcher) behind Knative's queue-proxy rendered from the same Service, except containerConcurrency
0 (unlimited: queue-proxy holds nothing back). Clients: C threads, one keep-alive connection each,
send the function's hot request back to back:

    queue-start      POST /queues/start, a seed example (shared/examples, in turn) with a fresh
                     Idempotency-Key (allow_overlap: the same ranges are started again and again)
    queue-status     GET /queues/{id}, queues started beforehand
    queue-telemetry  POST /telemetry, plain telemetry JSON for jobs of existing queues
    queue-stop       POST /queues/stop?queue_id=..., each a queue started beforehand and running

At each concurrency (1, 2, 4, 8, 16, 32) a run is bounded by --requests and --seconds; levels are
taken in turn in every round (--rounds) so that this machine's drift falls on all alike, and the
median over rounds is shown. The knee is the first concurrency whose p50 is over --climb (1.5) times
the c=1 figure while throughput stopped growing with it (under --climb times the previous
level's, for twice the clients). A bare functions-framework
function (tests/bench/noop.py) behind the same queue-proxy is the reference (--no-noop to omit).

    .venv/bin/python -m tests.bench.concurrency_bench [--rounds 3] [--requests 300] [--seconds 8]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.examples import NAMES, load
from tests.infra.queue_proxy import QueueProxy, Revision, ServiceFunction, ensure_binary, revision, services
from tests.servers import FunctionServer, base_env

LEVELS = (1, 2, 4, 8, 16, 32)
STREAM_LEVELS = (0, 32, 64, 128, 256, 512)
Request = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers
JSON = {"content-type": "application/json"}


@dataclass
class Run:
    latencies: list[float]
    seconds: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def drive(port: int, concurrency: int, next_request: Callable[[], Request], requests: int, seconds: float) -> Run:
    """``concurrency`` clients, back to back, until ``requests`` were answered or ``seconds`` passed."""
    lock = threading.Lock()  # next_request is not thread-safe
    latencies: list[float] = []
    errors = [0]
    failures: list[BaseException] = []
    left = [requests]
    deadline = [float("inf")]
    start = threading.Barrier(concurrency + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            with lock:
                method, path, body, headers = next_request()
            conn.request(method, path, body, headers)  # warm: open the connection, unmeasured
            conn.getresponse().read()
            start.wait()
            while True:
                with lock:
                    if left[0] <= 0 or time.perf_counter() > deadline[0]:
                        return
                    left[0] -= 1
                    method, path, body, headers = next_request()
                t0 = time.perf_counter()
                conn.request(method, path, body, headers)
                resp = conn.getresponse()
                resp.read()
                took = time.perf_counter() - t0
                with lock:
                    latencies.append(took)
                    if resp.status != 200:
                        errors[0] += 1
        except threading.BrokenBarrierError:
            pass
        except BaseException as e:
            failures.append(e)
            start.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    try:
        start.wait(timeout=120)
    except threading.BrokenBarrierError:
        for t in threads:
            t.join(10)
        raise RuntimeError(f"clients failed: {failures[:1]!r}") from (failures[0] if failures else None)
    t0 = time.perf_counter()
    with lock:
        deadline[0] = t0 + seconds
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"clients failed: {failures[:1]!r}") from failures[0]
    return Run(latencies, time.perf_counter() - t0, errors[0])


# -- the hot request of each function --------------------------------------------------------------

def start_payloads() -> Iterator[bytes]:
    for name in itertools.cycle(NAMES):
        yield json.dumps({**load(name), "allow_overlap": True}).encode()


def started_queues(admin: FunctionServer, n: int) -> list[dict]:
    """``n`` running queues (through the all-in-one function, straight)."""
    out = []
    for i in range(n):
        code, body = admin.call("POST", "/queues/start", {**load(NAMES[i % len(NAMES)]), "allow_overlap": True},
                                headers={"Idempotency-Key": uuid.uuid4().hex})
        if code != 200:
            raise RuntimeError(f"could not start a queue: {code} {body}")
        out.append(body["data"])
    return out


def workload(service: str, admin: FunctionServer, budget: int) -> Callable[[], Request]:
    """A thread-safe supplier of the hot request of ``service`` (callers hold a lock)."""
    if service == "queue-start":
        payloads = start_payloads()
        return lambda: ("POST", "/queues/start", next(payloads), {**JSON, "Idempotency-Key": uuid.uuid4().hex})
    if service == "queue-status":
        ids = itertools.cycle([q["queue_id"] for q in started_queues(admin, 50)])
        return lambda: ("GET", f"/queues/{next(ids)}", None, {})
    if service == "queue-telemetry":
        jobs = itertools.cycle([(q["queue_id"], j["id"]) for q in started_queues(admin, 20) for j in q["jobs"]])
        counter = itertools.count(1)

        def telemetry() -> Request:
            queue_id, job_id = next(jobs)
            body = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": "loading",
                    "records_written": next(counter)}
            return "POST", "/telemetry", json.dumps(body).encode(), JSON
        return telemetry
    if service == "queue-stop":
        fresh = iter([q["queue_id"] for q in started_queues(admin, budget)])
        return lambda: ("POST", f"/queues/stop?queue_id={next(fresh)}", None, {})
    if service == "noop":
        return lambda: ("POST", "/", b"{}", JSON)
    raise KeyError(service)


# -- runs and the knee -------------------------------------------------------------------------------

def knee(rows: dict[int, tuple[float, float, float]], climb: float) -> int | None:
    """The first level whose p50 is over ``climb`` x the c=1 p50 while throughput stopped
    growing with concurrency: less than ``climb`` x the previous level's for twice the clients.
    (One rule for both, by Little's law: throughput that keeps up with concurrency keeps latency
    flat.) None: latency did not climb up to the last level."""
    base = rows[LEVELS[0]][0]
    for prev, c in itertools.pairwise(LEVELS):
        p50, _, rps = rows[c]
        if p50 > climb * base and rps < climb * rows[prev][2]:
            return c
    return None


class Streams:
    """``n`` live streams (GET /queues/{id}/watch) held open: each is a request in the function."""

    def __init__(self, port: int, queue_ids: list[str]) -> None:
        self.conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in queue_ids]
        self.opened = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._watch, args=(c, q), daemon=True)
                        for c, q in zip(self.conns, queue_ids, strict=True)]

    def _watch(self, conn: http.client.HTTPConnection, queue_id: str) -> None:
        try:
            conn.request("GET", f"/queues/{queue_id}/watch")
            resp = conn.getresponse()
            with self._lock:
                self.opened += 1
            while resp.read1(65536):
                pass
        except (OSError, http.client.HTTPException, ValueError):
            pass  # shut down by __exit__
        finally:
            conn.close()

    def __enter__(self) -> Streams:
        for t in self.threads:
            t.start()
        deadline = time.monotonic() + 30
        while self.opened < len(self.threads):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.opened} of {len(self.threads)} streams opened")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:  # the reading thread closes its connection
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(5)


def summarise(runs: dict[int, list[Run]]) -> dict[int, tuple]:
    """Per level: median over rounds of p50 ms, p99 ms, req/s; total requests and non-200."""
    return {c: (statistics.median(r.pct(0.5) for r in rs) * 1000, statistics.median(r.pct(0.99) for r in rs) * 1000,
                statistics.median(r.rps for r in rs), sum(len(r.latencies) for r in rs), sum(r.errors for r in rs))
            for c, rs in runs.items()}


def bench(name: str, rev: Revision, args: argparse.Namespace, work: Path) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """(rows by client concurrency, rows by open streams at c=1: queue-status only)."""
    local = work / name / "local"
    logs = work / name
    logs.mkdir(parents=True)
    env = base_env(local)
    per_level = args.requests + max(LEVELS)  # the warm-up requests too
    if name == "noop":
        fn: FunctionServer = FunctionServer("noop", env, logs)
        fn_start = _noop_start(fn)
    else:
        fn = ServiceFunction(rev, env, logs)
        fn_start = fn.start
    runs: dict[int, list[Run]] = {c: [] for c in LEVELS}
    levels = STREAM_LEVELS if name == "queue-status" and not args.no_streams else ()
    with_streams: dict[int, list[Run]] = {n: [] for n in levels}
    with FunctionServer("all", env, logs) as admin:
        supplier = workload("noop" if name == "noop" else name, admin, per_level * len(LEVELS) * args.rounds)
        watched = [q["queue_id"] for q in started_queues(admin, max(levels))] if levels else []
        fn_start()
        try:
            with QueueProxy(rev, fn.port, logs, container_concurrency=0, lock_timeout=600) as qp:
                assert qp.breaker() is None, "queue-proxy is limiting concurrency"
                for _ in range(args.rounds):
                    for c in LEVELS:
                        runs[c].append(drive(qp.port, c, supplier, args.requests, args.seconds))
                    for n in levels:  # well inside the revision timeout, which ends streams
                        with Streams(qp.port, watched[:n]):
                            with_streams[n].append(drive(qp.port, 1, supplier, args.requests, args.seconds))
        finally:
            fn.stop()
    return summarise(runs), summarise(with_streams)


def _noop_start(fn: FunctionServer) -> Callable[[], FunctionServer]:
    """The bare function (tests/bench/noop.py) has no /health/live: wait for its port."""
    import subprocess

    from tests.servers import FF, ROOT

    here = Path(__file__).resolve().parent

    def start() -> FunctionServer:
        log = open(fn.log_path, "ab")  # noqa: SIM115 - the child keeps its copy
        fn.proc = subprocess.Popen([FF, "--source", str(here / "noop.py"), "--target", "noop", "--asgi",
                                    "--host", "127.0.0.1", "--port", str(fn.port)],
                                   env=fn.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", fn.port), timeout=0.5).close()
                return fn
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("noop not listening")
    return start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="per level and round")
    parser.add_argument("--seconds", type=float, default=8.0, help="per level and round, at most")
    parser.add_argument("--climb", type=float, default=1.5, help="p50 over this x the c=1 p50 is climbing")
    parser.add_argument("--services", nargs="*", default=None, help="default: every Service")
    parser.add_argument("--no-noop", action="store_true", help="omit the bare-function reference")
    parser.add_argument("--no-streams", action="store_true", help="omit queue-status with live streams open")
    args = parser.parse_args(argv)
    ensure_binary()
    names = args.services or sorted(services())
    work = Path(tempfile.mkdtemp(prefix="qm-concurrency-bench-"))
    print(f"through queue-proxy (containerConcurrency 0), {args.rounds} rounds x <= {args.requests} requests "
          f"or {args.seconds:.0f} s per level; median over rounds; logs in {work}", flush=True)
    results: dict[str, tuple[dict, int | None]] = {}
    stream_errors: dict[str, int] = {}
    todo = [(n, revision(n)) for n in names]
    if not args.no_noop:
        todo.append(("noop", revision(names[0])))
    for name, rev in todo:
        t0 = time.monotonic()
        rows, streams = bench(name, rev, args, work)
        k = knee({c: r[:3] for c, r in rows.items()}, args.climb)
        results[name] = (rows, k)
        print(f"\n{name}  ({time.monotonic() - t0:.0f} s)", flush=True)
        print("    c   p50 ms   p99 ms    req/s  requests  non-200")
        for c, (p50, p99, rps, n, bad) in rows.items():
            print(f"  {c:3d}  {p50:7.2f}  {p99:7.2f}  {rps:7.0f}  {n:8d}  {bad:7d}", flush=True)
        print(f"  knee: {k if k else f'none up to {LEVELS[-1]}'}", flush=True)
        if streams:
            print(f"  {name} at c=1 with n live streams (/queues/{{id}}/watch) open in the function:")
            print("    n   p50 ms   p99 ms    req/s  requests  non-200")
            for n, (p50, p99, rps, count, bad) in streams.items():
                print(f"  {n:3d}  {p50:7.2f}  {p99:7.2f}  {rps:7.0f}  {count:8d}  {bad:7d}", flush=True)
            base = streams[STREAM_LEVELS[0]][0]
            climb = next((n for n, r in streams.items() if r[0] > args.climb * base), None)
            print(f"  p50 over {args.climb}x at: {climb if climb else f'none up to {STREAM_LEVELS[-1]}'} streams",
                  flush=True)
            stream_errors[name] = sum(r[4] for r in streams.values())
    print(f"\nsummary (knee: first c with p50 > {args.climb:.1f}x c=1 while req/s < {args.climb:.1f}x the level below)")
    for name, (rows, k) in results.items():
        best = max(rows, key=lambda c: rows[c][2])
        print(f"  {name:16s} c=1 p50 {rows[1][0]:.2f} ms, best {rows[best][2]:.0f} req/s at c={best}, "
              f"knee {k if k else '>' + str(LEVELS[-1])}")
    bad = sum(r[4] for rows, _ in results.values() for r in rows.values()) + sum(stream_errors.values())
    if bad:
        print(f"{bad} requests were not answered 200", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
