"""A local stand-in for Knative's KafkaSource, for development and tests.

It consumes a topic in a consumer group and POSTs each record to a sink the
way KafkaSource does: a record that already is a CloudEvent (binary `ce_*`
headers, or a structured JSON event) goes through unchanged; any other record
becomes a `dev.knative.kafka.event` whose data is the record value. Delivery
is ordered per partition, retried with backoff on 404, 408, 409, 429, 5xx and
no response. When retries run out the event goes, with the error extensions
Knative's Kafka data plane adds (`knativeerrordest`; with a response also
`knativeerrorcode` and `knativeerrordata`, the body base64-encoded), to a
dead-letter Kafka topic in the binary binding; without one it is dropped, as
Knative does. Offsets are committed only after a record was delivered,
dead-lettered or dropped, so a crash redelivers (at least once); unlike
Knative, a record whose dead-lettering fails (Kafka down) is retried, not lost.
Production uses KafkaSource itself.

    python -m shared.kafka_source --topic queue-control --sink http://127.0.0.1:8080/telemetry
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from shared.bus import client_config, open_client
from shared.config import KafkaSettings, Settings
from shared.delivery import Delivery, Outcome, Sink, error_extensions, to_delivery

log = logging.getLogger("streamforge.kafka_source")
RETRYABLE = frozenset({404, 408, 409, 429})


@dataclass
class KafkaSourceAdapter:
    """KafkaSource for one topic and sink, driven by `run()` (or `poll_once()` in tests).

    `retries`, `backoff_policy` (exponential or linear) and `backoff_delay` are
    KafkaSource's `delivery` settings; `backoff_max` (seconds, none by default) caps
    a single wait, a local extension for riding out outages with many retries.
    """

    kafka: KafkaSettings
    topic: str
    sink: str
    group: str = "queue-manager-telemetry"
    namespace: str = "local"
    name: str = "queue-control-telemetry"
    dead_letter_topic: str | None = "queue-control-dlq"
    retries: int = 5
    backoff_delay: float = 0.2
    backoff_policy: str = "exponential"
    backoff_max: float | None = None
    initial_offset: str = "earliest"
    timeout: float = 10.0
    commit_interval: float = 1.0
    """Seconds between offset commits (Knative's data plane commits periodically too): a
    commit per batch would cost a broker round trip per record at low rates."""

    def __post_init__(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        conf = client_config(self.kafka)
        self._stopping = threading.Event()
        self._consumer = open_client(KafkaConsumer, group_id=self.group, enable_auto_commit=False,
                                     auto_offset_reset=self.initial_offset, **conf)
        try:
            self._producer = open_client(KafkaProducer, acks="all", enable_idempotence=True, linger_ms=0,
                                         max_block_ms=self.kafka.timeout_ms, **conf) \
                if self.dead_letter_topic else None
        except BaseException:
            self._consumer.close()
            raise
        self._consumer.subscribe([self.topic])
        self._sink = Sink(self.sink, timeout=self.timeout)
        self._uncommitted: dict[Any, Any] = {}
        self._committed_at = 0.0
        self.statuses: collections.Counter[int | None] = collections.Counter()  # per attempt; None: no response
        self.delivered = self.dead_lettered = self.dropped = 0

    def _delay(self, attempt: int) -> float:
        linear = self.backoff_policy == "linear"
        delay = self.backoff_delay * (attempt + 1 if linear else 2**attempt)
        return min(delay, self.backoff_max) if self.backoff_max is not None else delay

    def _deliver(self, delivery: Delivery) -> Outcome:
        outcome = Outcome(None)
        for attempt in range(self.retries + 1):
            try:
                outcome = Outcome(*self._sink.post(delivery))
            except (OSError, http.client.HTTPException) as e:
                outcome = Outcome(None, error=f"{type(e).__name__}: {e}")
            self.statuses[outcome.status] += 1
            if outcome.ok:
                return outcome
            if outcome.status is not None and outcome.status < 500 and outcome.status not in RETRYABLE:
                break
            if attempt < self.retries and self._stopping.wait(self._delay(attempt)):
                break
        return outcome

    def _dead_letter(self, record: Any, delivery: Delivery, outcome: Outcome) -> None:
        """The event plus the error extensions to the dead-letter topic, same key, in the
        mode it came in (binary: `ce_` headers; structured: in the envelope). :raises KafkaError:"""
        assert self._producer is not None
        ext, body = error_extensions(self.sink, outcome), delivery.body
        if "ce-specversion" in delivery.headers:
            headers = {(f"ce_{k[3:]}" if k.startswith("ce-") else k): v for k, v in delivery.headers.items()}
            headers.update({f"ce_{k}": v for k, v in ext.items()})
        else:
            headers = dict(delivery.headers)
            with contextlib.suppress(ValueError, TypeError):
                body = json.dumps({**json.loads(body), **ext}).encode()
        self._producer.send(self.dead_letter_topic, value=body, key=record.key,
                            headers=[(k, v.encode()) for k, v in headers.items()]
                            ).get(timeout=self.kafka.timeout_ms / 1000)

    def _handle(self, record: Any) -> bool:
        """Deliver one record (or dead-letter or drop it); False: try it again later."""
        from kafka.errors import KafkaError

        delivery = to_delivery(record, namespace=self.namespace, name=self.name)
        outcome = self._deliver(delivery)
        if outcome.ok:
            self.delivered += 1
            return True
        if self._stopping.is_set():
            return False
        detail = outcome.error or outcome.body[:200].decode(errors="replace")
        if self._producer is None:
            log.error("dropping %s after %s: %s (no dead-letter topic)", delivery.headers.get("ce-id"),
                      outcome.status, detail)
            self.dropped += 1
            return True
        try:
            self._dead_letter(record, delivery, outcome)
        except KafkaError as e:
            log.warning("dead-lettering %s failed (%s); it will be retried", delivery.headers.get("ce-id"), e)
            return False
        log.warning("dead-lettered %s after %s: %s", delivery.headers.get("ce-id"), outcome.status, detail)
        self.dead_lettered += 1
        return True

    def _commit(self, force: bool = False) -> None:
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        if not self._uncommitted or (not force and time.monotonic() - self._committed_at < self.commit_interval):
            return
        self._committed_at = time.monotonic()
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._uncommitted.items()}
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as e:  # a rebalance took the partitions: their new owner redelivers
            log.warning("offset commit rejected (%s); those records will be delivered again", e)
            self._uncommitted.clear()
            return
        except KafkaError as e:  # kept, and committed later (redelivery is harmless anyway)
            log.warning("offset commit failed (%s); retrying", e)
            return
        for tp, offset in offsets.items():
            if self._uncommitted.get(tp) == offset.offset:
                del self._uncommitted[tp]

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Deliver one batch in order per partition; commit what was handled (every
        `commit_interval` seconds).

        A record that could be neither delivered nor dead-lettered (Kafka down) stops its
        partition: the consumer seeks back to it, so it comes again with the next poll.
        Returns how many records were handled.
        """
        self._commit()
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        count = 0
        for tp, records in batches.items():
            for record in records:
                if not self._handle(record):
                    self._consumer.seek(tp, record.offset)
                    self._stopping.wait(self.backoff_delay)
                    break
                self._uncommitted[tp] = record.offset + 1
                count += 1
        self._commit()
        return count

    def run(self, stop: threading.Event) -> None:
        from kafka.errors import KafkaError

        while not stop.is_set() and not self._stopping.is_set():
            try:
                self.poll_once()
            except KafkaError as e:
                log.warning("poll failed (%s); retrying", e)
                stop.wait(1.0)

    def stop(self) -> None:
        """Make `run()` and any delivery in backoff return soon (from another thread)."""
        self._stopping.set()

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(Exception):
            self._commit(force=True)
        self._consumer.close()
        if self._producer is not None:
            self._producer.close(timeout=self.kafka.timeout_ms / 1000)
        self._sink.close()


def main(argv: list[str] | None = None) -> None:
    kafka = Settings.from_env().kafka
    parser = argparse.ArgumentParser(description="Deliver Kafka records to a sink as KafkaSource does.")
    parser.add_argument("--topic", default=kafka.control_topic)
    parser.add_argument("--sink", required=True, help="URL to POST each record to")
    parser.add_argument("--group", default="queue-manager-telemetry")
    parser.add_argument("--dead-letter-topic", default="queue-control-dlq", help="empty: drop failed events")
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--backoff-policy", choices=("exponential", "linear"), default="exponential")
    parser.add_argument("--backoff-delay", type=float, default=0.2, help="seconds; doubles per retry")
    parser.add_argument("--backoff-max", type=float, default=None, help="cap on one wait, seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    adapter = KafkaSourceAdapter(kafka, args.topic, args.sink, group=args.group,
                                 dead_letter_topic=args.dead_letter_topic or None, retries=args.retries,
                                 backoff_policy=args.backoff_policy, backoff_delay=args.backoff_delay,
                                 backoff_max=args.backoff_max)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()
        adapter.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("delivering %s to %s (group %s)", args.topic, args.sink, args.group)
    try:
        adapter.run(stop)
    finally:
        adapter.close()


if __name__ == "__main__":
    main()
