"""Helpers for the integration tests against the real Kafka broker (marker ``kafka``).

A ``KafkaStack`` is one test's view of a broker: its own topics (unique names), the
functions as a real functions-framework process (target ``all``) configured for Kafka,
Knative's own KafkaSource dispatcher (tests/infra/dataplane) delivering ``queue-control``
to them with the contract rendered from eventing/kafka-source.yaml, the real KafkaSink
receiver for ``queue-control-dlq`` (eventing/kafka-sinks.yaml) as its dead-letter sink, and
a simulated Job that writes telemetry the way Jobs do (plain JSON, or a CloudEvent in
Kafka binary mode).

What the stack changes in the parsed manifests, so that tests can share one broker: the
topic names get the test's suffix (``queue-control-<tag>`` ...) and the KafkaSource's
consumer group too; addresses are the local ones (contract.py). Anything else a test
changes (a shorter ``delivery``, ``ordering: unordered``) it changes itself, on the parsed
manifest, and says so.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import http.client
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage, from_binary, to_binary
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared.core import constants
from shared.core.config import KafkaSettings
from shared.examples import load
from tests.infra.dataplane import contract as dpc
from tests.infra.dataplane.knative import Dispatcher, Receiver
from tests.infra.kafka_broker import KafkaBroker
from tests.servers import FunctionServer, base_env
from tests.waiting import wait_until

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "content-length"})


@dataclass
class Exchange:
    """One request a RecordingProxy got, and what it answered (status None: no response)."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    response: bytes = b""
    at: float = 0.0
    done: float = 0.0


