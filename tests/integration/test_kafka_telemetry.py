"""Job telemetry through the real broker: a simulated Job writes to queue-control, Knative's
KafkaSource dispatcher (contract from eventing/kafka-source.yaml) delivers it to the
functions (a real functions-framework process, target ``all``), and both seed pipelines
finish with the exact counts; then the same records again, replayed and shuffled, change
nothing."""

from __future__ import annotations

import random

import pytest

from tests.integration.kafka_support import KafkaStack, get_raw, run_seed_pipelines

pytestmark = pytest.mark.kafka


def test_seed_pipelines_finish_with_exact_counts(kafka_stack: KafkaStack) -> None:
    seeded = run_seed_pipelines(kafka_stack)
    server, queues = seeded.server, seeded.queues
    assert [len(started["jobs"]) for started, _ in queues] == [6, 7]
    for started, _ in queues:  # a pipeline: what waits for inputs was not launched at start
        statuses = [j["status"] for j in started["jobs"]]
        assert statuses[:4] == ["launched"] * 4 and set(statuses[4:]) == {"pending"}, statuses
    for started, plan in queues:
        code, body = server.call("GET", f"/queues/{started['queue_id']}")
        assert code == 200, body
        queue = body["data"]
        assert queue["status"] == "finished"
        by_id = {j["id"]: j for j in queue["jobs"]}
        assert set(by_id) == set(plan)
        for job_id, reports in plan.items():
            assert by_id[job_id]["status"] == "finished", by_id[job_id]
            assert by_id[job_id]["records_written"] == reports[-1][1]
        assert queue["records_written"] == sum(r[-1][1] for r in plan.values())
        assert queue["progress"] == 1.0
    statuses = seeded.source.proxy.statuses
    assert statuses == {200: 3 * (6 + 7)}, f"each record delivered once, answered 200: {statuses}"
    assert kafka_stack.read(kafka_stack.dlq) == [], "nothing dead-lettered"


def test_replayed_and_shuffled_telemetry_changes_nothing(kafka_stack: KafkaStack) -> None:
    seeded = run_seed_pipelines(kafka_stack)
    server, first, job = seeded.server, seeded.source, seeded.job
    ids = [started["queue_id"] for started, _ in seeded.queues]
    before = {q: (get_raw(server, f"/queues/{q}"), kafka_stack.stored(q)) for q in ids}
    original = list(job.sent)
    assert len(original) == 3 * 13 and {m for m, _ in original} == {"json", "cloudevent"}

    # A new consumer group from offset 0 delivers every record a second time, in order (the
    # manifest's KafkaSource with another consumerGroup and initialOffset: earliest) ...
    manifest = kafka_stack.source_manifest()
    manifest["spec"].update(consumerGroup=manifest["spec"]["consumerGroup"] + "-replay", initialOffset="earliest")
    replay = kafka_stack.source(server.url + "/telemetry", manifest)
    replay.wait_committed()
    assert replay.proxy.wait_requests(len(original))
    # ... and the same reports produced again, shuffled, come a third time through the first.
    shuffled = original[:]
    random.Random(7).shuffle(shuffled)
    for mode, body in shuffled:
        job.send(mode, body)
    job.flush()
    first.proxy.wait_requests(2 * len(original))
    replay.proxy.wait_requests(2 * len(original))
    first.wait_committed()
    replay.wait_committed()

    for q in ids:
        after = (get_raw(server, f"/queues/{q}"), kafka_stack.stored(q))
        assert after[0] == before[q][0], "GET /queues/{id} changed"
        assert after[1] == before[q][1], "stored document or its revision changed"
    for src in (first, replay):
        assert set(src.proxy.statuses) == {200}, src.proxy.statuses
    assert kafka_stack.read(kafka_stack.dlq) == []
