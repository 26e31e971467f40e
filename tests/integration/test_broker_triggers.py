"""CloudEvents through Knative's own Kafka Broker and the Triggers of eventing/triggers.yaml.

Events are POSTed to the real Broker ingress (``receiver-loom``), which writes them to the
broker topic; the real Trigger dispatcher (``dispatcher-loom``, one egress per Trigger)
filters and delivers them to the ``start`` and ``stop`` functions, each its own
functions-framework process as each Trigger points at its own Service, and produces the
functions' reply events back into the broker topic. The contract is rendered from
eventing/broker.yaml and eventing/triggers.yaml (tests/integration/broker_support.py says
what differs from a cluster: addresses only).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.core import constants
from shared.examples import load
from tests.infra.dataplane import contract as dpc
from tests.infra.kafka_broker import KafkaBroker
from tests.integration.broker_support import BrokerStack, create_kafka_secret, reply_of
from tests.integration.kubeutil import Kube

pytestmark = pytest.mark.kafka

SOURCE = "/tests/broker-triggers"


@pytest.fixture(scope="module")
def stack(kafka_broker, dataplane, tmp_path_factory) -> Iterator[BrokerStack]:  # noqa: ANN001
    s = BrokerStack(kafka_broker, tmp_path_factory.mktemp("broker"))
    try:
        yield s.start()
    finally:
        s.close()


def new_id() -> str:
    return f"ev-{uuid.uuid4().hex[:12]}"


def a_queue() -> dict[str, Any]:
    """The historical example, allowed to overlap the other tests' (only the last test is
    about an overlap, on a symbol of its own)."""
    return {**load("historical"), "allow_overlap": True}


def start_event(ce_id: str) -> dict[str, str]:
    return {"type": constants.CE_START_QUEUE, "source": SOURCE, "id": ce_id}


def start_through_broker(stack: BrokerStack, mode: str = "binary") -> tuple[str, str, dict[str, Any]]:
    """A start event to the ingress, answered by `start`: (event id, queue id, payload)."""
    ce_id, payload = new_id(), a_queue()
    assert stack.post(start_event(ce_id), payload, mode=mode) == 202
    (delivery,) = stack.wait_delivered(stack.trigger_for("start"), ce_id)
    assert delivery.status == 200, delivery.response
    return ce_id, reply_of(delivery)["data"]["queue_id"], payload


def test_the_contract_is_the_manifests(stack: BrokerStack) -> None:
    """What the tests below rely on, as the controller renders it from eventing/."""
    assert stack.topic == f"knative-broker-{stack.namespace}-queue-manager"
    assert stack.resource["ingress"]["path"] == f"/{stack.namespace}/queue-manager"
    filters = {e["reference"]["name"]: e["filter"]["attributes"] for e in stack.egresses}
    assert filters == {"queue-start": {"type": constants.CE_START_QUEUE},
                       "queue-stop": {"type": constants.CE_STOP_QUEUE}}
    for egress in stack.egresses:
        assert egress["consumerGroup"] == f"knative-trigger-{stack.namespace}-{egress['reference']['name']}"
        # No reply strategy: replies go to the broker topic.
        assert not {"replyUrl", "replyToOriginalTopic", "discardReply"} & set(egress)
        # The Triggers have no delivery of their own: the Broker's applies, without a dead letter sink.
        assert egress["egressConfig"]["retry"] == stack.broker["spec"]["delivery"]["retry"] > 0
        assert "deadLetter" not in egress["egressConfig"]
    assert stack.trigger_function == {"queue-start": "start", "queue-stop": "stop"}


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_start_event_reaches_start_only_and_the_queue_exists(stack: BrokerStack, mode: str) -> None:
    ce_id, payload = new_id(), a_queue()
    assert stack.post(start_event(ce_id), payload, mode=mode) == 202
    (record,) = stack.sent(ce_id)
    (delivery,) = stack.wait_delivered("queue-start", ce_id)
    # What Knative's dispatcher sends, whichever mode the ingress got: binary mode.
    assert delivery.path == "/"
    assert delivery.headers["ce-type"] == constants.CE_START_QUEUE
    assert delivery.headers["ce-source"] == SOURCE
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["prefer"] == "reply"
    assert delivery.headers["kn-namespace"] == stack.namespace
    assert delivery.status == 200, delivery.response
    queue_id = reply_of(delivery)["data"]["queue_id"]

    code, body = stack.queue(queue_id)
    assert code == 200, body
    assert body["data"]["symbol"] == payload["symbol"]
    assert len(body["data"]["jobs"]) == len(payload["requests"])

    stack.wait_handled([record])  # both Triggers are done with it
    assert stack.deliveries("queue-stop", ce_id) == []
    assert len(stack.deliveries("queue-start", ce_id)) == 1


def test_stop_event_reaches_stop_only(stack: BrokerStack) -> None:
    _, queue_id, _ = start_through_broker(stack)
    ce_id = new_id()
    stop = {"type": constants.CE_STOP_QUEUE, "source": SOURCE, "id": ce_id}
    assert stack.post(stop, {"queue_id": queue_id, "reason": "through the broker"}) == 202
    (record,) = stack.sent(ce_id)
    (delivery,) = stack.wait_delivered("queue-stop", ce_id)
    assert delivery.status == 200, delivery.response
    assert reply_of(delivery)["data"]["queue_id"] == queue_id

    code, body = stack.queue(queue_id)
    assert code == 200, body
    assert body["data"]["status"] == "stopped"  # the local launcher has nothing to wait for
    assert body["data"]["stop_reason"] == "through the broker"

    stack.wait_handled([record])
    assert stack.deliveries("queue-start", ce_id) == []
    assert len(stack.deliveries("queue-stop", ce_id)) == 1


@pytest.mark.parametrize("ce_type", [
    constants.CE_TELEMETRY,
    constants.CE_QUEUE_STARTED,  # the start function's own reply type
    constants.CE_PING,  # the stop function would sweep on it; its Trigger does not pass it
    constants.CE_START_QUEUE + ".v2",  # the filter is exact, not a prefix
])
def test_other_types_reach_neither_function(stack: BrokerStack, ce_type: str) -> None:
    ce_id = new_id()
    assert stack.post({"type": ce_type, "source": SOURCE, "id": ce_id}, a_queue()) == 202
    (record,) = stack.sent(ce_id)
    stack.wait_handled([record])
    assert stack.deliveries("queue-start", ce_id) == []
    assert stack.deliveries("queue-stop", ce_id) == []


def test_replies_go_back_into_the_broker_topic(stack: BrokerStack) -> None:
    """A 200 with a CloudEvent from a subscriber is produced to the broker topic (the egress
    has no reply strategy), where no Trigger passes it on."""
    _, queue_id, _ = start_through_broker(stack)
    stop_id = new_id()
    assert stack.post({"type": constants.CE_STOP_QUEUE, "source": SOURCE, "id": stop_id},
                      {"queue_id": queue_id}) == 202
    (delivery,) = stack.wait_delivered("queue-stop", stop_id)
    assert delivery.status == 200, delivery.response

    replies = stack.wait_records("the start and stop replies",
                                 lambda e: e.get("subject") == queue_id and e["source"] == constants.EVENT_SOURCE, 2)
    by_type = {e["type"]: (r, e) for r, e in replies}
    assert set(by_type) == {constants.CE_QUEUE_STARTED, constants.CE_QUEUE_STOPPED}, by_type
    (_, started), (_, stopped) = by_type[constants.CE_QUEUE_STARTED], by_type[constants.CE_QUEUE_STOPPED]
    assert started["id"] == f"{queue_id}/started"
    assert stopped["id"] == f"{queue_id}/stopped"
    assert started["datacontenttype"] == stopped["datacontenttype"] == "application/json"
    started_data, stopped_data = started.get_data(), stopped.get_data()
    assert isinstance(started_data, dict) and isinstance(stopped_data, dict)
    assert started_data["data"]["queue_id"] == queue_id
    assert started_data["message"] == "Queue started"
    assert stopped_data["data"]["status"] == "stopped"
    assert started["time"] and stopped["time"]

    stack.wait_handled([r for r, _ in replies])  # consumed by both Triggers, passed to neither
    for trigger in ("queue-start", "queue-stop"):
        for _, e in replies:
            assert stack.deliveries(trigger, e["id"]) == []


def test_duplicate_delivery_starts_one_queue(stack: BrokerStack) -> None:
    ce_id, payload = new_id(), a_queue()
    before = stack.queues(symbol=payload["symbol"])["page"]["total"]
    for _ in range(2):  # the same event (source + id) twice, as an at-least-once producer may
        assert stack.post(start_event(ce_id), payload) == 202
    records = stack.sent(ce_id, 2)
    deliveries = stack.wait_delivered("queue-start", ce_id, 2)
    assert [d.status for d in deliveries] == [200, 200], [d.response for d in deliveries]
    answers = [reply_of(d) for d in deliveries]
    assert len({a["data"]["queue_id"] for a in answers}) == 1
    queue_id = answers[0]["data"]["queue_id"]
    assert sorted(a["message"] for a in answers) == [
        "Queue already started (same idempotency key)", "Queue started"]
    listed = stack.queues(symbol=payload["symbol"])
    assert listed["page"]["total"] == before + 1, listed

    # Both replies are in the broker topic with the same id: a consumer de-duplicates them.
    replies = stack.wait_records("two replies", lambda e: e.get("subject") == queue_id, 2)
    assert {e["id"] for _, e in replies} == {f"{queue_id}/started"}
    stack.wait_handled(records)
    assert len(stack.deliveries("queue-start", ce_id)) == 2


@pytest.mark.parametrize(("data", "raw", "status"), [
    ({"symbol": "BTC USDT!", "time_range": "2024-06-01:2024-06-30", "requests": []}, None, 422),
    (None, b"{not json", 400),
])
def test_bad_start_data_gets_a_4xx_and_is_not_retried(stack: BrokerStack, data: Any, raw: bytes | None,
                                                     status: int) -> None:
    """The egress retries (eventing/broker.yaml's delivery), but a 400 or 422 is not
    retryable for the dispatcher, and no dead letter sink is configured: one delivery, then
    the record is committed (dropped), and the error answer produced nothing into the broker."""
    egress = next(e for e in stack.egresses if e["reference"]["name"] == "queue-start")
    assert egress["egressConfig"]["retry"] > 0 and "deadLetter" not in egress["egressConfig"]
    ce_id = new_id()
    before = len(stack.records())
    assert stack.post(start_event(ce_id), data, raw=raw) == 202
    (record,) = stack.sent(ce_id)
    (delivery,) = stack.wait_delivered("queue-start", ce_id)
    assert delivery.status == status, delivery.response
    assert reply_of(delivery)["status"] == "error"
    stack.wait_handled([record])  # the dispatcher is done with it: no retry is pending
    assert len(stack.deliveries("queue-start", ce_id)) == 1
    assert stack.deliveries("queue-stop", ce_id) == []
    assert len(stack.records()) == before + 1, "only the event itself: an error answer is no reply"


def test_a_start_overlapping_a_queue_being_stopped_waits_for_the_stop(stack: BrokerStack) -> None:
    """Stop a queue and start an overlapping one at once: the two Triggers consume in
    parallel, so the start may be handled first and get a 409 (overlap). The dispatcher
    retries a 409 (Knative: "processing in progress"), so the start goes through once the
    stop is done, which a direct HTTP caller would have had to retry itself."""
    symbol = f"R{uuid.uuid4().hex[:8].upper()}"
    first = {**load("legacy"), "symbol": symbol}
    first_id = new_id()
    assert stack.post(start_event(first_id), first) == 202
    (delivery,) = stack.wait_delivered("queue-start", first_id)
    assert delivery.status == 200, delivery.response
    first_queue = reply_of(delivery)["data"]["queue_id"]

    stop_id, second_id = new_id(), new_id()
    assert stack.post({"type": constants.CE_STOP_QUEUE, "source": SOURCE, "id": stop_id},
                      {"queue_id": first_queue}) == 202
    assert stack.post(start_event(second_id), {**first, "time_range": "2024-01-02:2024-01-04"}) == 202
    records = stack.sent(stop_id) + stack.sent(second_id)
    stack.wait_handled(records)
    assert [d.status for d in stack.deliveries("queue-stop", stop_id)] == [200]
    statuses = [d.status for d in stack.deliveries("queue-start", second_id)]
    assert statuses[-1] == 200 and set(statuses[:-1]) <= {409}, statuses
    assert stack.queues(symbol=symbol)["page"]["total"] == 2


@pytest.mark.kube
def test_over_sasl_the_data_plane_reads_the_secret_the_broker_config_names(
        kafka_sasl_broker: KafkaBroker, kube: Kube, dataplane: None, tmp_path: Path) -> None:
    """The Broker's ConfigMap names a Secret (``auth.secret.ref.name``): the receiver and the
    dispatcher read ``protocol``, ``sasl.mechanism``, ``user`` and ``password`` from it on
    the API server, produce and consume over SASL, and the reply goes back the same way."""
    sasl = BrokerStack(kafka_sasl_broker, tmp_path, namespace=kube.namespace, kubeconfig=kube.cp.kubeconfig_path)
    secret = create_kafka_secret(kube, sasl, user="bob")
    sasl.auth = dpc.LocalAuth.of(kafka_sasl_broker, secret)
    try:
        sasl.start()
        assert sasl.resource["authSecret"]["name"] == secret["metadata"]["name"]
        _, queue_id, _ = start_through_broker(sasl)
        sasl.wait_records("the start reply", lambda e: e["id"] == f"{queue_id}/started")
        for part in (sasl.receiver, sasl.dispatcher):
            assert part is not None
            for password in kafka_sasl_broker.users.values():
                assert password not in part.log_text(), f"a password in {part.name}'s log"
    finally:
        sasl.close()
