"""Stored history for tests/bench/scale_bench.py: realistic queues, written through the store's API.

Queue i is for symbol `SYM<i % 300>USDT` on its own day, started one second after queue i-1,
built from one of the seed's example payloads (shared/examples) with the dataset names of its
symbol and day. 90% are finished; of the active 10%, half are loading (loaders and connectors
running, the rest waiting for their inputs) and half pending with their loaders waiting for a
slot of `loader-producer`, at priorities 1 to 10.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from shared.adapters.state import StateStore
from shared.core import facts, lineage, naming
from shared.core.fields import parse_time_range
from shared.core.lifecycle import new_queue
from shared.core.models import JobStatus, QueueStart, QueueState, QueueStatus, WaitReason
from shared.examples import load

SYMBOLS = 300
EXAMPLES = ("historical", "realtime", "legacy")
DAY0 = dt.date(2000, 1, 1)
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SLOT_TEXT = facts.SLOT_WAIT + "loader-producer 50/50 in use"
LIMITS = {"loader-producer": 50}
PASSWORD = "scale-bench-secret"
ARANGO_SEED_THREADS = 4
SQLITE_CHUNK = 1000  # creates per transaction while seeding
_PREFIXES = ("ARANGO_", "KAFKA_", "JOB_", "QM_", "QUEUE_", "KUBERNETES_SERVICE_HOST")


def symbol(i: int) -> str:
    return f"SYM{i % SYMBOLS + 1:04d}USDT"


def day_range(day: int) -> str:
    d = DAY0 + dt.timedelta(days=day)
    return f"{d:%Y-%m-%d}:{d:%Y-%m-%d}"


def payload(example: str, sym: str, time_range: str, priority: int = 5) -> dict:
    """The example for another symbol and day: its collection names follow (naming.dataset_name)."""
    body = load(example)
    old0, old1 = parse_time_range(body["time_range"])
    new0, new1 = parse_time_range(time_range)
    old_base, new_base = naming.base_asset(body["symbol"]), naming.base_asset(sym)
    text = json.dumps(body.get("requests", []))
    text = text.replace(naming.period(old0, old1), naming.period(new0, new1))
    text = re.sub(rf"(?<![a-z0-9]){old_base}(?=_)", new_base, text)
    body.update(symbol=sym, time_range=time_range, priority=priority)
    if "requests" in body:
        body["requests"] = json.loads(text)
    return body


def stamp(i: int) -> str:
    return (T0 + dt.timedelta(seconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def queue_id(run: int, i: int) -> str:
    return str(uuid.UUID(int=(run << 64) | i))


def is_active(i: int) -> bool:
    """One in ten; shifted by one every round of the symbols, so every symbol has active queues."""
    return (i + i // SYMBOLS) % 10 == 9


def loading(i: int) -> bool:
    """Of the active queues, half loading, half waiting for a slot."""
    return (i // 10) % 2 == 0


def build(run: int, i: int) -> QueueState:
    """Queue i of a history."""
    sym, started, day = symbol(i), stamp(i), i // SYMBOLS
    priority = (i // 20) % 10 + 1
    example = EXAMPLES[(i + day) % len(EXAMPLES)]  # not one example per symbol (300 = 3 * 100)
    command = QueueStart.parse(payload(example, sym, day_range(day), priority))
    state = new_queue(queue_id=queue_id(run, i), command=command, now=started, needs=lineage.plan(command))
    if not is_active(i):
        _finish(state, i, started)
    elif loading(i):
        _loading(state, i, started)
    else:
        _waiting(state)
    return state


def _finish(state: QueueState, i: int, started: str) -> None:
    ended = stamp(i + 3600)
    total = 0
    for job in state.jobs:
        job.status = JobStatus.FINISHED
        job.records_written = 1000 + (i * 7 + job.index * 131) % 50_000
        job.launched_at, job.started_at, job.finished_at = started, started, ended
        total += job.records_written
    state.status, state.records_written = QueueStatus.FINISHED, total
    state.finished_at = state.updated_at = ended
    state.seq = 2 * len(state.jobs) + 2


def _loading(state: QueueState, i: int, started: str) -> None:
    """Loaders and their connectors run (co-scheduled: they need the topic launched only)."""
    for job in state.jobs:
        if all(need.until == lineage.LAUNCHED for need in job.needs):
            job.status, job.launched_at, job.started_at = JobStatus.RUNNING, started, started
            job.records_written = (i * 13 + job.index) % 20_000
        else:
            job.wait, job.waiting = WaitReason.INPUTS, "waiting for inputs: " + job.needs[0].reason
    state.status = QueueStatus.LOADING
    state.records_written = sum(j.records_written for j in state.jobs)
    state.seq = 3


def _waiting(state: QueueState) -> None:
    """Nothing launched: the loaders wait for a slot, the rest for them."""
    for job in state.jobs:
        if job.target == "loader-producer":
            job.wait, job.waiting = WaitReason.SLOT, SLOT_TEXT
        else:
            job.wait, job.waiting = WaitReason.INPUTS, "waiting for inputs: " + job.needs[0].reason
    state.seq = 1


def history(run: int, stored: int) -> Iterator[tuple[str, str, str]]:
    """(key, document, facts) of `stored` queues, one in ten active (spread over the history)."""
    for i in range(stored):
        state = build(run, i)
        yield state.id, state.model_dump_json(exclude_none=True), facts.of(state)


def seed(stores: list[StateStore], run: int, stored: int, *, chunk: int = 0) -> float:
    """Write the history with one thread per store (each its own connection); the seconds it took.
    `chunk`: creates per `batch()` (one transaction each), 0 for one write each."""
    return write(stores, list(history(run, stored)), chunk)


def write(stores: list[StateStore], rows: list[tuple[str, str, str]], chunk: int) -> float:
    """Create the rows (key, document, facts), one thread per store, `chunk` creates per
    `batch()` (0: one write each); the seconds it took."""
    started = time.perf_counter()
    errors: list[BaseException] = []

    def run(part: list[tuple[str, str, str]], store: StateStore) -> None:
        try:
            step = chunk or 1
            for at in range(0, len(part), step):
                with store.batch() if chunk else contextlib.nullcontext():
                    for key, doc, fx in part[at:at + step]:
                        store.create(key, doc, facts=fx)
        except BaseException as e:  # noqa: BLE001 - raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(rows[n::len(stores)], s)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def active_ids(run: int, stored: int, which: Callable[[int], bool]) -> list[str]:
    """Ids of the active queues that `which(i)` picks."""
    return [queue_id(run, i) for i in range(stored) if is_active(i) and which(i)]


def configure(env: dict[str, str]) -> None:
    """Point the runtime at one store: the environment it reads, then a fresh runtime."""
    from shared import runtime

    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            del os.environ[name]
    os.environ.update(env)
    runtime.reset()
    runtime.get()


@contextlib.contextmanager
def backend(name: str, run: int, stored: int) -> Iterator[tuple[dict[str, str], float]]:
    """A fresh store of `name` ("sqlite", or "arango": a stand-in server of its own) holding
    `stored` queues; yields the environment that points the runtime at it, and the seconds
    seeding took."""
    local = tempfile.mkdtemp(prefix="qm-scale-")
    env = {"QM_LOCAL_DIR": local, "JOB_LAUNCHER": "local", "JOB_LIMITS": json.dumps(LIMITS)}
    standin = None
    try:
        stores: list[StateStore]
        if name == "sqlite":
            from shared.adapters.state.sqlite import SqliteStore

            stores = [SqliteStore.at_dir(local)]
            took = seed(stores, run, stored, chunk=SQLITE_CHUNK)
        else:
            from shared.adapters.state.arango import ArangoStore
            from shared.core.config import ArangoSettings
            from tests.arango_standin import ArangoStandIn

            standin = ArangoStandIn(password=PASSWORD).start()
            env |= {"ARANGO_URL": standin.url, "ARANGO_PASSWORD": PASSWORD, "ARANGO_DB": "streamforge"}
            settings = ArangoSettings(url=standin.url, password=PASSWORD, timeout_s=60)
            stores = [ArangoStore(settings) for _ in range(ARANGO_SEED_THREADS)]
            stores[0].ping()  # creates the collections and indexes before the threads write
            took = seed(stores, run, stored)
        for store in stores:
            store.close()
        yield env, took
    finally:
        if standin is not None:
            standin.stop()
        shutil.rmtree(local, ignore_errors=True)
