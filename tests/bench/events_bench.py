"""Encoding outgoing events as Kafka records (CloudEvents binary binding), side by side:

    .venv/bin/python -m tests.bench.events_bench [--events 50000] [--rounds 5]

    hand        headers and value built by hand: the publisher's original code, copied here
                as the baseline
    sdk         cloudevents.kafka.to_binary on an http.CloudEvent (compact JSON marshaller,
                key mapper, headers turned into kafka-python's list of pairs)
    message     the baseline's headers and value wrapped in the SDK's KafkaMessage type as is
    shared      what KafkaBus.publish hands the producer (events.kafka_record)

Each round encodes the same N events (shaped like the outbox's job status events) once with
each path, in turn; the figure per path is the best round, and the ratio is path / hand.
Every path's records are checked equal to the baseline's before timing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage
from cloudevents.kafka import to_binary as kafka_to_binary

from shared.adapters import events

Record = tuple[list[tuple[str, bytes]], bytes, bytes]


def hand_headers(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    headers = [("content-type", event.get("datacontenttype", "application/json").encode())]
    for key, value in event.items():
        if key not in ("data", "datacontenttype"):
            headers.append((f"ce_{key}", str(value).encode()))
    return headers


def hand_value(event: dict[str, Any]) -> bytes:
    return json.dumps(event["data"], separators=(",", ":")).encode()


def hand(event: dict[str, Any], key: str) -> Record:
    return hand_headers(event), hand_value(event), key.encode()


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def sdk(event: dict[str, Any], key: str) -> Record:
    """The SDK's binding with the options that give the baseline's bytes for the outbox's events.
    No option reaches the rest: `to_binary` leaves out an attribute named `partitionkey` and any
    attribute that is None (the baseline writes `ce_partitionkey`, and `None`), `.encode()`s values
    (a non-string raises AttributeError; the baseline writes `str(value)`); `http.CloudEvent`
    lower-cases attribute names and invents `id` and `time` when they are missing."""
    attrs = {k: v for k, v in event.items() if k != "data"}
    encoded = key.encode()
    message = kafka_to_binary(CloudEvent(attrs, event["data"]), data_marshaller=_compact,
                              key_mapper=lambda _: encoded)
    return list(message.headers.items()), bytes(message.value), encoded


def message(event: dict[str, Any], key: str) -> Record:
    record = KafkaMessage(dict(hand_headers(event)), key.encode(), hand_value(event))
    return list(record.headers.items()), bytes(record.value), bytes(record.key or b"")


def shared(event: dict[str, Any], key: str) -> Record:
    record = events.kafka_record(event, key)
    return list(record.headers.items()), bytes(record.value), bytes(record.key or b"")


PATHS: dict[str, Callable[[dict[str, Any], str], Record]] = {
    "hand": hand, "sdk": sdk, "message": message, "shared": shared,
}


def workload(n: int) -> list[tuple[dict[str, Any], str]]:
    out = []
    for i in range(n):
        queue = f"q-{i % 100:03d}"
        data = {"queue_id": queue, "job_id": f"j-{i}", "target": "orders", "type": "replication",
                "status": "running", "previous": "pending", "records_written": i * 7,
                "error_message": None if i % 10 else "échec réseau"}
        event = events.make(type_="dev.streamforge.job.status.changed", source="/qm", subject=queue,
                            id_=f"{queue}/j-{i}/running", data=data, time="2026-01-02T03:04:05.678901+00:00")
        out.append((event, queue))
    return out


def run(n: int, rounds: int) -> dict[str, float]:
    items = workload(n)
    baseline = [hand(e, k) for e, k in items]
    for name, path in PATHS.items():
        if [path(e, k) for e, k in items] != baseline:
            raise SystemExit(f"{name}: records differ from the hand-built ones")
    best = {name: float("inf") for name in PATHS}
    for _ in range(rounds):
        for name, path in PATHS.items():
            t0 = time.perf_counter()
            for event, key in items:
                path(event, key)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    best = run(args.events, args.rounds)
    print(f"{args.events} events, best of {args.rounds} rounds")
    for name, seconds in best.items():
        print(f"  {name:8s} {seconds * 1e3:8.1f} ms  {seconds / args.events * 1e6:6.2f} us/event  "
              f"x{seconds / best['hand']:.2f}")


if __name__ == "__main__":
    main()
