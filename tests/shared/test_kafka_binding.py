"""The records the manager writes to Kafka, byte for byte.

The expected topics, keys, values and headers below were recorded from the publisher as it
was when consumers (Knative KafkaSource, the Kafka Broker, our own readers) were written
against it: they are the contract, whatever builds the record.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cloudevents.kafka import KafkaMessage, from_binary

from shared.adapters import events
from shared.adapters.bus import CONTROL, EVENTS, KafkaBus
from shared.core.config import KafkaSettings
from shared.core.constants import CE_KAFKA_RECORD
from shared.core.errors import ClientError
from tests.bench import events_bench

T = "2026-01-02T03:04:05.678901+00:00"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _make(type_: str, subject: str, id_: str, data: dict[str, Any], source: str = "/qm") -> dict[str, Any]:
    return events.make(type_=type_, source=source, subject=subject, id_=id_, data=data, time=T)


def _without(event: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != name}


UNICODE_TEXT = "échec: 日本語 \U0001F600 \"quoted\" \\ back\nline\t\u2028"
NESTED = {"queue_id": "q-3", "jobs": [
    {"id": "j-1", "records_written": 12, "ratio": 0.5, "big": 12345678901234567890, "ok": True,
     "none": None, "tags": [], "meta": {}},
    {"id": "j-2", "nested": {"a": [1, [2, [3, {"b": -1.25e-7}]]]}},
]}


def _headers(id_: bytes, type_: bytes, *rest: tuple[str, bytes], source: bytes = b"/qm") -> list[tuple[str, bytes]]:
    return [("content-type", b"application/json"), ("ce_specversion", b"1.0"), ("ce_id", id_),
            ("ce_source", source), ("ce_type", type_), *rest]


TIME = ("ce_time", T.encode())

# name: (channel, event, key) -> (topic, key, value, headers)
CASES: dict[str, tuple[tuple[str, dict[str, Any], str], tuple[str, bytes, bytes, list[tuple[str, bytes]]]]] = {
    "started": (
        (EVENTS, _make("dev.streamforge.queue.started", "q-1", "q-1/started", {"queue_id": "q-1"}), "q-1"),
        ("queue-events", b"q-1", b'{"queue_id":"q-1"}',
         _headers(b"q-1/started", b"dev.streamforge.queue.started", ("ce_subject", b"q-1"), TIME)),
    ),
    "no_subject": (
        (EVENTS, _without(_make("dev.streamforge.queue.status.changed", "x", "q-2/running",
                                {"queue_id": "q-2", "status": "running", "previous": None}), "subject"), "q-2"),
        ("queue-events", b"q-2", b'{"queue_id":"q-2","status":"running","previous":null}',
         _headers(b"q-2/running", b"dev.streamforge.queue.status.changed", TIME)),
    ),
    "unicode": (
        (EVENTS, _make("dev.streamforge.job.status.changed", "q-ü", "q-ü/j-1/failed",
                       {"error_message": UNICODE_TEXT}), "q-ü"),
        ("queue-events", b"q-\xc3\xbc",
         b'{"error_message":"\\u00e9chec: \\u65e5\\u672c\\u8a9e \\ud83d\\ude00 \\"quoted\\" \\\\ back'
         b'\\nline\\t\\u2028"}',
         _headers(b"q-\xc3\xbc/j-1/failed", b"dev.streamforge.job.status.changed",
                  ("ce_subject", b"q-\xc3\xbc"), TIME)),
    ),
    "nested_control": (
        (CONTROL, _make("dev.streamforge.queue.stop", "q-3", "q-3/stop/1", NESTED, source="/qm/web"), "q-3"),
        ("queue-control", b"q-3",
         b'{"queue_id":"q-3","jobs":[{"id":"j-1","records_written":12,"ratio":0.5,'
         b'"big":12345678901234567890,"ok":true,"none":null,"tags":[],"meta":{}},'
         b'{"id":"j-2","nested":{"a":[1,[2,[3,{"b":-1.25e-07}]]]}}]}',
         _headers(b"q-3/stop/1", b"dev.streamforge.queue.stop", ("ce_subject", b"q-3"), TIME,
                  source=b"/qm/web")),
    ),
    "empty_data": (
        (EVENTS, _make("dev.streamforge.queue.deleted", "q-4", "q-4/deleted", {}), "q-4"),
        ("queue-events", b"q-4", b"{}",
         _headers(b"q-4/deleted", b"dev.streamforge.queue.deleted", ("ce_subject", b"q-4"), TIME)),
    ),
    "extension": (
        (EVENTS, dict(_make("dev.streamforge.queue.started", "q-5", "q-5/started", {"queue_id": "q-5"}),
                      traceparent=TRACEPARENT), "q-5"),
        ("queue-events", b"q-5", b'{"queue_id":"q-5"}',
         _headers(b"q-5/started", b"dev.streamforge.queue.started", ("ce_subject", b"q-5"), TIME,
                  ("ce_traceparent", TRACEPARENT.encode()))),
    ),
}


class _Sent:
    def get(self, timeout: float | None = None) -> None:
        return None


class _RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, topic: str, **record: Any) -> _Sent:
        self.sent.append((topic, record))
        return _Sent()


def _publish(channel: str, event: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    bus = KafkaBus(KafkaSettings(bootstrap_servers="kafka.invalid:9092"))
    producer = _RecordingProducer()
    bus._producer = producer
    bus.publish(channel, event, key=key)
    assert len(producer.sent) == 1
    return producer.sent[0]


@pytest.mark.parametrize("name", list(CASES))
def test_the_record_is_byte_for_byte_what_consumers_read(name):
    (channel, event, key), (topic, key_bytes, value, headers) = CASES[name]
    sent_topic, record = _publish(channel, event, key)
    assert sent_topic == topic
    assert set(record) == {"key", "value", "headers"}
    assert type(record["key"]) is bytes and record["key"] == key_bytes
    assert type(record["value"]) is bytes and record["value"] == value
    assert isinstance(record["headers"], list)
    assert [(n, v) for n, v in record["headers"]] == headers
    assert all(type(n) is str and type(v) is bytes for n, v in record["headers"])


@pytest.mark.parametrize("name", list(CASES))
def test_the_sdk_reads_the_record_back_as_the_event(name):
    (channel, event, key), _ = CASES[name]
    _, record = _publish(channel, event, key)
    read = from_binary(KafkaMessage(dict(record["headers"]), record["key"], record["value"]))
    attrs = dict(read.get_attributes())
    assert attrs.pop("partitionkey") == key.encode()
    assert attrs == {k: v for k, v in event.items() if k != "data"}
    assert read.get_data() == json.loads(json.dumps(event["data"]))


@pytest.mark.parametrize("encode", [events_bench.hand, events_bench.sdk, events_bench.shared])
@pytest.mark.parametrize("name", list(CASES))
def test_each_benchmarked_encoder_writes_the_same_record(name, encode):
    """The SDK's own `to_binary` among them, with the options that make it match."""
    (_, event, key), (_, key_bytes, value, headers) = CASES[name]
    assert encode(event, key) == (headers, value, key_bytes)


