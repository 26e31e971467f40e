"""ArangoDB outages: the state store (the stand-in: no ArangoDB server runs here) stops mid-stream,
its port closed and its data kept, and comes back on the same port. Telemetry delivered by
Knative's real KafkaSource dispatcher is answered 503 with Retry-After while it is down, retried
by the dispatcher as the manifest's delivery says, and applied once it is back: the same queues
continue, nothing is lost and nothing is counted twice."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest

from shared.core.constants import CE_JOB_STATUS_CHANGED, QUEUE_COLLECTION
from shared.examples import load
from tests.arango_standin import ArangoStandIn
from tests.backends import PASSWORD
from tests.integration.kafka_support import KafkaStack, assert_finished_as_planned, plan_for, start_queue

pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings("ignore::ResourceWarning")]
DOWNTIME = 5.0


def answer(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read())


def test_arango_restart_mid_stream_loses_and_double_counts_nothing(kafka_stack: KafkaStack) -> None:
    stack = kafka_stack
    with ArangoStandIn(password=PASSWORD) as arango:
        server = stack.functions(ARANGO_URL=arango.url, ARANGO_PASSWORD=PASSWORD)
        source = stack.source(server.url + "/telemetry")
        started = start_queue(server, load("historical"), key="arango-outage")
        queue_id = started["queue_id"]
        finals = {job_id: reports[-1][1] for job_id, reports in plan_for(started["jobs"], 4).items()}
        plan = {job_id: [("loading", final * k // 6) for k in range(1, 6)] + [("finished", final)]
                for job_id, final in finals.items()}
        total = sum(len(reports) for reports in plan.values())

        # The store goes away just before the dispatcher's request with the second `finished`
        # report reaches the functions (the hook is in the proxy between them).
        down, finished = threading.Event(), [0]

        def maybe_stop(ex: Any) -> None:
            if not down.is_set() and json.loads(ex.body).get("status") == "finished":
                finished[0] += 1
                if finished[0] == 2:
                    arango.stop()
                    down.set()

        assert source.proxy is not None
        source.proxy.before = maybe_stop
        job = stack.job()
        futures = []

        def produce() -> None:
            for job_id, reports in plan.items():
                for status, records in reports:
                    futures.append(job.report("json", queue_id, job_id, status, records))
                    time.sleep(0.05)

        producer = threading.Thread(target=produce)
        producer.start()
        assert down.wait(60), "the dispatcher never reached the second finished report"
        code, headers, body = answer(server.url + "/telemetry", {"type": "telemetry", "queue_id": queue_id,
                                                                  "status": "loading"})
        assert code == 503 and headers.get("retry-after") == "1", (code, headers, body)
        assert "arango" in body["message"], body
        time.sleep(DOWNTIME)
        arango.start()
        producer.join(120)
        job.flush(120)
        assert all(f.get(timeout=1) for f in futures), "the Job lost a report"

        assert_finished_as_planned(server, queue_id, plan)
        source.wait_committed(timeout=120)
        statuses = source.proxy.statuses
        assert statuses[503] > 0, f"no 503 during the outage: {statuses}"
        assert stack.read(stack.dlq) == [], "nothing dead-lettered"
        delivered = {ex.headers["ce-id"] for ex in source.proxy.requests() if ex.status == 200}
        assert len(delivered) == total, f"{len(delivered)} of {total} records answered 200 (at least once each)"
        # Counts are absolute, so double counting shows in the transitions: each one exactly once.
        doc = arango.dbs["streamforge"].cols[QUEUE_COLLECTION].docs[queue_id]
        seqs = [h["seq"] for h in doc["history"]]
        assert seqs == sorted(set(seqs)), seqs
        moves = Counter((h["data"].get("job_id"), h["data"]["status"]) for h in doc["history"]
                        if h["type"] == CE_JOB_STATUS_CHANGED)
        assert moves and set(moves.values()) == {1}, moves
        assert sum(status == "finished" for _, status in moves) == len(plan)
