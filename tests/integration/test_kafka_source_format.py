"""What Knative's KafkaSource dispatcher (the real one, contract from
eventing/kafka-source.yaml) sends to ``telemetry`` for each way a Job may write a record,
and that the telemetry is applied in every case; how it spreads partitions (in parallel,
in order within each, or not in order with ``ordering: unordered``); and that
tests/factories.kafka_source_event, the imitation the in-process unit tests use, builds
the same request as the real dispatcher for the same records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kafka import KafkaProducer

from shared.core import constants
from shared.examples import load
from tests.factories import kafka_source_event
from tests.integration.kafka_support import (
    Exchange,
    KafkaStack,
    RecordingProxy,
    run_seed_pipelines,
    start_queue,
    wait_status,
)

pytestmark = pytest.mark.kafka
NOT_FROM_THE_RECORD = {"user-agent", "host", "content-length"}


def one_job_queue(server: Any, key: str) -> tuple[str, str]:
    started = start_queue(server, {**load("legacy"), "allow_overlap": True}, key=key)
    return started["queue_id"], started["jobs"][0]["id"]


def request_for(source: Any, queue_id: str) -> Exchange:
    """The one request the dispatcher made for `queue_id`'s record (keyed by queue id)."""
    mine = [ex for ex in source.proxy.requests() if ex.headers.get("ce-partitionkey") == queue_id
            or queue_id.encode() in ex.body]
    assert len(mine) == 1, [(ex.headers, ex.body) for ex in mine]
    return mine[0]


def test_every_record_format_reaches_telemetry(kafka_stack: KafkaStack) -> None:
    server = kafka_stack.functions()
    source = kafka_stack.source(server.url + "/telemetry")
    job = kafka_stack.job()
    modes = ["json", "json+ct", "cloudevent", "structured+ct"]
    queues = {mode: one_job_queue(server, f"format-{mode}") for mode in modes}
    for mode, (queue_id, job_id) in queues.items():
        job.report(mode, queue_id, job_id, "finished", 40 + len(mode))
    job.flush()
    for mode, (queue_id, _) in queues.items():
        assert wait_status(server, queue_id, "finished")["records_written"] == 40 + len(mode), mode
    assert set(source.proxy.statuses) == {200}, source.proxy.statuses

    for mode, (queue_id, job_id) in queues.items():
        ex = request_for(source, queue_id)
        h = ex.headers
        assert h["prefer"] == "reply" and h["kn-namespace"] == "streamforge", h
        assert h["ce-specversion"] == "1.0" and "ce-knativekafkaoffset" in h and "ce-knativekafkapartition" in h
        if mode.startswith("json"):  # not a CloudEvent: wrapped, the value as data
            assert h["ce-type"] == constants.CE_KAFKA_RECORD
            assert h["ce-source"] == f"/apis/v1/namespaces/streamforge/kafkasources/queue-control-telemetry" \
                                     f"#{kafka_stack.control}"
            assert h["ce-key"] == h["ce-partitionkey"] == queue_id
            assert json.loads(ex.body)["queue_id"] == queue_id
            if mode == "json":
                assert "content-type" not in h, "the dispatcher invents no content-type"
            else:
                assert h["content-type"] == "application/json"
        else:  # a CloudEvent (binary, or structured with its content-type): its own attributes, in binary mode
            assert h["ce-type"] == constants.CE_TELEMETRY and h["ce-id"].startswith(f"{job_id}/finished/")
            assert h["ce-source"] == f"/jobs/{job_id}" and h["ce-subject"] == queue_id
            assert h["content-type"] == "application/json" and "ce-key" not in h
            assert json.loads(ex.body)["queue_id"] == queue_id


