import json

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from shared.adapters import events
from shared.core.errors import ClientError


def _event(data):
    return CloudEvent({"type": "dev.streamforge.queue.telemetry", "source": "/jobs/x", "id": "e-1",
                       "subject": "q-1", "partitionkey": "q-1"}, data)


@pytest.mark.parametrize("mode", [to_binary, to_structured])
def test_decode_matches_the_sdk_in_both_modes(mode):
    headers, body = mode(_event({"queue_id": "q-1", "records_written": 3}))
    inbound = events.decode(dict(headers), body)
    assert inbound.data == {"queue_id": "q-1", "records_written": 3}
    assert inbound.ce["type"] == "dev.streamforge.queue.telemetry"
    assert inbound.ce["id"] == "e-1" and inbound.ce["subject"] == "q-1"
    assert inbound.extensions == {"partitionkey": "q-1"}
    assert inbound.ce_identity == "/jobs/x#e-1"


def test_plain_json_is_not_an_event():
    inbound = events.decode({"Content-Type": "application/json"}, b'{"a": 1}')
    assert inbound.ce is None and inbound.data == {"a": 1}


@pytest.mark.parametrize("headers, body, message", [
    ({"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s"}, b"{}", "missing ce-id"),
    ({"ce-specversion": "0.1", "ce-type": "t", "ce-source": "s", "ce-id": "1"}, b"{}", "specversion"),
    ({"content-type": "application/cloudevents+json"}, b'{"data": 1}', "malformed CloudEvent"),
    ({"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s", "ce-id": "1"}, b"{nope", "not valid JSON"),
])
def test_malformed_events_are_client_errors(headers, body, message):
    with pytest.raises(ClientError, match=message):
        events.decode(headers, body)


def test_kafka_binary_binding_round_trip():
    event = events.make(type_="dev.streamforge.queue.started", source="/qm", subject="q-1", id_="q-1/started",
                        data={"queue_id": "q-1"}, time="2024-01-01T00:00:00Z")
    headers = dict(events.kafka_headers(event))
    assert headers["ce_type"] == b"dev.streamforge.queue.started"
    assert headers["ce_id"] == b"q-1/started" and headers["content-type"] == b"application/json"
    assert json.loads(events.kafka_value(event)) == {"queue_id": "q-1"}
