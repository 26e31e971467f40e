"""End-to-end telemetry through the real broker and Knative's real KafkaSource data plane:

    .venv/bin/python -m tests.bench.kafka_bench [--records 3000] [--queues 10] [--rounds 1]

A simulated Job fleet produces plain-JSON telemetry (running totals, keyed by queue id) to
queue-control on a real Kafka broker; eventing/kafka-source.yaml's KafkaSource, rendered into
a contract for eventing-kafka-broker's dispatcher (tests/infra/dataplane), delivers it to the
`telemetry` function (a real functions-framework server; queues are created through a `start`
server on the same SQLite state). Four deliveries side by side: 1 and 3 partitions, `ordering:
ordered` (the manifest's) and `unordered` (the manifest changed in memory), each on its own
topic and consumer group. Beside them, in the same run, the telemetry function's own rate:
the same records POSTed straight to it by as many keep-alive connections as the dispatcher
can have in flight (ordered: one per partition; unordered: 16), so the ratio is what the
delivery path costs.

Latency of a record = time from `producer.send()` (or the POST) to the moment the state shows
that record's records_written for its job. The state is read straight from the functions'
SQLite file (a read-only connection polling every ~2 ms, parsing only documents whose
revision changed), so the measurement adds no HTTP load to the function under test.

Each delivery runs two phases over fresh queues: `burst` produces everything at once
(throughput; latency then includes the backlog), `paced` produces at half the burst rate
(the latency of a system that keeps up).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UNORDERED_IN_FLIGHT = 16


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


class Direct:
    """The same records POSTed straight to the telemetry function over `n` keep-alive
    connections, each taking the next record in turn (no Kafka, no dispatcher)."""

    def __init__(self, url: str, n: int) -> None:
        import http.client
        import queue
        import urllib.parse

        parts = urllib.parse.urlsplit(url)
        self.path = parts.path or "/"
        self.jobs: queue.Queue[tuple[bytes, float] | None] = queue.Queue()
        self.errors: list[str] = []
        self.conns = [http.client.HTTPConnection(parts.hostname, parts.port, timeout=30) for _ in range(n)]
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in self.conns]
        for t in self.threads:
            t.start()

    def _run(self, conn: Any) -> None:
        while (item := self.jobs.get()) is not None:
            body, _ = item
            conn.request("POST", self.path, body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                self.errors.append(f"{resp.status}")

    def send(self, body: bytes) -> None:
        self.jobs.put((body, time.perf_counter()))

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join(30)
        for c in self.conns:
            c.close()


def run_phase(name: str, send: Any, flush: Any, watcher: StateWatcher,
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
        send(json.dumps(body).encode(), q.encode())
    flush()
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        if all(watcher.current.get((q, j), 0) >= n for q, j, _, n in plan):
            break
        if not watcher.is_alive():
            raise RuntimeError(f"{name}: the state watcher died")
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
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--queues", type=int, default=10)
    args = parser.parse_args(argv)
    _quiet_kafka_import()
    from kafka import KafkaProducer

    from tests.infra.dataplane import contract, knative
    from tests.infra.kafka_broker import KAFKA_VERSION, KafkaBroker
    from tests.servers import FunctionServer, base_env

    if not knative.available():
        knative.build()
    tmp = Path(tempfile.mkdtemp(prefix="sf-kafka-bench-"))
    broker = KafkaBroker(num_partitions=3)
    t = time.perf_counter()
    broker.start()
    print(f"Kafka {KAFKA_VERSION} (KRaft, 1 node): start() {time.perf_counter() - t:.1f} s, "
          f"JVM launch -> ready {broker.last_start_seconds:.1f} s; {os.cpu_count()} cores")
    tag = uuid.uuid4().hex[:6]
    events = f"queue-events-{tag}"
    broker.create_topic(events, 3)
    env = base_env(tmp / "local", KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
                   QUEUE_CONTROL_TOPIC=f"queue-control-{tag}", QUEUE_EVENTS_TOPIC=events)
    servers = [FunctionServer("start", env, tmp).start(), FunctionServer("telemetry", env, tmp).start()]
    producer = KafkaProducer(**broker.client_config(), acks="all", enable_idempotence=True, linger_ms=2)
    watcher = StateWatcher(tmp / "local" / "state.db")
    results: list[tuple[str, dict[str, float], dict[str, float]]] = []

    def phases(label: str, send: Any, flush: Any, rate: float | None = None) -> tuple[dict[str, float], ...]:
        """burst, then paced at `rate` (default: half the burst's throughput)."""
        burst = run_phase(f"{label} burst", send, flush, watcher,
                          schedule(make_queues(servers[0].url, args.queues, f"{tag}-{label}-b"), args.records), 0)
        rate = rate or round(burst["throughput"] / 2)
        paced = run_phase(f"{label} paced", send, flush, watcher,
                          schedule(make_queues(servers[0].url, args.queues, f"{tag}-{label}-p"), args.records), rate)
        return burst, paced, {"rate": rate}

    try:
        warm_queues = make_queues(servers[0].url, 1, f"{tag}-warm")  # creates the state the watcher reads
        watcher.start()
        warm = Direct(servers[1].url + "/telemetry", 4)
        run_phase("warm-up", lambda body, key: warm.send(body), lambda: None, watcher, schedule(warm_queues, 200), 0)
        warm.close()
        for partitions in (1, 3):
            for ordering in ("ordered", "unordered"):
                label = f"{partitions}p-{ordering}"
                topic = f"queue-control-{tag}-{label}"
                broker.create_topic(topic, partitions)
                manifest = contract.manifest("kafka-source.yaml", "KafkaSource")
                manifest["spec"].update(topics=[topic], ordering=ordering, consumerGroup=f"bench-{tag}-{label}")
                manifest["spec"].get("delivery", {}).pop("deadLetterSink", None)  # nothing is dead-lettered here
                source = knative.KafkaSourceDeployment(broker, tmp, servers[1].url + "/telemetry", manifest=manifest,
                                                       jvm_opts=knative.THROUGHPUT_JVM_OPTS).start()
                try:
                    kafka = phases(label, lambda body, key, topic=topic: producer.send(topic, value=body, key=key),
                                   lambda: producer.flush(60))
                finally:
                    source.stop()
                direct = Direct(servers[1].url + "/telemetry",
                                partitions if ordering == "ordered" else UNORDERED_IN_FLIGHT)
                try:  # paced at the same rate as through Kafka: the latencies compare
                    own = phases(f"{label}-direct", lambda body, key, d=direct: d.send(body), lambda: None,
                                 rate=kafka[2]["rate"])
                finally:
                    direct.close()
                if direct.errors:
                    raise RuntimeError(f"direct POSTs failed: {direct.errors[:5]}")
                results.append((label, kafka[0], own[0]))
                results.append((f"{label} paced {kafka[2]['rate']:.0f}/s", kafka[1], own[1]))
        print(f"{args.records} telemetry records over {args.queues} queues x 6 jobs per phase; Job producer -> Kafka"
              " -> KafkaSource dispatcher (eventing-kafka-broker v0.50.0) -> `telemetry` -> SQLite state,")
        print(f"beside the same records POSTed straight to `telemetry` (connections: partitions when ordered, "
              f"{UNORDERED_IN_FLIGHT} when unordered)")
        print(f"  {'delivery':<22}{'records/s':>10}{'p50 ms':>9}{'p99 ms':>9} | {'direct/s':>9}{'p50 ms':>9}"
              f"{'p99 ms':>9} | ratio")
        for label, k, d in results:
            ratio = "" if "paced" in label else f"{k['throughput'] / d['throughput']:.2f}x"
            print(f"  {label:<22}{k['throughput']:>10.0f}{k['p50']:>9.1f}{k['p99']:>9.1f} | {d['throughput']:>9.0f}"
                  f"{d['p50']:>9.1f}{d['p99']:>9.1f} | {ratio}")
        print("  burst rows: everything sent at once (records/s = throughput; latency includes the backlog);"
              " paced rows: both sent at half the Kafka burst rate (compare latencies);")
        print("  latency: send -> records_written visible in the state (polled every ~2 ms)")
        return 0
    finally:
        watcher.stop.set()
        producer.close(5)
        for server in servers:
            server.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
