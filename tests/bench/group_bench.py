"""Group starts: POST /queues/start with 200 `symbols` (one queue each), its replay, its status.

`python -m tests.bench.group_bench`. On both state backends (SQLite, and the ArangoDB stand-in
of tests/arango_standin.py in this process), in-process through the all-in-one app
(`functions/all.py`, so the HTTP layer is included). Each sample starts a group of new symbols
(nothing overlapping), one queue of one loader request per symbol:

- the start with the local launcher, and with JOB_LIMITS {"loader-producer": 4} (4 of the 200
  jobs launch, the rest wait for a slot; each group stopped after its sample, untimed);
- the replay of the last group (same Idempotency-Key: the record and every queue found);
- GET /groups/{id} of a 200-queue group (every queue read).

Verdict: the start's median per queue under 50 ms. It reports; it never fails the run (exit code 0).

    GROUP_REPS (5): samples per row; GROUP_SYMBOLS (200); GROUP_BACKENDS (sqlite,arango)
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from collections.abc import Callable

from starlette.testclient import TestClient

from tests.bench import backfill_seed as seed
from tests.bench.scale_bench import body, each_backend, verdict_line
from tests.bench.scale_report import p99
from tests.bench.scale_seed import configure

REPS = int(os.environ.get("GROUP_REPS", "5"))
SYMBOLS = int(os.environ.get("GROUP_SYMBOLS", "200"))
BACKENDS = os.environ.get("GROUP_BACKENDS", "sqlite,arango").split(",")
LIMITS = json.dumps({"loader-producer": 4})
BUDGET_PER_QUEUE_S = 0.050
WARMUP = 1


def payload(group: int) -> dict:
    return {"symbols": [f"G{group:04d}S{i:03d}USDT" for i in range(SYMBOLS)], "time_range": "2024-01-01:2024-01-03",
            "requests": [{"target": "loader-producer", "type": "api_trades"}]}


class Groups:
    def __init__(self, client: TestClient, *, free: bool) -> None:
        self.client, self.free = client, free
        self.numbers = itertools.count(1)
        self.last: tuple[dict, str, str] | None = None  # payload, key, group id
        self.launched: list[int] = []

    def start(self, rep: int) -> None:
        number = next(self.numbers)
        sent, key = payload(number), f"bench-group-{number}"
        data = body(self.client.post("/queues/start", json=sent, headers={"Idempotency-Key": key}))["data"]
        if len(data["queues"]) != SYMBOLS or not data["created"]:
            raise RuntimeError(f"group start: {len(data['queues'])} queues, created {data['created']}")
        self.last = (sent, key, data["group_id"])
        if rep >= 0:
            self.launched.append(sum(q["status"] != "pending" for q in data["queues"]))
        if self.free:  # untimed (after the sample): frees the slots for the next group
            body(self.client.post(f"/groups/{data['group_id']}/stop"))

    def replay(self, rep: int) -> None:
        assert self.last is not None
        sent, key, group_id = self.last
        data = body(self.client.post("/queues/start", json=sent, headers={"Idempotency-Key": key}))["data"]
        if data["group_id"] != group_id or data["created"]:
            raise RuntimeError("the replay did not find its group")

    def status(self, rep: int) -> None:
        assert self.last is not None
        data = body(self.client.get(f"/groups/{self.last[2]}"))["data"]
        if len(data["queues"]) != SYMBOLS:
            raise RuntimeError(f"group status: {len(data['queues'])} queues")


def timed(fn: Callable[[int], None], reps: int) -> list[float]:
    for rep in range(WARMUP):
        fn(-1 - rep)
    samples = []
    for rep in range(reps):
        began = time.perf_counter()
        fn(rep)
        samples.append(time.perf_counter() - began)
    return samples


def measure(client: TestClient, name: str, run: int) -> dict[str, bool]:
    got: dict[str, list[float]] = {}
    launched: dict[str, list[int]] = {}
    for which, limits in (("local launcher", None), ("JOB_LIMITS lp=4", LIMITS)):
        with seed.backend(name, 70 + run * 2 + (limits is not None), limits=limits) as (env, _):
            configure(env)
            groups = Groups(client, free=limits is not None)
            got[f"POST /queues/start, {SYMBOLS} symbols ({which})"] = timed(groups.start, REPS)
            launched[which] = groups.launched
            if limits is None:
                got["  replay, same Idempotency-Key"] = timed(groups.replay, REPS)
                got[f"  GET /groups/{{id}} ({SYMBOLS} queues)"] = timed(groups.status, REPS)
    print(f"\n{name}: {REPS} samples per row (after {WARMUP} warm-up), a new group of {SYMBOLS} symbols per "
          "start sample; ms")
    print(f"  {'row':<52} {'median':>9} {'p99':>9} {'per queue':>10}")
    for row, samples in got.items():
        med, top = statistics.median(samples) * 1000, p99(samples) * 1000
        print(f"  {row:<52} {med:9.1f} {top:9.1f} {med / SYMBOLS:10.2f}")
    for which, counts in launched.items():
        print(f"  launched at start ({which}): {min(counts)}-{max(counts)} of {SYMBOLS} jobs")
    starts = [statistics.median(s) / SYMBOLS for row, s in got.items() if row.startswith("POST")]
    good = max(starts) < BUDGET_PER_QUEUE_S
    print(f"  {name}: start under {BUDGET_PER_QUEUE_S * 1000:.0f} ms per queue: {'yes' if good else 'no'} "
          f"(slowest median {max(starts) * 1000:.2f} ms) -> {'ok' if good else 'FAIL'}")
    return {name: good}


def main() -> int:
    began = time.perf_counter()
    verdicts = each_backend(BACKENDS, measure)
    print(f"\ngroups ({time.perf_counter() - began:.0f} s): {verdict_line(verdicts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
