"""CloudEvents in and out.

In: binary mode (`ce-*` headers), structured mode
(`application/cloudevents+json`), KafkaSource's wrapping of plain records
(`dev.knative.kafka.event`, data = the record value; `unwrap_kafka_record`
reads a wrapped structured-mode event), or plain JSON.
Out: events with reverse-DNS types, deterministic ids (so consumers can
de-duplicate), `subject` = queue id, for Kafka's binary binding or HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cloudevents.abstract import AnyCloudEvent
from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http
from cloudevents.kafka import KafkaMessage, from_structured

from shared.core.constants import CE_KAFKA_RECORD
from shared.core.errors import ClientError

SPECVERSION = "1.0"


@dataclass
class Inbound:
    """A decoded request: its JSON data and, for a CloudEvent, its attributes."""

    data: Any
    ce: dict[str, Any] | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def ce_type(self) -> str | None:
        return self.ce.get("type") if self.ce else None

    @property
    def ce_identity(self) -> str | None:
        """CloudEvents are unique by (source, id): the idempotency key of a command."""
        return f"{self.ce['source']}#{self.ce['id']}" if self.ce else None


MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a body: far more than any payload needs,
far less than the interpreter's recursion limit."""


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _bounded(value: Any, raw: bytes | bytearray | str, what: str) -> Any:
    """`value` (parsed from `raw`) if nested at most MAX_DEPTH levels. :raises ClientError:"""
    # Nesting needs at least as many brackets: most bodies are never walked.
    opening = raw.count("[") + raw.count("{") if isinstance(raw, str) else raw.count(b"[") + raw.count(b"{")
    if opening > MAX_DEPTH and _too_deep(value):
        raise ClientError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    return value


def _json(raw: Any, what: str) -> Any:
    if isinstance(raw, bytes | bytearray | str):
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ClientError(f"{what} is not valid JSON: {e}") from e
        except RecursionError as e:
            raise ClientError(f"{what} is nested more than {MAX_DEPTH} levels deep") from e
        return _bounded(value, raw, what)
    return raw


def is_cloudevent(headers: dict[str, str]) -> bool:
    ctype = headers.get("content-type", "")
    return "ce-specversion" in headers or ctype.startswith("application/cloudevents+json")


CORE = frozenset({"id", "source", "type", "specversion", "subject", "time", "datacontenttype",
                  "dataschema"})
REQUIRED = ("id", "source", "type")


def _binary(headers: dict[str, str], body: bytes) -> Inbound:
    """Binary mode read straight off the headers: the hot path of every delivery."""
    if headers["ce-specversion"] != SPECVERSION:
        raise ClientError(f"unsupported CloudEvents specversion {headers['ce-specversion']!r}")
    ce: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for key, value in headers.items():
        if key.startswith("ce-"):
            name = key[3:]
            (ce if name in CORE else extensions)[name] = value
    missing = [a for a in REQUIRED if not ce.get(a)]
    if missing:
        raise ClientError(f"malformed CloudEvent: missing {', '.join('ce-' + m for m in missing)}")
    if "content-type" in headers:
        ce["datacontenttype"] = headers["content-type"]
    return Inbound(data=_json(body, "CloudEvent data"), ce=ce, extensions=extensions)


def decode(headers: dict[str, str], body: bytes, *, lowered: bool = False) -> Inbound:
    """`lowered`: the header names are lower-case already.

    :raises ClientError: malformed JSON or CloudEvent.
    """
    if not lowered:
        headers = {k.lower(): v for k, v in headers.items()}
    if "ce-specversion" in headers:
        return _binary(headers, body)
    if not is_cloudevent(headers):
        return Inbound(data=_json(body, "request body"))
    try:
        event = from_http(headers, body)  # parses a structured event's JSON itself
    except GenericException as e:
        raise ClientError(f"malformed CloudEvent: {e}") from e
    except RecursionError as e:
        raise ClientError(f"CloudEvent is nested more than {MAX_DEPTH} levels deep") from e
    return _inbound(event, body)


def _inbound(event: AnyCloudEvent, body: bytes) -> Inbound:
    """An event the SDK decoded from `body`, its data read as JSON. :raises ClientError:"""
    attrs = dict(event.get_attributes())
    return Inbound(
        data=_bounded(_json(event.get_data(), "CloudEvent data"), body, "CloudEvent data"),
        ce={k: v for k, v in attrs.items() if k in CORE},
        extensions={k: v for k, v in attrs.items() if k not in CORE},
    )


STRUCTURED_KEYS = ("specversion", "id", "source", "type")


def unwrap_kafka_record(inbound: Inbound) -> Inbound:
    """KafkaSource takes a record for a CloudEvent only by its headers (`ce_*`, or
    `content-type: application/cloudevents+json`); a structured-mode event written without
    that header reaches the sink wrapped, as a `dev.knative.kafka.event` whose data is the
    whole envelope. Such data (a JSON object with string `specversion`, `id`, `source` and
    `type`) is read here as the event it is; anything else is returned unchanged.

    :raises ClientError: the envelope is not a valid CloudEvent.
    """
    data = inbound.data
    if inbound.ce_type != CE_KAFKA_RECORD or not isinstance(data, dict):
        return inbound
    if not all(isinstance(data.get(k), str) for k in STRUCTURED_KEYS):
        return inbound
    value = json.dumps(data).encode()
    try:
        event = from_structured(KafkaMessage({}, None, value))
    except GenericException as e:
        raise ClientError(f"malformed CloudEvent: {e}") from e
    except RecursionError as e:
        raise ClientError(f"CloudEvent is nested more than {MAX_DEPTH} levels deep") from e
    return _inbound(event, value)


def make(*, type_: str, source: str, subject: str, id_: str, data: dict[str, Any], time: str) -> dict[str, Any]:
    """An outgoing event as a plain dict (what the outbox stores)."""
    return {
        "specversion": SPECVERSION,
        "id": id_,
        "source": source,
        "type": type_,
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }


_COMPACT = json.JSONEncoder(separators=(",", ":")).encode
"""`json.dumps(data, separators=(",", ":"))` (ASCII-escaped), without a new encoder per call."""


def _ce_headers(event: dict[str, Any]) -> dict[str, bytes]:
    headers = {"content-type": event.get("datacontenttype", "application/json").encode()}
    for name, value in event.items():
        if name != "data" and name != "datacontenttype":
            headers["ce_" + name] = str(value).encode()
    return headers


def kafka_record(event: dict[str, Any], key: str) -> KafkaMessage:
    """The CloudEvents Kafka binary binding, as the SDK's record type: `content-type`, then one
    `ce_` header per attribute in the event's order (an extension named `partitionkey` too),
    compact JSON data, the key as given. Built here rather than by `cloudevents.kafka.to_binary`,
    which writes the same bytes at twice the cost (tests/bench/events_bench.py);
    tests/shared/test_kafka_binding.py holds the bytes consumers read."""
    return KafkaMessage(_ce_headers(event), key.encode(), kafka_value(event))


def kafka_headers(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    """`kafka_record`'s headers as kafka-python takes them: (name, value) pairs."""
    return list(_ce_headers(event).items())


def kafka_value(event: dict[str, Any]) -> bytes:
    return _COMPACT(event["data"]).encode()


def http_reply(event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """Binary-mode HTTP headers and body for replying with an event."""
    attrs = {k: v for k, v in event.items() if k != "data"}
    headers, body = to_binary(CloudEvent(attrs, event["data"]))
    return dict(headers), body
