"""Sample requests and events, built with overrides."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from shared.core import constants


def telemetry(queue_id: str, **overrides: Any) -> dict[str, Any]:
    body = {"type": "telemetry", "queue_id": queue_id, "status": "loading", "records_written": 0}
    body.update(overrides)
    return body


def kafka_source_event(
    value: Any, *, topic: str = "queue-control", partition: int = 0, offset: int = 0,
    key: str | None = None, headers: list[tuple[str, bytes]] | None = None,
    timestamp_ms: int = 1717200000000, namespace: str = "streamforge", name: str = "queue-control-telemetry",
) -> tuple[dict[str, str], bytes]:
    """The HTTP request Knative's KafkaSource dispatcher POSTs for a Kafka record that is not
    a CloudEvent (it wraps it as dev.knative.kafka.event, binary mode): headers and body.

    `value` is the record value (a dict is JSON-encoded), `headers` its Kafka headers. What it
    does not do: pass a record that is a CloudEvent (``ce_*`` headers, or a content-type of
    application/cloudevents+json) through; the dispatcher's user-agent; retries, ordering,
    offsets, dead letters. tests/integration/test_kafka_source_format.py compares its output
    with what the real dispatcher sends for the same records.
    """
    # Java's ISO_OFFSET_DATE_TIME: the fraction without trailing zeros, none for whole seconds.
    stamp = dt.datetime.fromtimestamp(timestamp_ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if timestamp_ms % 1000:
        stamp += f".{timestamp_ms % 1000:03d}".rstrip("0")
    out = {
        "prefer": "reply",
        "kn-namespace": namespace,
        "ce-specversion": "1.0",
        "ce-id": f"partition:{partition}/offset:{offset}",
        "ce-source": f"/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}",
        "ce-type": constants.CE_KAFKA_RECORD,
        "ce-subject": f"partition:{partition}#{offset}",
        "ce-time": stamp + "Z",
        "ce-knativekafkapartition": str(partition),
        "ce-knativekafkaoffset": str(offset),
    }
    if key is not None:
        out["ce-key"] = key
        out["ce-partitionkey"] = key
    for k, v in headers or []:
        if k.lower() == "content-type":
            out["content-type"] = v.decode()
        else:
            out["ce-kafkaheader" + re.sub(r"[^a-z0-9]", "", k.lower())] = v.decode()
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return out, body


def binary_event(
    type_: str, data: Any, *, id_: str | None = None, source: str = "/tests"
) -> tuple[dict[str, str], bytes]:
    return {
        "ce-specversion": "1.0",
        "ce-id": id_ or str(uuid.uuid4()),
        "ce-source": source,
        "ce-type": type_,
        "content-type": "application/json",
    }, json.dumps(data).encode()


def structured_event(
    type_: str, data: Any, *, id_: str | None = None, source: str = "/tests"
) -> tuple[dict[str, str], bytes]:
    body = {"specversion": "1.0", "id": id_ or str(uuid.uuid4()), "source": source, "type": type_,
            "datacontenttype": "application/json", "data": data}
    return {"content-type": "application/cloudevents+json"}, json.dumps(body).encode()
