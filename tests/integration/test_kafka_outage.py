"""Kafka outages against the real broker, stopped and restarted on the same ports with the
same data: telemetry delivered by the real KafkaSource dispatcher is neither lost nor
double-counted, events wait in the outbox and are
all published afterwards, and a start during an outage is stored and repeatable."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.examples import load
from tests.integration.kafka_support import (
    KafkaStack,
    as_event,
    assert_finished_as_planned,
    plan_for,
    start_queue,
)
from tests.integration.test_kafka_events import expected_ids

pytestmark = [
    pytest.mark.kafka,
    # kafka-python 3.0.12 leaks a socket per refused connect (see collect_kafka_python_garbage)
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]
DOWNTIME = 5.0


@pytest.fixture
def own_stack(kafka_broker_factory: Any, dataplane: None, tmp_path: Any) -> Iterator[KafkaStack]:
    stack = KafkaStack(kafka_broker_factory(num_partitions=1), tmp_path, partitions=2)
    try:
        yield stack
    finally:
        stack.close()


def published(stack: KafkaStack, wanted: set[str], timeout: float = 60) -> dict[str, list[Any]]:
    """Read queue-events until every wanted id is there; every copy of an id must be identical."""
    records = stack.read(stack.events, timeout=timeout, until=lambda rs: wanted <= {
        dict(r.headers)["ce_id"].decode() for r in rs})
    copies: dict[str, list[Any]] = {}
    for r in records:
        copies.setdefault(as_event(r)["id"], []).append(r)
    for event_id, rs in copies.items():
        assert len({(tuple(r.headers), r.key, r.value) for r in rs}) == 1, f"copies of {event_id} differ"
    return copies


def test_broker_restart_mid_stream_loses_and_double_counts_nothing(own_stack: KafkaStack) -> None:
    """Through the real KafkaSource dispatcher with the manifest's delivery (retry 10,
    exponential from 0.2 s: it rides out the outage)."""
    stack, broker = own_stack, own_stack.broker
    server = stack.functions(KAFKA_TIMEOUT_MS="2000")
    source = stack.source(server.url + "/telemetry")
    queues = []
    for name, seed in (("historical", 2), ("realtime", 9)):
        started = start_queue(server, load(name), key=f"outage-{name}")
        finals = {job_id: reports[-1][1] for job_id, reports in plan_for(started["jobs"], seed).items()}
        plan = {job_id: [("loading", final * k // 6) for k in range(1, 6)] + [("finished", final)]
                for job_id, final in finals.items()}
        queues.append((started["queue_id"], plan))
    total = sum(len(reports) for _, plan in queues for reports in plan.values())

    # The broker goes down (SIGTERM, data kept) just before the dispatcher's request with the
    # second `finished` report reaches the functions: a status change, so its events cannot
    # be published. (The hook is in the recording proxy between dispatcher and functions.)
    down, finished = threading.Event(), [0]

    def maybe_stop(ex: Any) -> None:
        if not down.is_set() and json.loads(ex.body).get("status") == "finished":
            finished[0] += 1
            if finished[0] == 2:
                broker.stop(keep_data=True)
                down.set()

    assert source.proxy is not None
    source.proxy.before = maybe_stop

    job = stack.job(delivery_timeout_ms=120_000, max_block_ms=120_000)
    futures, sent_while_down = [], [0]

    def produce() -> None:  # job by job, each a few reports apart, on and on through the outage
        for queue_id, plan in queues:
            for job_id, reports in plan.items():
                for status, records in reports:
                    futures.append(job.report("json", queue_id, job_id, status, records))
                    sent_while_down[0] += down.is_set() and not broker.is_running()
                    time.sleep(0.08)

    producer = threading.Thread(target=produce)
    producer.start()
    assert down.wait(60), "the dispatcher never reached the second finished report"
    outbox_seen, until = 0, time.monotonic() + DOWNTIME
    while time.monotonic() < until:  # meanwhile the functions answer 503 and keep the events
        outbox_seen = max(outbox_seen, sum(len(json.loads(stack.stored(q)[1])["outbox"]) for q, _ in queues))
        time.sleep(0.1)
    broker.start()
    producer.join(120)
    job.flush(120)
    assert all(f.get(timeout=1) for f in futures), "the Job lost a report"

    for queue_id, plan in queues:
        assert_finished_as_planned(server, queue_id, plan)
    source.wait_committed(timeout=120)

    statuses = source.proxy.statuses
    assert sent_while_down[0] > 0, "the Job produced nothing while the broker was down"
    assert statuses[503] > 0, f"no 503 during the outage: {statuses}"
    assert outbox_seen > 0, "no event waited in the outbox during the outage"
    assert stack.read(stack.dlq) == [], "nothing dead-lettered"
    delivered = {ex.headers["ce-id"] for ex in source.proxy.requests() if ex.status == 200}
    assert len(delivered) == total, f"{len(delivered)} of {total} records answered 200 (at least once each)"
    for queue_id, _ in queues:
        doc = json.loads(stack.stored(queue_id)[1])
        assert doc["outbox"] == []
        wanted = set(expected_ids(queue_id, doc))
        copies = published(stack, wanted)
        assert wanted == {i for i, rs in copies.items() if rs[0].key == queue_id.encode()}


def test_start_during_an_outage_is_stored_and_repeatable(own_stack: KafkaStack) -> None:
    stack, broker = own_stack, own_stack.broker
    broker.stop(keep_data=True)  # cold: the functions never reached Kafka
    server = stack.functions(KAFKA_TIMEOUT_MS="3000")
    results: dict[str, str] = {}

    def start_while_down(key: str, payload: dict[str, Any]) -> None:
        t0 = time.monotonic()
        code, body = server.call("POST", "/queues/start", payload, headers={"Idempotency-Key": key})
        assert code == 503, body
        assert time.monotonic() - t0 < 15, "a start hung on Kafka"
        assert "kafka" in body["message"].lower(), body
        queue_id = next(d["queue_id"] for d in body["errors"] if "queue_id" in d)
        code, state = server.call("GET", f"/queues/{queue_id}")
        assert code == 200 and state["data"]["id"] == queue_id, state
        results[key] = queue_id

    start_while_down("cold-start", load("historical"))
    broker.start()
    warm = start_queue(server, load("legacy"), key="warm-up")["queue_id"]  # the producer is connected now
    broker.stop(keep_data=True)
    t0 = time.monotonic()
    code, body = server.call("GET", "/health/ready")  # not from the producer's cached metadata
    assert code == 503 and body["message"] == "unavailable: events (kafka)", body
    assert time.monotonic() - t0 < 10
    start_while_down("warm-start", load("realtime"))
    broker.start()

    for key, payload in (("cold-start", load("historical")), ("warm-start", load("realtime"))):
        code, body = server.call("POST", "/queues/start", payload, headers={"Idempotency-Key": key})
        assert code == 200 and body["data"]["queue_id"] == results[key], body
        assert body["message"] == "Queue already started (same idempotency key)"
    wanted = {f"{q}/started" for q in (*results.values(), warm)}
    copies = published(stack, wanted)
    for queue_id in results.values():
        started = as_event(copies[f"{queue_id}/started"][0])
        assert started.data["queue_id"] == queue_id and copies[f"{queue_id}/started"][0].key == queue_id.encode()
        assert json.loads(stack.stored(queue_id)[1])["outbox"] == []
