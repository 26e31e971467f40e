"""Telemetry deliveries that keep failing end on the dead-letter topic, with the error
extensions Knative's Kafka data plane adds, and the KafkaSource stand-in moves on: the
records after them are delivered and the group's offsets are committed past them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from shared import constants
from shared.examples import load
from tests.integration.kafka_support import KafkaStack, as_event, start_queue, wait_status, wait_until

pytestmark = pytest.mark.kafka


def committed_to_the_end(stack: KafkaStack, group: str) -> None:
    """Until the group's committed offsets on queue-control equal the topic's end offsets."""
    consumer = KafkaConsumer(**stack.broker.internal_client_config(), group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(stack.control, p) for p in consumer.partitions_for_topic(stack.control)]
        ends = {tp: o for tp, o in consumer.end_offsets(tps).items() if o}
        wait_until(f"group {group} committed up to {ends}",
                   lambda: all(consumer.committed(tp) == end for tp, end in ends.items()), timeout=30, interval=0.2)
    finally:
        consumer.close()


def queue_with_job(stack: KafkaStack, key: str) -> tuple[Any, str, str]:
    server = stack.functions()
    started = start_queue(server, load("legacy"), key=key)
    return server, started["queue_id"], started["jobs"][0]["id"]


def test_rejected_telemetry_is_dead_lettered_with_the_reason(kafka_stack: KafkaStack) -> None:
    server, queue_id, job_id = queue_with_job(kafka_stack, "dead-letters")
    sink = server.url + "/telemetry"
    adapter = kafka_stack.adapter(sink, group="dlq-rejected", retries=3)
    job = kafka_stack.job()
    telemetry = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id}
    negative = {**telemetry, "status": "loading", "records_written": -5}   # fails validation
    unknown = {**telemetry, "status": "exploded", "records_written": 5}     # an unknown status word
    job.send("json", negative)
    job.send("cloudevent", unknown)
    job.send("json", {**telemetry, "status": "finished", "records_written": 77})
    job.flush()

    assert wait_status(server, queue_id, "finished")["records_written"] == 77
    adapter.wait_handled(3)
    stats = adapter.adapter
    assert (stats.delivered, stats.dead_lettered) == (1, 2)
    assert stats.statuses[422] == 2, f"a 422 is final, never retried: {stats.statuses}"
    committed_to_the_end(kafka_stack, "dlq-rejected")

    dead = kafka_stack.read(kafka_stack.dlq, until=lambda rs: len(rs) >= 2)
    assert len(dead) == 2
    for record, sent, field, ce_type in ((dead[0], negative, "records_written", constants.CE_KAFKA_RECORD),
                                         (dead[1], unknown, "status", constants.CE_TELEMETRY)):
        event = as_event(record)
        assert record.key == queue_id.encode(), "dead letters keep the record's key"
        assert event["type"] == ce_type and event.data == sent
        assert event["knativeerrordest"] == sink
        assert event["knativeerrorcode"] == "422"
        reply = json.loads(base64.b64decode(event["knativeerrordata"]))
        assert reply["status"] == "error" and field in json.dumps(reply["errors"]), reply
    first = as_event(dead[0])
    assert first["id"].startswith("partition:") and first["source"].endswith(f"#{kafka_stack.control}")


def test_undeliverable_telemetry_is_dead_lettered_when_the_function_is_down(kafka_stack: KafkaStack) -> None:
    server, queue_id, job_id = queue_with_job(kafka_stack, "nobody-home")
    server.stop()
    sink = server.url + "/telemetry"
    adapter = kafka_stack.adapter(sink, group="dlq-down", retries=2, backoff_delay=0.05)
    job = kafka_stack.job()
    for n in (10, 20):
        job.report("json", queue_id, job_id, "loading", n)
    job.flush()

    adapter.wait_handled(2)
    stats = adapter.adapter
    assert (stats.delivered, stats.dead_lettered) == (0, 2)
    assert stats.statuses[None] == 2 * 3, f"each record: one attempt and two retries: {stats.statuses}"
    committed_to_the_end(kafka_stack, "dlq-down")
    dead = kafka_stack.read(kafka_stack.dlq, until=lambda rs: len(rs) >= 2)
    for record, n in zip(dead, (10, 20), strict=True):
        event = as_event(record)
        assert event.data["records_written"] == n and event["knativeerrordest"] == sink
        attributes = event.get_attributes()
        assert "knativeerrorcode" not in attributes and "knativeerrordata" not in attributes, \
            "no response, so no code or body (as Knative's data plane)"
