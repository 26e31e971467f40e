"""What tests/bench/backfill_bench.py starts and stores: the 60-month backfill, and a coverage history.

The backfill is five years of one symbol by month, four requests per month (loader, connector,
graph builder reading that month's collection, trainer reading its graph): 240 Jobs.

The coverage history is day-partitioned loads (a `loader-producer` and an `arango-connector`
request per day, one entry each per day: a topic and a collection) of SERIES_DAYS days per
(symbol, type), in queues of QUEUE_DAYS days (500 Jobs each), finished, one connector per queue
failed. `entries` of them: SERIES_DAYS * 2 per series, so 1,000 entries are one series and
100,000 are 50 symbols x 2 types. The series asked about (QUERY_SYMBOL, TYPES[0]) holds the
same entries at every size: only the rest of the history grows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

from shared.adapters.state import StateStore
from shared.core import facts, lineage, naming
from shared.core.lifecycle import new_queue
from shared.core.models import JobStatus, QueueStart, QueueState, QueueStatus
from tests.bench import scale_seed

TYPES = ("api_candles_5m", "api_trades")
SERIES_DAYS, QUEUE_DAYS = 500, 250
DAY0 = dt.date(2023, 1, 1)
QUERY_SYMBOL = "COV0001USDT"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SQLITE_CHUNK = 20  # queues per transaction (each carries 500 coverage entries in its facts)
ARANGO_THREADS = 4


def backfill(sym: str, time_range: str = "2020-01-01:2024-12-31") -> dict:
    """The 60-month x 4-request start, its dataset names following the symbol."""
    base = naming.base_asset(sym)
    return {"symbol": sym, "time_range": time_range, "partition": "month", "requests": [
        {"target": "loader-producer", "type": "api_candles_5m"},
        {"target": "arango-connector", "type": "api_candles_5m"},
        {"target": "graph-builder", "type": "gnn_graph", "collection_inputs": [f"{base}_candles_5m_{{period}}"],
         "collection_output": f"{base}_graph_{{period}}"},
        {"target": "gnn-trainer", "type": "gnn_train", "graph_collection": f"{base}_graph_{{period}}",
         "model_output": f"{base}_model_{{period}}"},
    ]}


def coverage_symbol(n: int) -> str:
    return f"COV{n + 1:04d}USDT"


def _stamp(seconds: int) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _queue(run: int, i: int, sym: str, type_: str, first: dt.date) -> QueueState:
    last = first + dt.timedelta(days=QUEUE_DAYS - 1)
    command = QueueStart.parse({"symbol": sym, "time_range": f"{first}:{last}", "partition": "day",
                                "on_failure": "continue", "requests": [
                                    {"target": "loader-producer", "type": type_},
                                    {"target": "arango-connector", "type": type_}]})
    started, ended = _stamp(i * 7200), _stamp(i * 7200 + 3600)
    state = new_queue(queue_id=str(uuid.UUID(int=(run << 64) | i)), command=command, now=started,
                      needs=lineage.plan(command))
    failed = (i * 37) % QUEUE_DAYS  # one connector's day per queue
    for job in state.jobs:
        job.launched_at = job.started_at = started
        job.finished_at = ended
        if job.target == "arango-connector" and job.time_range and job.time_range.startswith(
                (first + dt.timedelta(days=failed)).isoformat()):
            job.status, job.error_message = JobStatus.ERROR, "connector exited 1"
        else:
            job.status, job.records_written = JobStatus.FINISHED, 288
    state.status = QueueStatus.ERROR  # the failed day; on_failure continue ran the rest
    state.records_written = sum(j.records_written for j in state.jobs)
    state.finished_at = state.updated_at = ended
    state.seq = 2 * len(state.jobs) + 2
    return state


def history(run: int, entries: int) -> list[tuple[str, str, str]]:
    """(key, document, facts) of the queues holding `entries` coverage entries."""
    per_series = SERIES_DAYS * 2
    rows, i = [], 0
    for s in range(max(1, entries // per_series)):
        sym, type_ = coverage_symbol(s // len(TYPES)), TYPES[s % len(TYPES)]
        for q in range(SERIES_DAYS // QUEUE_DAYS):
            state = _queue(run, i, sym, type_, DAY0 + dt.timedelta(days=q * QUEUE_DAYS))
            rows.append((state.id, state.model_dump_json(exclude_none=True), facts.of(state)))
            i += 1
    return rows


write = scale_seed.write  # one thread per store, `chunk` creates per batch


def stores(name: str, env: dict[str, str]) -> list[StateStore]:
    """Stores of the backend `scale_seed.backend` made (SQLite: one; ArangoDB: one per thread)."""
    if name == "sqlite":
        from shared.adapters.state.sqlite import SqliteStore

        return [SqliteStore.at_dir(env["QM_LOCAL_DIR"])]
    from shared.adapters.state.arango import ArangoStore
    from shared.core.config import ArangoSettings

    settings = ArangoSettings(url=env["ARANGO_URL"], password=env["ARANGO_PASSWORD"], timeout_s=120)
    made: list[StateStore] = [ArangoStore(settings) for _ in range(ARANGO_THREADS)]
    made[0].ping()  # the collections and indexes, before the threads write
    return made


@contextlib.contextmanager
def backend(name: str, run: int, rows: list[tuple[str, str, str]] | None = None,
            limits: str | None = None) -> Iterator[tuple[dict[str, str], float]]:
    """A fresh store of `name` holding `rows`; the environment pointing the runtime at it
    (JOB_LIMITS `limits`, or none), and the seconds the writes took."""
    with scale_seed.backend(name, run, 0) as (env, _):
        env = {k: v for k, v in env.items() if k != "JOB_LIMITS"}
        if limits:
            env["JOB_LIMITS"] = limits
        took = 0.0
        if rows:
            made = stores(name, env)
            took = write(made, rows, SQLITE_CHUNK if name == "sqlite" else 0)
            for store in made:
                store.close()
        yield env, took
