"""Telemetry deliveries that keep failing, through Knative's KafkaSource dispatcher and the
real KafkaSink receiver for ``queue-control-dlq`` (eventing/kafka-source.yaml's delivery,
with a shorter retry/backoff set on the parsed manifest so a test takes seconds, not the
manifest's ~7 minutes per record):

- rejected or undeliverable records end on the dead-letter topic with the error extensions
  the data plane adds, in the format the KafkaSink writes (binary mode; the key is the
  event's ``partitionkey``, so a record the dispatcher wrapped keeps its Kafka key and a
  CloudEvent without that extension gets none), and the records after them go on;
- when the dead-letter sink is down too, the record is lost: the dispatcher commits its
  offset anyway once the dead-letter attempts are used up, and never delivers it again.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from shared.core import constants
from shared.examples import load
from tests.infra.children import free_port
from tests.integration.kafka_support import (
    KafkaStack,
    RecordingProxy,
    as_event,
    start_queue,
    wait_status,
    wait_until,
)

pytestmark = pytest.mark.kafka
RETRY, BACKOFF = 2, "PT0.05S"


def short_delivery(stack: KafkaStack) -> dict[str, Any]:
    """The manifest's KafkaSource with `retry` and `backoffDelay` made short (changed here);
    policy and dead-letter sink as the manifest says."""
    manifest = stack.source_manifest()
    delivery = manifest["spec"]["delivery"]
    assert delivery["deadLetterSink"]["ref"] == {"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "KafkaSink",
                                                 "name": "queue-control-dlq"}
    delivery.update(retry=RETRY, backoffDelay=BACKOFF)
    return manifest


def queue_with_job(stack: KafkaStack, key: str) -> tuple[Any, str, str]:
    server = stack.functions()
    started = start_queue(server, load("legacy"), key=key)
    return server, started["queue_id"], started["jobs"][0]["id"]


def test_rejected_telemetry_is_dead_lettered_with_the_reason(kafka_stack: KafkaStack) -> None:
    server, queue_id, job_id = queue_with_job(kafka_stack, "dead-letters")
    source = kafka_stack.source(server.url + "/telemetry", short_delivery(kafka_stack))
    job = kafka_stack.job()
    telemetry = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id}
    negative = {**telemetry, "status": "loading", "records_written": -5}   # fails validation
    unknown = {**telemetry, "status": "exploded", "records_written": 5}     # an unknown status word
    job.send("json", negative)
    job.send("cloudevent", unknown)
    job.send("json", {**telemetry, "status": "finished", "records_written": 77})
    job.flush()

    assert wait_status(server, queue_id, "finished")["records_written"] == 77
    source.wait_committed()
    assert source.proxy.statuses == {422: 2, 200: 1}, f"a 422 is final, never retried: {source.proxy.statuses}"

    dead = kafka_stack.read(kafka_stack.dlq, until=lambda rs: len(rs) >= 2)
    assert len(dead) == 2
    for record, sent, field, ce_type in ((dead[0], negative, "records_written", constants.CE_KAFKA_RECORD),
                                         (dead[1], unknown, "status", constants.CE_TELEMETRY)):
        event = as_event(record)
        assert event["type"] == ce_type and event.data == sent
        assert event["knativeerrordest"] == source.proxy.url
        assert event["knativeerrorcode"] == "422"
        reply = json.loads(base64.b64decode(event["knativeerrordata"]))
        assert reply["status"] == "error" and field in json.dumps(reply["errors"]), reply
    first, second = as_event(dead[0]), as_event(dead[1])
    assert first["id"].startswith("partition:") and first["source"].endswith(f"#{kafka_stack.control}")
    # The KafkaSink keys a record by the event's partitionkey: the dispatcher set it (to the
    # Kafka key) on the record it wrapped; the Job's own CloudEvent has none, so no key.
    assert dead[0].key == queue_id.encode() and dict(dead[0].headers)["ce_partitionkey"] == queue_id.encode()
    assert dead[1].key is None and "ce_partitionkey" not in dict(dead[1].headers)
    assert {"knativekafkapartition", "knativekafkaoffset"} <= set(second.get_attributes())


def test_undeliverable_telemetry_is_dead_lettered_when_the_function_is_down(kafka_stack: KafkaStack) -> None:
    server, queue_id, job_id = queue_with_job(kafka_stack, "nobody-home")
    server.stop()
    source = kafka_stack.source(server.url + "/telemetry", short_delivery(kafka_stack))
    job = kafka_stack.job()
    for n in (10, 20):
        job.report("json", queue_id, job_id, "loading", n)
    job.flush()

    dead = kafka_stack.read(kafka_stack.dlq, until=lambda rs: len(rs) >= 2)
    source.wait_committed()
    assert source.proxy.statuses == {None: 2 * (RETRY + 1)}, \
        f"each record: one attempt and {RETRY} retries: {source.proxy.statuses}"
    for record, n in zip(sorted(dead, key=lambda r: as_event(r).data["records_written"]), (10, 20), strict=True):
        event = as_event(record)
        assert event.data["records_written"] == n and event["knativeerrordest"] == source.proxy.url
        attributes = event.get_attributes()
        assert "knativeerrorcode" not in attributes and "knativeerrordata" not in attributes, \
            "no response, so no code or body"


def test_a_record_is_lost_when_the_dead_letter_sink_is_down_too(kafka_stack: KafkaStack) -> None:
    """Function and dead-letter sink both unreachable: after the attempts at the sink and
    then at the dead-letter sink are used up, the dispatcher commits the offset (the record is
    gone from the group's view) and never delivers it again, even once both are back."""
    server, queue_id, job_id = queue_with_job(kafka_stack, "all-down")
    server.stop()
    # The dead-letter sink's address, with nothing listening (recorded: a proxy to nowhere).
    dead_letters = RecordingProxy(f"http://127.0.0.1:{free_port()}")
    kafka_stack.proxies.append(dead_letters)
    source = kafka_stack.source(server.url + "/telemetry", short_delivery(kafka_stack),
                                dead_letter=dead_letters.url + "/streamforge/queue-control-dlq")
    job = kafka_stack.job()
    sent = time.monotonic()
    for n in (10, 20, 30):
        job.report("json", queue_id, job_id, "loading", n)
    job.flush()
    attempts = source.proxy.wait_requests(3 * (RETRY + 1))
    dead_attempts = dead_letters.wait_requests(3)
    source.wait_committed(timeout=60)
    committed_after = time.monotonic() - sent
    assert source.proxy.statuses == {None: 3 * (RETRY + 1)}
    # The dead-letter sink is tried as often as the sink (the same retry and backoff).
    dead_attempts = dead_letters.wait_requests(3 * (RETRY + 1))
    assert dead_letters.statuses == {None: 3 * (RETRY + 1)}, dead_letters.statuses
    given_up = max(ex.done for ex in dead_attempts) - sent
    # Both are retried with backoff delay*2^n, n = 1..retry (exponential), one record after the other.
    delay = 0.05
    for name, exchanges in (("sink", attempts), ("dead-letter sink", dead_attempts)):
        times = sorted(ex.at for ex in exchanges if b'"records_written": 10' in ex.body)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        print(f"\ngaps between attempts at the {name} (s): {[round(g, 3) for g in gaps]}")
        for n, gap in enumerate(gaps, start=1):  # the upper bound leaves a loaded machine room
            assert delay * 2**n * 0.9 <= gap <= delay * 2**n + 2.0, (name, gaps)
        assert all(b > a for a, b in zip(gaps, gaps[1:], strict=False)), (name, gaps)
    print(f"\nDLQ down: 3 of 3 records lost; last dead-letter attempt {given_up:.2f}s after producing, "
          f"offsets committed by {committed_after:.1f}s; {len(attempts)} sink attempts")

    # Both come back: nothing is delivered again, neither to the function nor to the dead letters.
    server.start()
    dlq = kafka_stack.dead_letter_sink()
    before = len(source.proxy.requests())
    time.sleep(8)  # longer than a commit interval and a poll: a redelivery would show by now
    assert len(source.proxy.requests()) == before, "a committed record came again"
    assert kafka_stack.read(kafka_stack.dlq, idle=1.0) == []
    code, body = server.call("GET", f"/queues/{queue_id}")
    job_state = next(j for j in body["data"]["jobs"] if j["id"] == job_id)
    assert job_state["records_written"] == 0, "the lost telemetry never reached the state"
    assert dlq.is_running()
    wait_until("the dispatcher still running", source.dispatcher.is_running, 1)