class RecordingProxy:
    """A tiny local HTTP server in front of a sink: records every request the data plane
    makes (headers as sent, lower-cased names) and forwards it to `target`, or, without a
    target, answers `status` itself (after `delay` seconds). When the target does not answer,
    the proxy closes the connection without a response, as a dead sink would."""

    def __init__(self, target: str | None = None, status: int = 202, delay: float = 0.0) -> None:
        self.target = target
        self.status = status
        self.delay = delay
        #: called with each Exchange before it is forwarded (a test's hook into the stream)
        self.before: Callable[[Exchange], None] | None = None
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length") or 0)
                ex = Exchange(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n),
                              at=time.monotonic())
                with proxy._lock:
                    proxy.exchanges.append(ex)
                if proxy.before is not None:
                    proxy.before(ex)
                answer = proxy._forward(ex)
                ex.done = time.monotonic()
                if answer is None:
                    self.close_connection = True
                    return
                ex.status, headers, ex.response = answer
                self.send_response(ex.status)
                for k, v in headers:
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("content-length", str(len(ex.response)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the data plane gave up waiting (or stopped)
                    self.wfile.write(ex.response)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-proxy", daemon=True)
        self._thread.start()

    def _forward(self, ex: Exchange) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if self.target is None:
            time.sleep(self.delay)
            return self.status, [], b""
        parts = urllib.parse.urlsplit(self.target)
        path = (parts.path.rstrip("/") + ex.path) if ex.path != "/" else (parts.path or "/")
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.request("POST", path, body=ex.body,
                         headers={k: v for k, v in ex.headers.items() if k not in HOP_BY_HOP})
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    @property
    def statuses(self) -> collections.Counter[int | None]:
        with self._lock:
            return collections.Counter(ex.status for ex in self.exchanges)

    def requests(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)

    def wait_requests(self, n: int, timeout: float = 60.0) -> list[Exchange]:
        """Until `n` requests came and were answered (or given up on)."""
        def answered() -> list[Exchange] | None:
            got = self.requests()
            return got if len(got) >= n and all(ex.done for ex in got) else None
        return wait_until(f"{n} requests at {self.url} (have {len(self.exchanges)})", answered, timeout,
                          interval=0.05)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Job:
    """A simulated Job: reports telemetry on queue-control, keyed by queue id.

    Modes: ``json`` (plain JSON, no headers), ``json+ct`` (plain JSON with a
    ``content-type: application/json`` header), ``cloudevent`` (Kafka binary mode),
    ``structured`` (a structured-mode CloudEvent envelope as the value, *without* the
    ``application/cloudevents+json`` content-type header) and ``structured+ct`` (with it)."""

    producer: KafkaProducer
    topic: str
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def report(self, mode: str, queue_id: str, job_id: str, status: str, records: int, **extra: Any) -> Any:
        body = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": status,
                "records_written": records, **extra}
        self.sent.append((mode, body))
        return self.send(mode, body)

    @staticmethod
    def event(body: dict[str, Any]) -> CloudEvent:
        return CloudEvent({"type": constants.CE_TELEMETRY, "source": f"/jobs/{body['job_id']}",
                           "id": f"{body['job_id']}/{body['status']}/{body['records_written']}",
                           "subject": body["queue_id"], "datacontenttype": "application/json"}, body)

    def send(self, mode: str, body: dict[str, Any], key: bytes | None = None) -> Any:
        key = body["queue_id"].encode() if key is None else key
        if mode in ("json", "json+ct"):
            headers = [("content-type", b"application/json")] if mode == "json+ct" else []
            return self.producer.send(self.topic, value=json.dumps(body).encode(), key=key, headers=headers)
        if mode in ("structured", "structured+ct"):
            event = self.event(body)
            envelope = {**event.get_attributes(), "data": body}
            headers = [("content-type", b"application/cloudevents+json")] if mode == "structured+ct" else []
            return self.producer.send(self.topic, value=json.dumps(envelope).encode(), key=key, headers=headers)
        assert mode == "cloudevent", mode
        msg = to_binary(self.event(body))
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


def assert_finished_as_planned(server: FunctionServer, queue_id: str, plan: dict[str, list[tuple[str, int]]],
                               timeout: float = 120) -> dict[str, Any]:
    """The queue finished, each job with the last count its plan reported, the queue with their sum."""
    queue = wait_status(server, queue_id, "finished", timeout=timeout)
    for j in queue["jobs"]:
        assert j["status"] == "finished" and j["records_written"] == plan[j["id"]][-1][1], j
    assert queue["records_written"] == sum(r[-1][1] for r in plan.values())
    return queue


def assert_started_event(broker: KafkaBroker, queue_id: str, topic: str = "queue-events") -> None:
    """The queue's `started` event is on `topic` (keyed by the queue id), within 30 s."""
    consumer = KafkaConsumer(**broker.client_config(), enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert parts, f"no {topic} topic"
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        types: list[str] = []
        deadline = time.monotonic() + 30
        while constants.CE_QUEUE_STARTED not in types and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                types += [dict(r.headers)["ce_type"].decode() for r in records if r.key == queue_id.encode()]
    finally:
        consumer.close()
    assert constants.CE_QUEUE_STARTED in types, types


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



class Source:
    """One KafkaSource as the real dispatcher runs it: its contract, the process, and the
    proxy recording what the dispatcher sent to the sink (None if the sink is direct)."""

    def __init__(self, stack: KafkaStack, manifest: dict[str, Any], dispatcher: Dispatcher,
                 proxy: RecordingProxy | None) -> None:
        self.stack = stack
        self.manifest = manifest
        self.dispatcher = dispatcher
        self.proxy = proxy
        self.group = manifest["spec"]["consumerGroup"]

    def committed(self) -> dict[int, int | None]:
        return self.stack.committed(self.group)

    def wait_committed(self, timeout: float = 60.0) -> None:
        """Until the group's committed offsets on queue-control reach the topic's end offsets
        (the dispatcher commits what it handled every auto.commit.interval.ms, 5 s)."""
        self.stack.wait_committed(self.group, timeout)

    def stop(self) -> None:
        self.dispatcher.stop()


class KafkaStack:
    def __init__(self, broker: KafkaBroker, tmp: Path, partitions: int = 3, *,
                 auth: dpc.LocalAuth | None = None, kubeconfig: Path | None = None,
                 namespace: str = dpc.NAMESPACE) -> None:
        """`auth`, `kubeconfig`: for a SASL broker, the Secret the data plane reads (created by
        the test in `namespace` on the control plane `kubeconfig` points at)."""
        self.broker = broker
        self.tmp = tmp
        self.tag = tag = uuid.uuid4().hex[:8]
        self.control, self.events, self.dlq = f"queue-control-{tag}", f"queue-events-{tag}", f"queue-dlq-{tag}"
        for topic in (self.control, self.events):
            broker.create_topic(topic, partitions, exist_ok=True)
        # The KafkaSink controller creates its topic with the manifest's numPartitions.
        broker.create_topic(self.dlq, int(self.dlq_manifest()["spec"]["numPartitions"]), exist_ok=True)
        self.local_dir = tmp / "local"
        self.auth = auth or dpc.LocalAuth()
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.servers: list[FunctionServer] = []
        self.sources: list[Source] = []
        self.receivers: list[Receiver] = []
        self.proxies: list[RecordingProxy] = []
        self.producers: list[KafkaProducer] = []
        self._dlq_receiver: Receiver | None = None

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

    # -- manifests --------------------------------------------------------------------------

    def source_manifest(self) -> dict[str, Any]:
        """eventing/kafka-source.yaml's KafkaSource, parsed, with this stack's topic and group."""
        source = copy.deepcopy(dpc.manifest("kafka-source.yaml", "KafkaSource"))
        assert source["spec"]["topics"] == ["queue-control"], source["spec"]["topics"]
        source["spec"]["topics"] = [self.control]
        source["spec"]["consumerGroup"] = f"{source['spec']['consumerGroup']}-{self.tag}"
        return source

    def dlq_manifest(self) -> dict[str, Any]:
        """eventing/kafka-sinks.yaml's KafkaSink that the KafkaSource dead-letters to, with this
        stack's topic."""
        ref = dpc.manifest("kafka-source.yaml", "KafkaSource")["spec"]["delivery"]["deadLetterSink"]["ref"]
        assert ref["kind"] == "KafkaSink", ref
        sink = copy.deepcopy(dpc.manifest("kafka-sinks.yaml", "KafkaSink", ref["name"]))
        sink["spec"]["topic"] = self.dlq
        return sink

    # -- parts ----------------------------------------------------------------------------------

    def functions(self, target: str = "all", **extra: str) -> FunctionServer:
        server = FunctionServer(target, self.env(**extra), self.tmp)
        self.servers.append(server)
        return server.start()

    def dead_letter_sink(self) -> Receiver:
        """The real KafkaSink receiver for queue-control-dlq (started once per stack)."""
        if self._dlq_receiver is None:
            sink = self.dlq_manifest()
            contract = dpc.sink_contract([sink], bootstrap_servers=self.broker.bootstrap_servers, auth=self.auth,
                                         namespace=self.namespace)
            receiver = Receiver("sink", contract, self.broker, self.tmp, kubeconfig=self.kubeconfig)
            self.receivers.append(receiver)
            receiver.start()
            receiver.wait_ingress(dpc.ingress_path(sink, self.namespace))
            self._dlq_receiver = receiver
        return self._dlq_receiver

    def dead_letter_url(self) -> str:
        return self.dead_letter_sink().url + dpc.ingress_path(self.dlq_manifest(), self.namespace)

    def source(self, sink: str, manifest: dict[str, Any] | None = None, *, record: bool = True,
               dead_letter: str | None = None, wait: float = 60.0) -> Source:
        """The real KafkaSource dispatcher for `manifest` (default: ``source_manifest()``),
        its sink (``Service/queue-telemetry``) resolved to `sink` (through a RecordingProxy
        unless ``record=False``), its dead-letter KafkaSink to the real receiver (or to
        `dead_letter`). Returns once its consumer has partitions (DataPlaneError after
        `wait` seconds)."""
        manifest = manifest or self.source_manifest()
        proxy = None
        if record:
            proxy = RecordingProxy(sink)
            self.proxies.append(proxy)
            sink = proxy.url
        ref = manifest["spec"]["sink"]["ref"]
        urls = {f"{ref['kind']}/{ref['name']}": sink}
        delivery = manifest["spec"].get("delivery") or {}
        if "deadLetterSink" in delivery:
            dls = delivery["deadLetterSink"]["ref"]
            urls[f"{dls['kind']}/{dls['name']}"] = dead_letter or self.dead_letter_url()
        contract = dpc.source_contract(manifest, bootstrap_servers=self.broker.bootstrap_servers, urls=urls,
                                       auth=self.auth, namespace=self.namespace)
        if manifest["spec"].get("initialOffset", "latest") == "latest":
            dpc.init_offsets_latest(self.broker.internal_client_config(), manifest["spec"]["topics"],
                                    manifest["spec"]["consumerGroup"])
        dispatcher = Dispatcher("source", contract, self.broker, self.tmp, kubeconfig=self.kubeconfig)
        src = Source(self, manifest, dispatcher, proxy)
        self.sources.append(src)
        dispatcher.start()
        dispatcher.wait_egress(manifest["spec"]["consumerGroup"], timeout=wait)
        return src

    def job(self, **kw: Any) -> Job:
        producer = KafkaProducer(**self.broker.client_config(), acks="all", enable_idempotence=True,
                                 linger_ms=5, reconnect_backoff_max_ms=500, **kw)
        self.producers.append(producer)
        return Job(producer, self.control)

    def read(self, topic: str, **kw: Any) -> list[Any]:
        return read_records(self.broker.internal_client_config(), topic, **kw)

    def committed(self, group: str) -> dict[int, int | None]:
        """The group's committed offset per partition of queue-control."""
        consumer = KafkaConsumer(**self.broker.internal_client_config(), group_id=group, enable_auto_commit=False)
        try:
            parts = consumer.partitions_for_topic(self.control) or set()
            return {p: consumer.committed(TopicPartition(self.control, p)) for p in sorted(parts)}
        finally:
            consumer.close()

    def end_offsets(self) -> dict[int, int]:
        consumer = KafkaConsumer(**self.broker.internal_client_config(), enable_auto_commit=False)
        try:
            tps = [TopicPartition(self.control, p) for p in sorted(consumer.partitions_for_topic(self.control))]
            return {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
        finally:
            consumer.close()

    def wait_committed(self, group: str, timeout: float = 60.0) -> None:
        ends = self.end_offsets()

        def done() -> bool:
            committed = self.committed(group)
            return all((committed.get(p) or 0) >= end for p, end in ends.items())

        wait_until(f"group {group} committed up to {ends}", done, timeout, interval=0.5)

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
        for src in self.sources:
            with contextlib.suppress(Exception):
                src.dispatcher.stop()
        for receiver in self.receivers:
            with contextlib.suppress(Exception):
                receiver.stop()
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                proxy.close()
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
    source: Source
    job: Job
    queues: list[tuple[dict[str, Any], dict[str, list[tuple[str, int]]]]]


def run_seed_pipelines(stack: KafkaStack, manifest: dict[str, Any] | None = None) -> Seeded:
    """Start both seed examples, report every job's telemetry (historical as plain JSON,
    realtime as binary-mode CloudEvents), wait until both queues are finished. `manifest`:
    the KafkaSource (default: the stack's ``source_manifest()``)."""
    server = stack.functions()
    source = stack.source(server.url + "/telemetry", manifest)
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
    source.wait_committed()
    return Seeded(server, source, job, [(started, plan) for started, plan, _ in queues])