def test_the_adapters_headers_and_value_are_the_records():
    (_, event, key), (_, key_bytes, value, headers) = CASES["unicode"]
    record = events.kafka_record(event, key)
    assert isinstance(record, KafkaMessage) and record.key == key_bytes
    assert events.kafka_headers(event) == list(record.headers.items()) == headers
    assert events.kafka_value(event) == record.value == value


def _wrapped(envelope: Any) -> events.Inbound:
    return events.Inbound(data=envelope, ce={"type": CE_KAFKA_RECORD, "source": "/kafka", "id": "p-0-1"})


ENVELOPE = {"specversion": "1.0", "id": "j-1/loading/10", "source": "/jobs/j-1", "type": "t",
            "subject": "q-1", "time": T, "datacontenttype": "application/json", "traceparent": TRACEPARENT}


@pytest.mark.parametrize("body", [{"data": {"queue_id": "q-1", "n": [1, {"é": None}]}},
                                  {"data_base64": base64.b64encode(b'{"queue_id":"q-1","n":[1,{"\\u00e9":null}]}')
                                   .decode()}])
def test_a_wrapped_structured_record_is_read_as_its_event(body):
    inbound = events.unwrap_kafka_record(_wrapped({**ENVELOPE, **body}))
    assert inbound.ce == {k: v for k, v in ENVELOPE.items() if k != "traceparent"}
    assert inbound.extensions == {"traceparent": TRACEPARENT}
    assert inbound.data == {"queue_id": "q-1", "n": [1, {"é": None}]}
    assert inbound.ce_identity == "/jobs/j-1#j-1/loading/10"


@pytest.mark.parametrize("change, message", [
    ({"specversion": "0.1"}, "specversion"),
    ({"specversion": "2.0"}, "specversion"),
    ({"data_base64": 5}, "malformed CloudEvent"),
    ({"data": "not json"}, "not valid JSON"),
    ({"data_base64": base64.b64encode(b"{nope").decode()}, "not valid JSON"),
    ({"data": json.loads("[" * 70 + "]" * 70)}, "nested more than"),
])
def test_a_wrapped_record_that_is_no_valid_event_is_a_client_error(change, message):
    with pytest.raises(ClientError, match=message):
        events.unwrap_kafka_record(_wrapped({**ENVELOPE, **change}))


@pytest.mark.parametrize("envelope", [{"queue_id": "q-1"}, [1, 2], {**ENVELOPE, "id": 7}])
def test_a_wrapped_plain_record_stays_as_it_came(envelope):
    inbound = _wrapped(envelope)
    assert events.unwrap_kafka_record(inbound) is inbound
