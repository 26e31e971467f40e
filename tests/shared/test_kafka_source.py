"""How the local KafkaSource stand-in shapes records (the wire format, without a broker)."""

from collections import namedtuple

from shared import constants
from shared.delivery import to_delivery

Record = namedtuple("Record", "topic partition offset timestamp key value headers")


def _record(value, headers=(), key=b"q-1", offset=41):
    return Record("queue-control", 2, offset, 1717200000000, key, value, list(headers))


def test_plain_record_becomes_a_kafka_event():
    d = to_delivery(_record(b'{"type": "telemetry"}', [("trace", b"abc")]), namespace="ns", name="src")
    assert d.headers["ce-type"] == constants.CE_KAFKA_RECORD
    assert d.headers["ce-source"] == "/apis/v1/namespaces/ns/kafkasources/src#queue-control"
    assert d.headers["ce-subject"] == "partition:2#41"
    assert d.headers["ce-id"] == "partition:2/offset:41"
    assert d.headers["ce-key"] == "q-1" and d.headers["ce-partitionkey"] == "q-1"
    assert d.headers["ce-kafkaheadertrace"] == "abc"
    assert d.headers["ce-time"] == "2024-06-01T00:00:00Z"
    assert d.headers["content-type"] == "application/json"
    assert d.body == b'{"type": "telemetry"}'


def test_binary_cloudevent_passes_through_unchanged():
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"e-1"), ("ce_source", b"/x"),
               ("ce_type", b"dev.streamforge.queue.telemetry"), ("content-type", b"application/json")]
    d = to_delivery(_record(b"{}", headers), namespace="ns", name="src")
    assert d.headers == {"ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "/x",
                         "ce-type": "dev.streamforge.queue.telemetry", "content-type": "application/json"}


def test_structured_cloudevent_passes_through_unchanged():
    value = b'{"specversion": "1.0", "id": "e", "source": "/x", "type": "t", "data": {}}'
    d = to_delivery(_record(value), namespace="ns", name="src")
    assert d.headers == {"content-type": "application/cloudevents+json"} and d.body == value


def test_non_json_record_is_octet_stream_without_key():
    d = to_delivery(_record(b"\x00\x01", key=None), namespace="ns", name="src")
    assert d.headers["content-type"] == "application/octet-stream" and "ce-key" not in d.headers
