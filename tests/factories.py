"""Sample requests and events, built with overrides."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared import constants


def telemetry(queue_id: str, **overrides: Any) -> dict[str, Any]:
    body = {"type": "telemetry", "queue_id": queue_id, "status": "loading", "records_written": 0}
    body.update(overrides)
    return body


def kafka_source_event(
    value: dict[str, Any], *, topic: str = "queue-control", partition: int = 0, offset: int = 0,
    key: str | None = None, namespace: str = "streamforge", name: str = "queue-control-telemetry",
) -> tuple[dict[str, str], bytes]:
    """A record as KafkaSource delivers it: binary mode, type dev.knative.kafka.event."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": f"partition:{partition}/offset:{offset}",
        "ce-source": f"/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}",
        "ce-type": constants.CE_KAFKA_RECORD,
        "ce-subject": f"partition:{partition}#{offset}",
        "ce-time": "2024-06-01T00:00:00Z",
        "content-type": "application/json",
    }
    if key is not None:
        headers["ce-key"] = key
        headers["ce-partitionkey"] = key
    return headers, json.dumps(value).encode()


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