def test_structured_json_without_its_content_type_is_applied(kafka_stack: KafkaStack) -> None:
    """A Job that writes a structured-mode CloudEvent as the value but no
    ``content-type: application/cloudevents+json`` header: the dispatcher does not take it for
    a CloudEvent and wraps it; telemetry must read the event inside and apply it, not take
    the wrapper for "not telemetry" and drop it with a 200."""
    server = kafka_stack.functions()
    source = kafka_stack.source(server.url + "/telemetry")
    queue_id, job_id = one_job_queue(server, "structured")
    job = kafka_stack.job()
    job.report("structured", queue_id, job_id, "loading", 5)
    job.report("structured", queue_id, job_id, "finished", 77)
    job.flush()
    source.proxy.wait_requests(2)
    wrapped = source.proxy.requests()[0]
    assert wrapped.headers["ce-type"] == constants.CE_KAFKA_RECORD, "the real dispatcher wraps it"
    assert json.loads(wrapped.body)["specversion"] == "1.0" and "content-type" not in wrapped.headers
    assert wait_status(server, queue_id, "finished", timeout=30)["records_written"] == 77
    answers = [json.loads(ex.response) for ex in source.proxy.requests()]
    assert [a["data"]["outcome"] for a in answers] == ["applied", "applied"], answers


def test_structured_json_that_is_no_valid_event_is_dead_lettered(kafka_stack: KafkaStack) -> None:
    """Looks structured (the four attributes) but is not a valid event: a 400, so it ends in
    the dead letters with the reason, rather than being acknowledged as "not telemetry"."""
    server = kafka_stack.functions()
    manifest = kafka_stack.source_manifest()
    manifest["spec"]["delivery"].update(retry=1, backoffDelay="PT0.05S")  # changed: a short delivery
    source = kafka_stack.source(server.url + "/telemetry", manifest)
    job = kafka_stack.job()
    bad = {"specversion": "0.1", "id": "x", "source": "/jobs/x", "type": constants.CE_TELEMETRY, "data": {}}
    job.producer.send(kafka_stack.control, json.dumps(bad).encode(), key=b"q").get(30)
    dead = kafka_stack.read(kafka_stack.dlq, until=lambda rs: len(rs) >= 1)
    headers = dict(dead[0].headers)
    assert headers["ce_knativeerrorcode"] == b"400" and json.loads(dead[0].value) == bad
    assert source.proxy.statuses == {400: 1}, "a 400 is final"


def spread(stack: KafkaStack, partitions: int, per_partition: int) -> None:
    producer = KafkaProducer(**stack.broker.client_config(), acks="all")
    try:
        for n in range(per_partition):
            for p in range(partitions):
                producer.send(stack.control, json.dumps({"p": p, "n": n}).encode(), partition=p)
        producer.flush(30)
    finally:
        producer.close()


def overlaps(exchanges: list[Exchange]) -> int:
    """The most requests that were in flight at once."""
    edges = sorted([(ex.at, 1) for ex in exchanges] + [(ex.done, -1) for ex in exchanges])
    now = most = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


@pytest.mark.parametrize("ordering", ["ordered", "unordered"])
def test_partitions_in_parallel_in_order_within_each(kafka_stack: KafkaStack, ordering: str) -> None:
    """`ordering` is the manifest's (ordered); the unordered case changes the parsed manifest."""
    slow = RecordingProxy(status=200, delay=0.3)
    kafka_stack.proxies.append(slow)
    manifest = kafka_stack.source_manifest()
    assert manifest["spec"]["ordering"] == "ordered"
    manifest["spec"]["ordering"] = ordering
    kafka_stack.source(slow.url, manifest, record=False)
    spread(kafka_stack, partitions=3, per_partition=4)
    exchanges = slow.wait_requests(12, timeout=60)
    by_partition: dict[int, list[Exchange]] = {}
    for ex in exchanges:
        by_partition.setdefault(int(ex.headers["ce-knativekafkapartition"]), []).append(ex)
    assert sorted(by_partition) == [0, 1, 2]
    assert overlaps(exchanges) >= 2, "partitions are delivered in parallel"
    for p, exs in by_partition.items():
        offsets = [int(ex.headers["ce-knativekafkaoffset"]) for ex in exs]
        if ordering == "ordered":
            assert offsets == sorted(offsets), f"partition {p} out of order: {offsets}"
            assert overlaps(exs) == 1, f"partition {p}: a record sent before the previous one was answered"
        else:
            assert overlaps(exs) > 1, f"unordered, yet partition {p} went one record at a time"


