"""What Knative's event sources send, and how: the request KafkaSource POSTs for one
Kafka record, a keep-alive client for the sink, the outcome of one attempt, and the
error extensions Knative's Kafka data plane puts on an event it dead-letters.

Shared by the local stand-ins for KafkaSource (shared/kafka_source.py) and
ApiServerSource (shared/kube_watch.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from shared import constants

ERROR_DATA_MAX_BYTES = 1024


@dataclass(frozen=True)
class Delivery:
    """An HTTP request ready to POST: what KafkaSource would send for one record."""

    headers: dict[str, str]
    body: bytes


def _header_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def to_delivery(record: Any, *, namespace: str, name: str) -> Delivery:
    headers = {k: v.decode(errors="replace") if isinstance(v, bytes) else str(v)
               for k, v in (record.headers or [])}
    value = record.value or b""
    if "ce_specversion" in headers:
        out = {f"ce-{k[3:]}": v for k, v in headers.items() if k.startswith("ce_")}
        if "content-type" in headers:
            out["content-type"] = headers["content-type"]
        return Delivery(out, value)
    if headers.get("content-type", "").startswith("application/cloudevents+json"):
        return Delivery({"content-type": headers["content-type"]}, value)
    try:
        parsed = json.loads(value) if value else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and {"specversion", "id", "source", "type"} <= parsed.keys():
        return Delivery({"content-type": "application/cloudevents+json"}, value)
    stamp = dt.datetime.fromtimestamp(record.timestamp / 1000, dt.UTC)
    out = {
        "ce-specversion": "1.0",
        "ce-type": constants.CE_KAFKA_RECORD,
        "ce-source": f"/apis/v1/namespaces/{namespace}/kafkasources/{name}#{record.topic}",
        "ce-subject": f"partition:{record.partition}#{record.offset}",
        "ce-id": f"partition:{record.partition}/offset:{record.offset}",
        "ce-time": stamp.isoformat().replace("+00:00", "Z"),
        "content-type": headers.get("content-type")
        or ("application/json" if parsed is not None else "application/octet-stream"),
    }
    if record.key is not None:
        key = record.key.decode(errors="replace")
        out["ce-key"] = key
        out["ce-partitionkey"] = key
    for k, v in headers.items():
        if k != "content-type":
            out[f"ce-kafkaheader{_header_name(k)}"] = v
    return Delivery(out, value)


class Sink:
    """A keep-alive HTTP client for one sink URL."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, delivery: Delivery) -> tuple[int, bytes, dict[str, str]]:
        """:returns: status, body and headers of the response; :raises OSError: no response."""
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", self.path, body=delivery.body, headers=delivery.headers)
                resp = self._conn.getresponse()
                return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Outcome:
    """The last attempt at delivering one record: its HTTP response, if any."""

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def error_extensions(sink: str, outcome: Outcome) -> dict[str, str]:
    """What Knative's Kafka data plane adds to an event before dead-lettering it:
    `knativeerrordest` always; with a response, `knativeerrorcode`, `knativeerrordata`
    (the body's first 1024 bytes, base64) and each `kne-<name>` response header as `<name>`."""
    ext = {"knativeerrordest": sink}
    if outcome.status is None:
        return ext
    ext["knativeerrorcode"] = str(outcome.status)
    ext["knativeerrordata"] = base64.b64encode(outcome.body[:ERROR_DATA_MAX_BYTES]).decode()
    for k, v in outcome.headers.items():
        if k.startswith("kne-") and len(k) > 4:
            ext[k[4:]] = v
    return ext
