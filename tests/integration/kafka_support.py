"""Helpers for the integration tests against the real Kafka broker (marker ``kafka``).

A ``KafkaStack`` is one test's view of a broker: its own topics (unique names), the
functions as a real functions-framework process (target ``all``) configured for Kafka,
KafkaSource stand-ins delivering ``queue-control`` to it, and a simulated Job that
writes telemetry the way Jobs do (plain JSON, or a CloudEvent in Kafka binary mode).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage, from_binary, to_binary
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared import constants
from shared.config import KafkaSettings
from shared.examples import load
from shared.kafka_source import KafkaSourceAdapter
from tests.infra.kafka_broker import KafkaBroker
from tests.servers import FunctionServer, base_env
from tests.waiting import wait_until


class AdapterThread:
    """A KafkaSourceAdapter running in a background thread, with HTTP status counts."""

    def __init__(self, adapter: KafkaSourceAdapter) -> None:
        self.adapter = adapter
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"adapter-{adapter.group}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.adapter.run(self._stop)
        except BaseException as e:  # surfaced by check()
            self.error = e

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"adapter crashed: {self.error!r}") from self.error

    def wait_handled(self, n: int, timeout: float = 60.0) -> None:
        """Until `n` records were delivered or dead-lettered."""
        def done() -> bool:
            self.check()
            return self.adapter.delivered + self.adapter.dead_lettered >= n
        wait_until(f"{n} records handled by {self.adapter.group} (now {self.adapter.delivered} delivered, "
                   f"{self.adapter.dead_lettered} dead-lettered)", done, timeout)

    def stop(self) -> None:
        self._stop.set()
        self.adapter.stop()
        self._thread.join(30)
        self.adapter.close()


@dataclass
class Job:
    """A simulated Job: reports telemetry on queue-control, keyed by queue id."""

    producer: KafkaProducer
    topic: str
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def report(self, mode: str, queue_id: str, job_id: str, status: str, records: int, **extra: Any) -> Any:
        body = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": status,
                "records_written": records, **extra}
        self.sent.append((mode, body))
        return self.send(mode, body)

    def send(self, mode: str, body: dict[str, Any]) -> Any:
        key = body["queue_id"].encode()
        if mode == "json":
            return self.producer.send(self.topic, value=json.dumps(body).encode(), key=key)
        assert mode == "cloudevent"
        event = CloudEvent({"type": constants.CE_TELEMETRY, "source": f"/jobs/{body['job_id']}",
                            "id": f"{body['job_id']}/{body['status']}/{body['records_written']}",
                            "subject": body["queue_id"], "datacontenttype": "application/json"}, body)
        msg = to_binary(event)
        return self.producer.send(self.topic, value=msg.value, key=key, headers=list(msg.headers.items()))

    def flush(self, timeout: float = 60) -> None:
        self.producer.flush(timeout=timeout)


def plan_for(jobs: list[dict[str, Any]], seed: int) -> dict[str, list[tuple[str, int]]]:
    """Per job id, the reports it makes: two `loading` with running totals, then `finished`."""
    plan = {}
    for i, job in enumerate(jobs):
        final = 300 + 37 * i + seed
        plan[job["id"]] = [("loading", final // 3), ("loading", 2 * final // 3), ("finished", final)]
    return plan


def read_records(cfg: dict[str, Any], topic: str, until: Callable[[list[Any]], bool] | None = None,
                 timeout: float = 30.0, idle: float = 1.0) -> list[Any]:
    """Every record of `topic` from the beginning (no group): until `until(records)`, or, without
    it, until nothing new came for `idle` seconds."""
    consumer = KafkaConsumer(**cfg, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        parts = wait_until(f"partitions of {topic}", lambda: consumer.partitions_for_topic(topic), 30)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline, quiet_since = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            got = [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
            records.extend(got)
            if got:
                quiet_since = time.monotonic()
            if until is not None and until(records):
                return records
            if until is None and time.monotonic() - quiet_since >= idle:
                return records
        if until is not None:
            raise AssertionError(f"timed out reading {topic}: {len(records)} records")
        return records
    finally:
        consumer.close()


def as_event(record: Any) -> CloudEvent:
    """A record of queue-events/queue-control as a CloudEvent (the SDK's Kafka binary binding)."""
    return from_binary(KafkaMessage(headers=dict(record.headers or []), key=record.key, value=record.value))


class KafkaStack:
    def __init__(self, broker: KafkaBroker, tmp: Path, partitions: int = 3) -> None:
        self.broker = broker
        self.tmp = tmp
        tag = uuid.uuid4().hex[:8]
        self.control, self.events, self.dlq = f"queue-control-{tag}", f"queue-events-{tag}", f"queue-dlq-{tag}"
        for topic in (self.control, self.events, self.dlq):
            broker.create_topic(topic, partitions, exist_ok=True)
        self.local_dir = tmp / "local"
        self.servers: list[FunctionServer] = []
        self.adapters: list[AdapterThread] = []
        self.producers: list[KafkaProducer] = []

    # -- configuration ----------------------------------------------------------------------

    def settings(self, user: str | None = None, password: str | None = None, **kw: Any) -> KafkaSettings:
        if self.broker.sasl:
            user = user or next(iter(self.broker.users))
            password = self.broker.users[user] if password is None else password
            kw.update(user=user, password=password, sasl_mechanism=self.broker.sasl)
        return KafkaSettings(bootstrap_servers=self.broker.bootstrap_servers, control_topic=self.control,
                             events_topic=self.events, **kw)

    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings()
        env = {"KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers, "QUEUE_CONTROL_TOPIC": self.control,
               "QUEUE_EVENTS_TOPIC": self.events}
        if s.user:
            env.update(KAFKA_USER=s.user, KAFKA_PASSWORD=s.password, KAFKA_SASL_MECHANISM=s.sasl_mechanism)
        env.update(extra)
        return base_env(self.local_dir, **env)

    # -- parts ----------------------------------------------------------------------------------

    def functions(self, target: str = "all", **extra: str) -> FunctionServer:
        server = FunctionServer(target, self.env(**extra), self.tmp)
        self.servers.append(server)
        return server.start()

    def adapter(self, sink: str, group: str | None = None, settings: KafkaSettings | None = None,
                **kw: Any) -> AdapterThread:
        kw.setdefault("dead_letter_topic", self.dlq)
        kw.setdefault("backoff_delay", 0.05)
        adapter = KafkaSourceAdapter(settings or self.settings(), self.control, sink,
                                     group=group or f"telemetry-{uuid.uuid4().hex[:6]}", **kw)
        thread = AdapterThread(adapter)
        self.adapters.append(thread)
        return thread

    def job(self, **kw: Any) -> Job:
        producer = KafkaProducer(**self.broker.client_config(), acks="all", enable_idempotence=True,
                                 linger_ms=5, reconnect_backoff_max_ms=500, **kw)
        self.producers.append(producer)
        return Job(producer, self.control)

    def read(self, topic: str, **kw: Any) -> list[Any]:
        return read_records(self.broker.internal_client_config(), topic, **kw)

    # -- state ----------------------------------------------------------------------------------

    def stored(self, queue_id: str) -> tuple[int, str]:
        """(revision, document) of a queue straight from the functions' SQLite store."""
        db = sqlite3.connect(f"file:{self.local_dir / 'state.db'}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute("SELECT rev, doc FROM queue_state WHERE key = ?", (queue_id,)).fetchone()
        finally:
            db.close()
        assert row is not None, f"queue {queue_id} not stored"
        return int(row[0]), str(row[1])

    def close(self) -> None:
        for thread in self.adapters:
            with contextlib.suppress(Exception):
                thread.stop()
        for producer in self.producers:
            with contextlib.suppress(Exception):
                producer.close(timeout=5)
        for server in self.servers:
            if server.proc is not None:
                server.stop()


def get_raw(server: FunctionServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_queue(server: FunctionServer, payload: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    code, body = server.call("POST", "/queues/start", payload,
                             headers={"Idempotency-Key": key} if key else None)
    assert code == 200, body
    return body["data"]


def wait_status(server: FunctionServer, queue_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        code, body = server.call("GET", f"/queues/{queue_id}")
        assert code == 200, body
        return body["data"] if body["data"]["status"] == status else None
    return wait_until(f"queue {queue_id} {status}", check, timeout, interval=0.2)


@dataclass
class Seeded:
    server: FunctionServer
    adapter: AdapterThread
    job: Job
    queues: list[tuple[dict[str, Any], dict[str, list[tuple[str, int]]]]]


def run_seed_pipelines(stack: KafkaStack) -> Seeded:
    """Start both seed examples, report every job's telemetry (historical as plain JSON,
    realtime as binary-mode CloudEvents), wait until both queues are finished."""
    server = stack.functions()
    adapter = stack.adapter(server.url + "/telemetry")
    job = stack.job()
    queues = []
    for name, mode, seed in (("historical", "json", 1), ("realtime", "cloudevent", 5)):
        started = start_queue(server, load(name), key=f"{name}-{stack.control}")
        queues.append((started, plan_for(started["jobs"], seed), mode))
    for step in range(3):  # every job's first report, then every job's second, then `finished`
        for started, plan, mode in queues:
            for job_id, reports in plan.items():
                status, records = reports[step]
                job.report(mode, started["queue_id"], job_id, status, records,
                           last_loaded_timestamp=f"2024-06-0{step + 1}T00:00:00Z")
    job.flush()
    for started, _, _ in queues:
        wait_status(server, started["queue_id"], "finished")
    adapter.wait_handled(len(job.sent))
    return Seeded(server, adapter, job, [(started, plan) for started, plan, _ in queues])
