"""Prometheus metrics, `queue_manager_*`.

Counters are per instance (Prometheus sums them across pods); the queue gauges
are read from the state store at scrape time, so they stay right however many
instances run or have scaled to zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.core.models import QueueStatus

REGISTRY = CollectorRegistry(auto_describe=True)
_PROCESS_START = time.monotonic()

STARTS = Counter("queue_manager_starts", "Start commands by outcome (created, replayed)",
                 ["outcome"], registry=REGISTRY)
STOPS = Counter("queue_manager_stops", "Stop commands by outcome (stopped, already_terminal)",
                ["outcome"], registry=REGISTRY)
TELEMETRY = Counter("queue_manager_telemetry", "Telemetry messages by outcome "
                    "(applied, duplicate, unknown_queue, unknown_job, ignored, invalid)",
                    ["outcome"], registry=REGISTRY)
JOBS_LAUNCHED = Counter("queue_manager_jobs_launched", "Jobs submitted to the launcher",
                        ["target"], registry=REGISTRY)
PERIODS_SKIPPED = Counter("queue_manager_periods_skipped", "Periods a partitioned start did not load because "
                          "another queue had loaded or was loading them, by type", ["type"], registry=REGISTRY)
EVENTS_PUBLISHED = Counter("queue_manager_events_published", "Events published by channel",
                           ["channel"], registry=REGISTRY)
ERRORS = Counter("queue_manager_errors", "Requests that failed, by kind (client, backend, internal)",
                 ["function", "kind"], registry=REGISTRY)
REQUESTS = Histogram("queue_manager_request_duration_seconds", "Request handling time",
                     ["function", "code"], registry=REGISTRY,
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
JOB_RESULTS = Counter("queue_manager_job_results", "Jobs that ended, by target and final status",
                      ["target", "status"], registry=REGISTRY)
LEASE_EXPIRATIONS = Counter("queue_manager_lease_expirations", "Slot leases taken over after expiring",
                            ["pool"], registry=REGISTRY)
ADMISSION_WAIT = Histogram("queue_manager_admission_wait_seconds",
                           "From a queue's start to each of its jobs' launch", ["target"], registry=REGISTRY,
                           buckets=(0.1, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600))
COLD_START = Gauge("queue_manager_cold_start_seconds",
                   "Seconds from process start to the first request served",
                   ["function"], registry=REGISTRY)
_first_request_seen: set[str] = set()
STATE_GAUGES = {"queue_manager_queues": ("status",), "queue_manager_jobs": ("target", "status")}
"""The gauges counted in the state store at scrape time, and their labels."""


def observe_first_request(function: str) -> None:
    if function not in _first_request_seen:
        _first_request_seen.add(function)
        COLD_START.labels(function).set(time.monotonic() - _PROCESS_START)


class QueueGauges(Collector):
    """queue_manager_queues{status}: counted in the state store at scrape time."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("queue_manager_queues", "Queues by status", labels=["status"])
        try:
            counts = self._count()
        except Exception:  # a scrape must not fail because the store is down
            counts = None
        if counts is not None:
            for status in QueueStatus:
                family.add_metric([status.value], counts.get(status.value, 0))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("queue_manager_queues", "Queues by status", labels=["status"])


class JobGauges(Collector):
    """queue_manager_jobs{target,status}: pending, launched (admitted) and running jobs of active queues."""

    def __init__(self, count: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("queue_manager_jobs", "Jobs of active queues by target and status",
                                   labels=list(STATE_GAUGES["queue_manager_jobs"]))
        try:
            counts = self._count()
        except Exception:  # a scrape must not fail because the store is down
            counts = {}
        for (target, status), n in sorted(counts.items()):
            family.add_metric([target, status], n)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("queue_manager_jobs", "Jobs of active queues by target and status",
                                labels=["target", "status"])


SCHEDULE_TICKS = Counter("queue_manager_schedule_ticks", "Schedule fire times handled, by outcome "
                         "(started, replayed, covered, forbidden, replaced, missed, failed)",
                         ["outcome"], registry=REGISTRY)
SCHEDULE_TICK_OUTCOMES = ("started", "replayed", "covered", "forbidden", "replaced", "missed", "failed")
for _outcome in SCHEDULE_TICK_OUTCOMES:  # exposed at 0 from the start, so increase() sees the first one
    SCHEDULE_TICKS.labels(_outcome)
SCHEDULE_GAUGES: dict[str, tuple[str, str]] = {
    "queue_manager_schedule_next_run_timestamp_seconds": (
        "next_run", "Fire time of the schedule's next tick not yet handled (unpaused schedules)"),
    "queue_manager_schedule_last_run_timestamp_seconds": (
        "last_run", "Fire time of the schedule's latest run started"),
    "queue_manager_schedule_run_elapsed_seconds": (
        "run_elapsed", "Seconds since the latest run's queue started, while that queue is active"),
    "queue_manager_schedule_run_estimate_seconds": (
        "run_estimate", "Estimated duration of the latest run (from its ETA), when known"),
}
"""The schedule gauges read from the state store at scrape time -> (row key, help)."""
STATE_GAUGES.update({name: ("schedule",) for name in SCHEDULE_GAUGES})


class ScheduleGauges(Collector):
    """queue_manager_schedule_*{schedule}: each schedule's next and latest run, read at scrape time.

    `read` returns one dict per schedule: `schedule`, `paused`, `next_run`, `last_run` (epoch
    seconds), `run_elapsed`, `run_estimate` (seconds); None gives no sample, and a paused
    schedule no next run.
    """

    def __init__(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        self._read = read

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {name: GaugeMetricFamily(name, doc, labels=["schedule"])
                for name, (_, doc) in SCHEDULE_GAUGES.items()}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = self._families()
        try:
            for row in self._read():
                for name, (key, _) in SCHEDULE_GAUGES.items():
                    value = row.get(key)
                    if value is None or (key == "next_run" and row.get("paused")):
                        continue
                    families[name].add_metric([str(row["schedule"])], float(value))
        except Exception:  # a scrape must not fail because the store is down
            families = self._families()
        yield from families.values()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families().values()


_collectors: list[Collector] = []


def bind_state(count: Callable[[], dict[str, int]],
               count_jobs: Callable[[], dict[tuple[str, str], int]] | None = None,
               schedules: Callable[[], list[dict[str, Any]]] | None = None) -> None:
    """Point the state-derived gauges at the current store (once per runtime)."""
    for collector in _collectors:
        REGISTRY.unregister(collector)
    _collectors[:] = ([QueueGauges(count)] + ([JobGauges(count_jobs)] if count_jobs else [])
                      + ([ScheduleGauges(schedules)] if schedules else []))
    for collector in _collectors:
        REGISTRY.register(collector)
