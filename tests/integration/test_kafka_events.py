"""What the functions publish on the real broker: lifecycle events on queue-events and
stop commands on queue-control, in the CloudEvents Kafka binary binding, keyed by queue
id, read back with the CloudEvents SDK's Kafka binding."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from shared.core import constants
from shared.examples import load
from tests.integration.kafka_support import KafkaStack, as_event, run_seed_pipelines, start_queue

pytestmark = pytest.mark.kafka

RANK = {"pending": 0, "launched": 1, "running": 2, "finished": 3}


def expected_ids(queue_id: str, doc: dict[str, Any]) -> list[str]:
    """The event ids the queue's change history implies (ids are deterministic)."""
    ids = []
    for h in doc["history"]:
        data = h["data"]
        ids.append({
            constants.CE_QUEUE_STARTED: f"{queue_id}/started",
            constants.CE_QUEUE_STOPPED: f"{queue_id}/stopped",
            constants.CE_QUEUE_STATUS_CHANGED: f"{queue_id}/{data.get('status')}",
            constants.CE_JOB_STATUS_CHANGED: f"{queue_id}/{data.get('job_id')}/{data.get('status')}",
        }[h["type"]])
    return ids


def test_every_state_change_is_a_cloudevent_on_queue_events(kafka_stack: KafkaStack) -> None:
    seeded = run_seed_pipelines(kafka_stack)
    wanted: dict[str, list[str]] = {}
    for started, _ in seeded.queues:
        q = started["queue_id"]
        doc = json.loads(kafka_stack.stored(q)[1])
        assert doc["outbox"] == [], "events left unpublished"
        assert [h["seq"] for h in doc["history"]] == list(range(1, len(doc["history"]) + 1))
        wanted[q] = expected_ids(q, doc)
    everything = {i for ids in wanted.values() for i in ids}
    records = kafka_stack.read(
        kafka_stack.events, until=lambda rs: everything <= {dict(r.headers).get("ce_id", b"").decode() for r in rs})

    seen: dict[str, dict[str, Any]] = {}
    order: dict[str, list[str]] = {q: [] for q in wanted}
    partitions: dict[str, set[int]] = {q: set() for q in wanted}
    for record in records:
        event = as_event(record)
        q = record.key.decode()
        assert q in wanted, f"event keyed by an unknown queue: {q}"
        assert event["subject"] == q and event.data["queue_id"] == q
        assert event["specversion"] == "1.0" and event["source"] == constants.EVENT_SOURCE
        assert event["datacontenttype"] == "application/json"
        dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        shape = (event["type"], event["time"], event.data)
        assert seen.setdefault(event["id"], {"shape": shape})["shape"] == shape, "a duplicate that differs"
        if event["id"] not in order[q]:
            order[q].append(event["id"])
            seen[event["id"]]["event"] = event
        partitions[q].add(record.partition)

    for started, plan in seeded.queues:
        q = started["queue_id"]
        assert len(partitions[q]) == 1, "a queue's events span partitions: no order"
        assert order[q] == wanted[q], "events missing, extra or out of order"
        events = [seen[i]["event"] for i in order[q]]
        assert events[0]["type"] == constants.CE_QUEUE_STARTED
        assert [j["id"] for j in events[0].data["jobs"]] == [j["id"] for j in started["jobs"]]
        queue_changes = [(e.data["previous"], e.data["status"]) for e in events
                         if e["type"] == constants.CE_QUEUE_STATUS_CHANGED]
        assert queue_changes == [("pending", "loading"), ("loading", "finished")]
        assert events[-1].data["status"] == "finished"
        assert events[-1].data["records_written"] == sum(r[-1][1] for r in plan.values())
        for job in started["jobs"]:
            changes = [e.data for e in events
                       if e["type"] == constants.CE_JOB_STATUS_CHANGED and e.data["job_id"] == job["id"]]
            statuses = [c["status"] for c in changes]
            assert statuses[-1] == "finished" and changes[-1]["records_written"] == plan[job["id"]][-1][1]
            assert [c["previous"] for c in changes] == ["pending", *statuses[:-1]], changes
            assert all(RANK[a] < RANK[b] for a, b in zip(statuses, statuses[1:], strict=False)), statuses
            assert changes[0]["target"] == job["target"] and changes[0]["type"] == job["type"]


def test_stop_puts_a_stop_command_on_queue_control(kafka_stack: KafkaStack) -> None:
    server = kafka_stack.functions()
    stopped = start_queue(server, load("historical"), key="stop-me")["queue_id"]
    running = start_queue(server, load("realtime"), key="keep-me")["queue_id"]
    code, body = server.call("POST", f"/queues/stop?queue_id={stopped}")
    assert code == 200 and body["message"] == "Queue stopped", body
    code, body = server.call("POST", f"/queues/stop?queue_id={stopped}")
    assert code == 200 and body["message"] == "Queue already stopped", body

    mine = lambda rs: [r for r in rs if r.key == stopped.encode()]  # noqa: E731 - a Job filters by its queue
    kafka_stack.read(kafka_stack.control, until=lambda rs: bool(mine(rs)))
    records = kafka_stack.read(kafka_stack.control, idle=1.5)  # everything, once nothing new comes
    assert len(mine(records)) == 1, "exactly one stop command for the stopped queue"
    assert not [r for r in records if r.key == running.encode()], "a command for a queue nobody stopped"
    command = as_event(mine(records)[0])
    assert command["type"] == constants.CE_STOP_COMMAND
    assert command["id"] == f"{stopped}/stop-command" and command["subject"] == stopped
    assert command.data == {"type": "stop", "command": "stop", "queue_id": stopped, "reason": "stopped by user"}

    events = kafka_stack.read(kafka_stack.events, until=lambda rs: any(
        dict(r.headers).get("ce_id") == f"{stopped}/stopped".encode() for r in rs))
    stop_event = next(as_event(r) for r in events if dict(r.headers)["ce_id"] == f"{stopped}/stopped".encode())
    assert stop_event["type"] == constants.CE_QUEUE_STOPPED and stop_event.data["queue_id"] == stopped


@pytest.mark.parametrize("path", ["/telemetry", "/"])
def test_stop_command_read_back_from_queue_control_is_acknowledged(kafka_stack: KafkaStack, path: str) -> None:
    """KafkaSource delivers all of queue-control, the manager's own stop commands included:
    the functions must acknowledge them (2xx, ignored), not reject them into the dead letters."""
    server = kafka_stack.functions()
    manifest = kafka_stack.source_manifest()
    manifest["spec"]["delivery"].update(retry=1, backoffDelay="PT0.05S")  # changed: fail fast if it fails
    source = kafka_stack.source(server.url + path, manifest)
    queue_id = start_queue(server, load("legacy"), key=f"ack-{path}")["queue_id"]
    code, body = server.call("POST", f"/queues/stop?queue_id={queue_id}")
    assert code == 200, body
    (command,) = source.proxy.wait_requests(1, timeout=30)
    if command.status != 200:
        pytest.fail(f"POST {path} answered the stop command {command.status}: {command.response[:300]!r}")
    assert command.headers["ce-type"] == constants.CE_STOP_COMMAND, "a binary CloudEvent passes through"
    source.wait_committed()
    assert kafka_stack.read(kafka_stack.dlq) == []
    code, body = server.call("GET", f"/queues/{queue_id}")
    assert body["data"]["status"] == "stopped"
    assert code == 200 and len(kafka_stack.read(kafka_stack.control)) == 1
