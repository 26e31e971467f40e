"""Where outgoing events go: Kafka when configured, else a local JSON-lines file.

Events to `queue-events` and commands to `queue-control` use the CloudEvents
Kafka binary binding, keyed by queue id so one queue's messages stay in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import Any, Protocol

from shared.adapters import events
from shared.core.config import KafkaSettings, Settings
from shared.core.errors import BackendUnavailable

EVENTS = "events"
CONTROL = "control"


class Bus(Protocol):
    kind: str

    def publish(self, channel: str, event: dict[str, Any], key: str) -> None:
        """:raises BackendUnavailable:"""

    def ping(self) -> None: ...

    def close(self) -> None: ...


class LocalBus:
    """The embedded default: appends to `<local_dir>/events.jsonl`, readable by anyone."""

    kind = "local"

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "events.jsonl")
        self._lock = threading.Lock()

    def publish(self, channel: str, event: dict[str, Any], key: str) -> None:
        line = json.dumps({"channel": channel, "key": key, "event": event}, separators=(",", ":"))
        with self._lock, open(self.path, "a") as f:
            f.write(line + "\n")

    def read(self, queue_id: str | None = None) -> list[dict[str, Any]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [r for r in rows if queue_id is None or r["key"] == queue_id]

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


RECONNECT_BACKOFF_MAX_MS = 1000
"""Cap on kafka-python's reconnect backoff (default 30 s): after a broker outage clients
reconnect within a second of it coming back instead of up to half a minute later."""


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python settings from the seed's env names (shared with consumers and tools).

    kafka-python 3.0.12 bootstraps eagerly in every client's constructor and, with wrong
    SASL credentials, never reports the broker's authentication failure: the client
    only gives up after `bootstrap_timeout_ms` (default 30 s, whatever the other
    timeouts). Bounding it by `timeout_ms` makes an unreachable broker or a rejected
    password a prompt `KafkaTimeoutError` (hence a 503 naming Kafka), not a hang.
    """
    conf: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "request_timeout_ms": kafka.timeout_ms,
        "bootstrap_timeout_ms": kafka.timeout_ms,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    if kafka.user:
        conf.update(
            security_protocol="SASL_SSL" if kafka.ca_path else "SASL_PLAINTEXT",
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.user,
            sasl_plain_password=kafka.password,
        )
        if kafka.ca_path:
            conf["ssl_cafile"] = kafka.ca_path
    elif kafka.ca_path:
        conf.update(security_protocol="SSL", ssl_cafile=kafka.ca_path)
    return conf


def open_client(cls: Any, **configs: Any) -> Any:
    """`cls(**configs)` for a kafka-python KafkaProducer/KafkaConsumer/KafkaAdminClient.

    kafka-python 3.0.12 leaves a failed constructor's network client (its IO thread and
    socketpair) behind; this closes it, so a process that keeps retrying an unreachable
    or misconfigured broker (every readiness probe) does not leak a thread per attempt.
    """
    from kafka.net.compat import KafkaNetClient

    made: list[Any] = []

    def kafka_client(**kw: Any) -> Any:
        made.append(KafkaNetClient(**kw))
        return made[-1]

    try:
        return cls(**configs, kafka_client=kafka_client)
    except BaseException:
        for client in made:
            with contextlib.suppress(Exception):
                client.close()
        raise


class KafkaBus:
    kind = "kafka"

    def __init__(self, kafka: KafkaSettings) -> None:
        self.settings = kafka
        self._producer: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer
                from kafka.errors import KafkaError

                try:
                    self._producer = open_client(
                        KafkaProducer,
                        **client_config(self.settings),
                        acks="all",
                        enable_idempotence=True,
                        max_block_ms=self.settings.timeout_ms,
                        linger_ms=0,
                    )
                except KafkaError as e:
                    raise BackendUnavailable("kafka", f"{type(e).__name__}: {e}") from e
            return self._producer

    def topic(self, channel: str) -> str:
        return self.settings.events_topic if channel == EVENTS else self.settings.control_topic

    def publish(self, channel: str, event: dict[str, Any], key: str) -> None:
        from kafka.errors import KafkaError

        producer = self._get()
        record = events.kafka_record(event, key)
        try:
            future = producer.send(
                self.topic(channel),
                value=record.value,
                key=record.key,
                headers=list(record.headers.items()),
            )
            future.get(timeout=self.settings.timeout_ms / 1000)
        except KafkaError as e:
            raise BackendUnavailable("kafka", f"{type(e).__name__}: {e}") from e

    def ping(self) -> None:
        """A fresh metadata round trip: the producer's cached metadata would still list the
        topic while the broker is down."""
        from kafka.errors import KafkaError

        producer = self._get()
        timeout = self.settings.timeout_ms / 1000
        try:
            answered = threading.Event()
            future = producer._metadata.request_update()
            future.add_both(lambda *_: answered.set())
            producer._sender.wakeup()
            if not answered.wait(timeout):
                raise BackendUnavailable("kafka", f"no metadata from {self.settings.bootstrap_servers} "
                                                  f"within {timeout:g}s")
            if future.failed():
                raise future.exception
            producer.partitions_for(self.settings.events_topic)
        except KafkaError as e:
            raise BackendUnavailable("kafka", f"{type(e).__name__}: {e}") from e

    def flush(self, timeout: float | None = None) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=timeout)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.settings.timeout_ms / 1000)
            self._producer = None


def open_bus(settings: Settings) -> Bus:
    if settings.kafka.enabled:
        return KafkaBus(settings.kafka)
    return LocalBus(settings.local_dir)
