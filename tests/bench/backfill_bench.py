"""Partitioned backfills: planning and starting 240 Jobs, and coverage over a large history.

`python -m tests.bench.backfill_bench`. On both state backends (SQLite, and the ArangoDB
stand-in of tests/arango_standin.py in this process), in-process through the all-in-one app
(`functions/all.py`, so the HTTP layer is included):

1. The start of five years of one symbol by month, four requests a month (240 Jobs,
   tests/bench/backfill_seed.py): POST /queues/plan; POST /queues/start with the local launcher,
   and with JOB_LIMITS {"loader-producer": 4} (a small first wave), each start a symbol of its
   own (nothing covered, nothing overlapping; each stopped afterwards, untimed, so the next finds
   the slots free); and the pure core (partitions.units + lineage.plan + lifecycle.new_queue +
   facts.of), its parts apart. Verdict: every median and p99 under 1 s.
2. GET /coverage (one year by month; 90 days by day) with 1,000 and 100,000 coverage entries
   stored (created through the store's API), the two sizes in turn in each round; and
   `service.coverage` direct. Verdict: the 100k median at most 1.5x the 1k one.

It reports; it never fails the run (exit code 0).

    BACKFILL_REPS (24): samples per row and size; BACKFILL_SMALL (1000), BACKFILL_LARGE (100000):
    coverage entries stored; BACKFILL_BACKENDS (sqlite,arango)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable

from starlette.testclient import TestClient

from functions import status as status_fn
from shared import runtime
from shared.core import facts, lifecycle, lineage, partitions
from shared.core.models import QueueStart
from tests.bench import backfill_seed as seed
from tests.bench.scale_bench import body, each_backend, timed, verdict_line
from tests.bench.scale_report import MAX_RATIO, p99, size
from tests.bench.scale_seed import configure

REPS = int(os.environ.get("BACKFILL_REPS", "24"))
SMALL = int(os.environ.get("BACKFILL_SMALL", "1000"))
LARGE = int(os.environ.get("BACKFILL_LARGE", "100000"))
BACKENDS = os.environ.get("BACKFILL_BACKENDS", "sqlite,arango").split(",")
ROUNDS = 4
LIMITS = json.dumps({"loader-producer": 4})
BUDGET_S = 1.0
YEAR = ("2023-07-01", "2024-06-30", "month")
QUARTER = ("2023-10-01", "2023-12-29", "day")
CORE = "core: units+plan+new_queue+facts.of"
PARTS = ("parse", "units", "lineage.plan", "new_queue", "facts.of")
HAS_ROUTE = any(getattr(r, "path", None) == "/coverage" for r in status_fn.ROUTES)
Samples = dict[str, list[float]]


def rounds(reps: int) -> list[int]:
    return [reps // ROUNDS + (r < reps % ROUNDS) for r in range(ROUNDS)]


class Starts:
    """The rows of part 1 on one store: each with the environment it runs under."""

    def __init__(self, client: TestClient, env: dict[str, str]) -> None:
        self.client = client
        self.envs = {"local": env, "limited": env | {"JOB_LIMITS": LIMITS}}
        self.symbols = itertools.count(1)
        self.launched: dict[str, list[int]] = {"local": [], "limited": []}
        self.parts: dict[str, list[float]] = {p: [] for p in PARTS}
        self.planned: list[int] = []
        self.rows: dict[str, tuple[str, Callable[[int], None]]] = {
            "POST /queues/plan": ("local", self.plan),
            "POST /queues/start (local launcher)": ("local", lambda rep: self.start("local", rep)),
            "POST /queues/start (JOB_LIMITS lp=4)": ("limited", lambda rep: self.start("limited", rep)),
            CORE: ("local", self.core),
        }

    def plan(self, rep: int) -> None:
        data = body(self.client.post("/queues/plan", json=seed.backfill("BTCUSDT")))["data"]
        if rep >= 0:
            self.planned.append(len(data["jobs"]))

    def start(self, which: str, rep: int) -> None:
        sym = f"BF{next(self.symbols):05d}USDT"
        data = body(self.client.post("/queues/start", json=seed.backfill(sym)))["data"]
        if len(data["jobs"]) != 240 or data.get("skipped"):
            raise RuntimeError(f"start of {sym}: {len(data['jobs'])} jobs, skipped {data.get('skipped')}")
        if rep >= 0:
            self.launched[which].append(sum(j["status"] != "pending" for j in data["jobs"]))
        runtime.get().service.stop(data["queue_id"])  # untimed (after the sample): frees the slots

    def core(self, rep: int) -> None:
        """What a start computes before it touches the store (the timed sample: the four parts)."""
        marks = [time.perf_counter()]
        command = QueueStart.parse(seed.backfill("BTCUSDT"))
        marks.append(time.perf_counter())
        units = partitions.units(command)
        marks.append(time.perf_counter())
        needs = lineage.plan(command, units=units)
        marks.append(time.perf_counter())
        state = lifecycle.new_queue(queue_id=f"00000000-0000-0000-0000-{rep % 10**12:012d}", command=command,
                                    now="2026-01-01T00:00:00.000Z", needs=needs, units=units)
        marks.append(time.perf_counter())
        facts.of(state)
        marks.append(time.perf_counter())
        if rep >= 0:
            for part, a, b in zip(PARTS, marks, marks[1:], strict=False):
                self.parts[part].append(b - a)

    def run(self) -> Samples:
        got: Samples = {row: [] for row in self.rows}
        for reps in rounds(REPS):
            for row, (which, fn) in self.rows.items():
                configure(self.envs[which])
                samples = timed(fn, reps)
                if row == CORE:  # the parse is the request's, not the core's
                    parsed = self.parts["parse"]
                    samples = [t - p for t, p in zip(samples, parsed[len(parsed) - reps:], strict=True)]
                got[row] += samples
        runtime.reset()
        return got


def coverage_call(client: TestClient, window: tuple[str, str, str], direct: bool) -> Callable[[int], None]:
    start, end, partition = window
    url = f"/coverage?symbol={seed.QUERY_SYMBOL}&type={seed.TYPES[0]}&from={start}&to={end}&partition={partition}"

    def call(rep: int) -> None:
        if direct or not HAS_ROUTE:
            runtime.get().service.coverage(seed.QUERY_SYMBOL, seed.TYPES[0], dt.date.fromisoformat(start),
                                           dt.date.fromisoformat(end), partition)
        else:
            body(client.get(url))

    return call


def coverage_rows(client: TestClient) -> dict[str, Callable[[int], None]]:
    via = "GET /coverage" if HAS_ROUTE else "service.coverage (no route)"
    return {f"{via} month, 1 year": coverage_call(client, YEAR, False),
            f"{via} day, 90 days": coverage_call(client, QUARTER, False),
            "service.coverage month, 1 year": coverage_call(client, YEAR, True),
            "service.coverage day, 90 days": coverage_call(client, QUARTER, True)}


def ms(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, p99(samples) * 1000


def starts_table(name: str, starts: Starts, got: Samples) -> bool:
    print(f"\n{name}: a 60-month x 4-request queue ({statistics.median(starts.planned):.0f} jobs planned); "
          f"{len(next(iter(got.values())))} samples per row, rows in turn in {ROUNDS} rounds; ms")
    print(f"  {'row':<40} {'median':>9} {'p99':>9}")
    worst = 0.0
    for row, samples in got.items():
        med, top = ms(samples)
        worst = max(worst, top)
        print(f"  {row:<40} {med:9.2f} {top:9.2f}")
    parts = ", ".join(f"{p} {statistics.median(v) * 1000:.2f}" for p, v in starts.parts.items())
    print(f"  core parts (median ms): {parts}")
    for which, counts in starts.launched.items():
        print(f"  first wave ({which}): {min(counts)}-{max(counts)} of 240 jobs launched at start")
    good = worst < BUDGET_S * 1000
    print(f"  {name}: plan and start under {BUDGET_S:.0f} s: {'yes' if good else 'no'} "
          f"(slowest p99 {worst:.0f} ms) -> {'ok' if good else 'FAIL'}")
    return good


def coverage_table(name: str, sizes: tuple[int, int], seeded: tuple[float, float], got: tuple[Samples, Samples],
                   found: str) -> bool:
    small, large = (size(n) for n in sizes)
    print(f"\n{name}: coverage entries stored {small} = {sizes[0]:,}, {large} = {sizes[1]:,} "
          f"(seeding took {seeded[0]:.1f} s and {seeded[1]:.1f} s through store.create); "
          f"{len(next(iter(got[0].values())))} samples per row and size, sizes in turn; ms")
    print(f"  asked: {seed.QUERY_SYMBOL} {seed.TYPES[0]}, the same {seed.SERIES_DAYS * 2} entries at both sizes; "
          f"{found}")
    print(f"  {'row':<40} {small + ' med':>9} {small + ' p99':>9} {large + ' med':>9} {large + ' p99':>9} {'ratio':>6}")
    every = True
    for row, a in got[0].items():
        (ma, pa), (mb, pb) = ms(a), ms(got[1][row])
        ratio = mb / ma
        every = every and ratio <= MAX_RATIO
        print(f"  {row:<40} {ma:9.2f} {pa:9.2f} {mb:9.2f} {pb:9.2f} {ratio:6.2f}  "
              f"{'ok' if ratio <= MAX_RATIO else 'FAIL'}")
    print(f"  {name}: coverage at {large} within {MAX_RATIO}x of {small}: {'yes' if every else 'no'}")
    return every


def compare(client: TestClient, name: str, run: int, rows: tuple[list, list], sizes: tuple[int, int]) -> bool:
    with contextlib.ExitStack() as stack:
        envs, seeded = [], []
        for n, made in enumerate(rows):
            env, took = stack.enter_context(seed.backend(name, run * 10 + n, made))
            envs.append(env)
            seeded.append(took)
            print(f"{name}: seeded {sizes[n]:,} coverage entries ({len(made)} queues) in {took:.1f} s", flush=True)
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)
        calls = coverage_rows(client)
        got: list[Samples] = [{row: [] for row in calls} for _ in envs]
        for reps in rounds(REPS):
            for env, samples in zip(envs, got, strict=True):
                configure(env)
                for row, fn in calls.items():
                    samples[row] += timed(fn, reps)
        configure(envs[1])
        first, last = dt.date.fromisoformat(YEAR[0]), dt.date.fromisoformat(YEAR[1])
        answer = runtime.get().service.coverage(seed.QUERY_SYMBOL, seed.TYPES[0], first, last, YEAR[2])
        runtime.reset()
    return coverage_table(name, sizes, (seeded[0], seeded[1]), (got[0], got[1]), f"1 year answers {answer['summary']}")


def main() -> int:
    began = time.perf_counter()
    rows = (seed.history(1, SMALL), seed.history(2, LARGE))
    print(f"built {len(rows[0])} + {len(rows[1])} coverage queues in {time.perf_counter() - began:.1f} s", flush=True)

    verdicts: dict[str, bool] = {}

    def measure(client: TestClient, name: str, run: int) -> dict[str, bool]:
        with seed.backend(name, 90 + run) as (env, _):
            starts = Starts(client, env)
            verdicts[f"{name} start"] = starts_table(name, starts, starts.run())
        verdicts[f"{name} coverage"] = compare(client, name, run, rows, (SMALL, LARGE))
        return {}

    verdicts.update(each_backend(BACKENDS, measure))  # a backend that broke: FAIL
    print(f"\nbackfill ({time.perf_counter() - began:.0f} s): {verdict_line(verdicts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
