"""End-to-end telemetry through the real broker, by hand:

    .venv/bin/python -m tests.bench.kafka_bench [--records 5000] [--queues 10] [--rate 0]

A simulated Job fleet produces plain-JSON telemetry (running totals, keyed by queue id) to
queue-control on a real Kafka broker; the KafkaSource stand-in (`python -m
shared.kafka_source`, its own process) delivers it to the `telemetry` function (a real
functions-framework server; queues are created through a `start` server on the same
SQLite state, both publishing their events to Kafka).

Latency of a record = time from `producer.send()` to the moment the state shows that
record's records_written for its job. The state is read straight from the functions'
SQLite file (a read-only connection polling every ~2 ms, parsing only documents whose
revision changed), so the measurement adds no HTTP load to the function under test.

Two phases over fresh queues: `burst` produces everything at once (throughput; latency
then includes the backlog), `paced` produces at --rate records/s (default: half the burst
throughput), which is the latency of a system that keeps up.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _quiet_kafka_import() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import kafka  # noqa: F401


class StateWatcher(threading.Thread):
    """Polls the SQLite state; `seen[(queue, job)]` = [(records_written, first time seen)]."""

    def __init__(self, db: Path, interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.db, self.interval = db, interval
        self.current: dict[tuple[str, str], int] = {}
        self.history: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self._revs: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10, check_same_thread=False)
        try:
            while not self.stop.is_set():
                for key, rev in conn.execute("SELECT key, rev FROM queue_state").fetchall():
                    if self._revs.get(key) == rev:
                        continue
                    row = conn.execute("SELECT rev, doc FROM queue_state WHERE key = ?", (key,)).fetchone()
                    now = time.perf_counter()
                    self._revs[key] = row[0]
                    for job in json.loads(row[1])["jobs"]:
                        k = (key, job["id"])
                        if job["records_written"] > self.current.get(k, 0):
                            self.current[k] = job["records_written"]
                            self.history.setdefault(k, []).append((job["records_written"], now))
                time.sleep(self.interval)
        finally:
            conn.close()

    def visible_at(self, queue: str, job: str, records: int) -> float | None:
        for value, at in self.history.get((queue, job), []):
            if value >= records:
                return at
        return None


def post(url: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "Idempotency-Key": key})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def make_queues(start_url: str, n: int, tag: str) -> list[tuple[str, list[str]]]:
    from shared.examples import load

    out = []
    for i in range(n):
        payload = {**load("historical"), "allow_overlap": True}  # the same pipeline, n times
        data = post(start_url + "/queues/start", payload, key=f"bench-{tag}-{i}")["data"]
        out.append((data["queue_id"], [j["id"] for j in data["jobs"]]))
    return out


def schedule(queues: list[tuple[str, list[str]]], records: int) -> list[tuple[str, str, str, int]]:
    """`records` reports spread round-robin over every job: running totals, the last `finished`."""
    jobs = [(q, j) for q, ids in queues for j in ids]
    per_job = {k: 0 for k in jobs}
    for i in range(records):
        per_job[jobs[i % len(jobs)]] += 1
    out, step = [], {k: 0 for k in jobs}
    for i in range(records):
        q, j = jobs[i % len(jobs)]
        step[(q, j)] += 1
        last = step[(q, j)] == per_job[(q, j)]
        out.append((q, j, "finished" if last else "loading", 100 * step[(q, j)]))
    return out


def run_phase(name: str, producer: Any, topic: str, watcher: StateWatcher,
              plan: list[tuple[str, str, str, int]], rate: float) -> dict[str, float]:
    sent: list[float] = []
    t0 = time.perf_counter()
    for i, (q, j, status, n) in enumerate(plan):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        body = {"type": "telemetry", "queue_id": q, "job_id": j, "status": status, "records_written": n}
        sent.append(time.perf_counter())
        producer.send(topic, value=json.dumps(body).encode(), key=q.encode())
    producer.flush(60)
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        if all(watcher.current.get((q, j), 0) >= n for q, j, _, n in plan):
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"{name}: not every record became visible in 600 s")
    time.sleep(0.05)
    lat = sorted((watcher.visible_at(q, j, n) or 0) - s for (q, j, _, n), s in zip(plan, sent, strict=True))
    end = max(watcher.visible_at(q, j, n) or 0 for q, j, _, n in plan)
    q99 = statistics.quantiles(lat, n=100)
    return {"records": len(plan), "seconds": end - t0, "throughput": len(plan) / (end - t0),
            "p50": statistics.median(lat) * 1000, "p99": q99[98] * 1000, "max": lat[-1] * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0, help="paced phase records/s (0: half the burst rate)")
    args = parser.parse_args(argv)
    _quiet_kafka_import()
    from kafka import KafkaProducer

    from tests.infra.kafka_broker import KAFKA_VERSION, KafkaBroker
    from tests.servers import FunctionServer, base_env

    tmp = Path(tempfile.mkdtemp(prefix="sf-kafka-bench-"))
    broker = KafkaBroker(num_partitions=args.partitions)
    t = time.perf_counter()
    broker.start()
    print(f"Kafka {KAFKA_VERSION} (KRaft, 1 node): start() {time.perf_counter() - t:.1f} s, "
          f"JVM launch -> ready {broker.last_start_seconds:.1f} s; {os.cpu_count()} cores")
    tag = uuid.uuid4().hex[:6]
    control, events = f"queue-control-{tag}", f"queue-events-{tag}"
    for topic in (control, events, f"{control}-dlq"):
        broker.create_topic(topic, args.partitions)
    env = base_env(tmp / "local", KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                   QUEUE_CONTROL_TOPIC=control, QUEUE_EVENTS_TOPIC=events)
    servers = [FunctionServer("start", env, tmp).start(), FunctionServer("telemetry", env, tmp).start()]
    with open(tmp / "adapter.log", "wb") as log:
        adapter = subprocess.Popen(
            [sys.executable, "-m", "shared.kafka_source", "--topic", control, "--sink", servers[1].url + "/",
             "--group", f"bench-{tag}", "--dead-letter-topic", f"{control}-dlq"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    producer = KafkaProducer(**broker.client_config(), acks="all", enable_idempotence=True, linger_ms=2)
    watcher = StateWatcher(tmp / "local" / "state.db")
    try:
        warm = make_queues(servers[0].url, 1, f"{tag}-warm")
        watcher.start()
        run_phase("warm-up", producer, control, watcher, schedule(warm, 60), 0)
        burst_q = make_queues(servers[0].url, args.queues, f"{tag}-burst")
        burst = run_phase("burst", producer, control, watcher, schedule(burst_q, args.records), 0)
        rate = args.rate or round(burst["throughput"] / 2)
        paced_q = make_queues(servers[0].url, args.queues, f"{tag}-paced")
        paced = run_phase("paced", producer, control, watcher, schedule(paced_q, args.records), rate)
        print(f"{args.records} telemetry records over {args.queues} queues x 6 jobs, {args.partitions} partitions, "
              "Job producer -> Kafka -> KafkaSource stand-in -> `telemetry` (real server) -> SQLite state")
        for name, r in (("burst", burst), (f"paced {rate:.0f}/s", paced)):
            print(f"  {name:<12} {r['throughput']:7.0f} records/s ({r['seconds']:.1f} s)   latency p50 "
                  f"{r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  max {r['max']:7.1f} ms")
        print("  latency: producer.send() -> records_written visible in the SQLite state (polled every ~2 ms)")
        return 0
    finally:
        watcher.stop.set()
        producer.close(5)
        adapter.terminate()
        adapter.wait(30)
        for s in servers:
            s.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
