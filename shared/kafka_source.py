"""A local stand-in for Knative's KafkaSource, for development and tests.

It consumes a topic in a consumer group and POSTs each record to a sink the
way KafkaSource does: a record that already is a CloudEvent (binary `ce_*`
headers, or a structured JSON event) goes through unchanged; any other record
becomes a `dev.knative.kafka.event` whose data is the record value. Delivery
is ordered per partition, retried with exponential backoff on 404, 408, 409,
429 and 5xx, and dead-lettered to a Kafka topic when retries run out; offsets
are committed only after a record was delivered or dead-lettered, so a crash
redelivers (at least once). Production uses KafkaSource itself.

    python -m shared.kafka_source --topic queue-control --sink http://127.0.0.1:8080/
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import logging
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from shared import constants
from shared.bus import client_config
from shared.config import KafkaSettings, Settings

log = logging.getLogger("streamforge.kafka_source")
RETRYABLE = frozenset({404, 408, 409, 429})


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

    def post(self, delivery: Delivery) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", self.path, body=delivery.body, headers=delivery.headers)
                resp = self._conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@dataclass
class KafkaSourceAdapter:
    kafka: KafkaSettings
    topic: str
    sink: str
    group: str = "queue-manager-telemetry"
    namespace: str = "local"
    name: str = "queue-control-telemetry"
    dead_letter_topic: str | None = "queue-control-dlq"
    retries: int = 5
    backoff_delay: float = 0.2
    initial_offset: str = "earliest"

    def __post_init__(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        conf = client_config(self.kafka)
        self._consumer = KafkaConsumer(self.topic, group_id=self.group, enable_auto_commit=False,
                                       auto_offset_reset=self.initial_offset, **conf)
        self._producer = KafkaProducer(acks="all", enable_idempotence=True, **conf) \
            if self.dead_letter_topic else None
        self._sink = Sink(self.sink)
        self.delivered = 0
        self.dead_lettered = 0

    def _deliver(self, delivery: Delivery) -> tuple[int | None, str]:
        status, detail = None, ""
        for attempt in range(self.retries + 1):
            try:
                status, body = self._sink.post(delivery)
                detail = body[:512].decode(errors="replace")
            except (OSError, http.client.HTTPException) as e:
                status, detail = None, f"{type(e).__name__}: {e}"
            if status is not None and 200 <= status < 300:
                return status, detail
            if status is not None and status < 500 and status not in RETRYABLE:
                break
            if attempt < self.retries:
                time.sleep(self.backoff_delay * 2**attempt)
        return status, detail

    def _dead_letter(self, delivery: Delivery, status: int | None, detail: str) -> None:
        assert self._producer is not None
        headers = [(k.replace("ce-", "ce_", 1) if k.startswith("ce-") else k, v.encode())
                   for k, v in delivery.headers.items()]
        headers += [("ce_knativeerrordest", self.sink.encode()),
                    ("ce_knativeerrorcode", str(status or 0).encode()),
                    ("ce_knativeerrordata", detail.encode())]
        self._producer.send(self.dead_letter_topic, value=delivery.body, headers=headers).get(timeout=30)

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Deliver one batch in order, then commit it; return how many records it held."""
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        count = 0
        for records in batches.values():
            for record in records:
                delivery = to_delivery(record, namespace=self.namespace, name=self.name)
                status, detail = self._deliver(delivery)
                if status is not None and 200 <= status < 300:
                    self.delivered += 1
                elif self._producer is not None:
                    log.warning("dead-lettering %s after %s: %s", delivery.headers.get("ce-id"), status, detail)
                    self._dead_letter(delivery, status, detail)
                    self.dead_lettered += 1
                else:
                    raise RuntimeError(f"delivery failed ({status}) and no dead-letter topic: {detail}")
                count += 1
        if count:
            self._consumer.commit()
        return count

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()

    def close(self) -> None:
        self._consumer.close()
        if self._producer is not None:
            self._producer.close()


def main(argv: list[str] | None = None) -> None:
    kafka = Settings.from_env().kafka
    parser = argparse.ArgumentParser(description="Deliver Kafka records to a sink as KafkaSource does.")
    parser.add_argument("--topic", default=kafka.control_topic)
    parser.add_argument("--sink", required=True, help="URL to POST each record to")
    parser.add_argument("--group", default="queue-manager-telemetry")
    parser.add_argument("--dead-letter-topic", default="queue-control-dlq")
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--backoff-delay", type=float, default=0.2, help="seconds; doubles per retry")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    adapter = KafkaSourceAdapter(kafka, args.topic, args.sink, group=args.group,
                                 dead_letter_topic=args.dead_letter_topic, retries=args.retries,
                                 backoff_delay=args.backoff_delay)
    stop = threading.Event()
    try:
        adapter.run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        adapter.close()


if __name__ == "__main__":
    main()