def test_unordered_delivery_still_gives_exact_counts(kafka_stack: KafkaStack) -> None:
    """The seed pipelines with ``ordering: unordered`` (changed on the parsed manifest): the
    reports of one job may arrive in any order; the totals must still be exact."""
    manifest = kafka_stack.source_manifest()
    manifest["spec"]["ordering"] = "unordered"
    seeded = run_seed_pipelines(kafka_stack, manifest)
    for started, plan in seeded.queues:
        code, body = seeded.server.call("GET", f"/queues/{started['queue_id']}")
        assert code == 200 and body["data"]["status"] == "finished"
        assert body["data"]["records_written"] == sum(r[-1][1] for r in plan.values())


def test_the_factory_builds_what_the_real_dispatcher_sends(kafka_stack: KafkaStack) -> None:
    sink = RecordingProxy(status=202)
    kafka_stack.proxies.append(sink)
    kafka_stack.source(sink.url, record=False)
    producer = KafkaProducer(**kafka_stack.broker.client_config(), acks="all")
    records: list[dict[str, Any]] = [
        {"value": {"type": "telemetry", "queue_id": "q-1"}, "key": "q-1", "headers": [], "partition": 0},
        {"value": {"type": "telemetry", "queue_id": "q-2"}, "key": "q-2",
         "headers": [("content-type", b"application/json"), ("X-Trace", b"abc")], "partition": 1},
        {"value": {"n": 3}, "key": None, "headers": [("trace_id", b"t-1")], "partition": 2},
        {"value": b"not json at all", "key": "k", "headers": [], "partition": 0},
        {"value": {"n": 5}, "key": "t", "headers": [], "partition": 1, "timestamp_ms": 1717200000000},
        {"value": {"n": 6}, "key": "t", "headers": [], "partition": 1, "timestamp_ms": 1717200000250},
    ]
    try:
        for r in records:
            value = r["value"] if isinstance(r["value"], bytes) else json.dumps(r["value"]).encode()
            meta = producer.send(kafka_stack.control, value, key=r["key"] and r["key"].encode(),
                                 headers=r["headers"], partition=r["partition"],
                                 timestamp_ms=r.get("timestamp_ms")).get(30)
            r.update(offset=meta.offset, timestamp=meta.timestamp)
    finally:
        producer.close()
    got = sink.wait_requests(len(records))
    for r in records:
        real = next(ex for ex in got if ex.headers["ce-id"] == f"partition:{r['partition']}/offset:{r['offset']}")
        headers, body = kafka_source_event(r["value"], topic=kafka_stack.control, partition=r["partition"],
                                           offset=r["offset"], key=r["key"], headers=r["headers"],
                                           timestamp_ms=r["timestamp"])
        sent = {k: v for k, v in real.headers.items() if k not in NOT_FROM_THE_RECORD}
        assert headers == sent, f"for {r}"
        assert body == real.body


def test_a_rewritten_contract_is_picked_up_without_a_restart(kafka_stack: KafkaStack) -> None:
    """The harness' ``update()``: the dispatcher watches its contract file (as it watches the
    ConfigMap volume in a cluster); a new sink address takes effect while it runs."""
    first, second = RecordingProxy(status=200), RecordingProxy(status=200)
    kafka_stack.proxies += [first, second]
    source = kafka_stack.source(first.url, record=False)
    producer = KafkaProducer(**kafka_stack.broker.client_config(), acks="all")
    try:
        producer.send(kafka_stack.control, b'{"n": 1}', partition=0).get(30)
        first.wait_requests(1)
        contract = source.dispatcher.contract
        contract["resources"][0]["egresses"][0]["destination"] = second.url
        pid = source.dispatcher.pid
        source.dispatcher.update(contract)
        source.dispatcher.wait_egress(source.group, count=2)  # the egress was re-created, and has partitions
        producer.send(kafka_stack.control, b'{"n": 2}', partition=0).get(30)
        (ex,) = second.wait_requests(1)
    finally:
        producer.close()
    assert ex.body == b'{"n": 2}' and len(first.requests()) == 1
    assert source.dispatcher.pid == pid and source.dispatcher.is_running()
