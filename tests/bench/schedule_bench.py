"""Schedule ticks with 1,000 schedules stored: what the PingSource's POST /schedules/tick costs.

`python -m tests.bench.schedule_bench`. On both state backends (SQLite, and the ArangoDB
stand-in of tests/arango_standin.py in this process), in-process through the all-in-one app
(`functions/all.py`, the HTTP layer included), the clock moved a minute per tick:

1. none due: 1,000 daily schedules, none of whose fire times has come (the due index read);
2. 10 due: 10 of the 1,000 fire each minute and start a queue each (two-request queues);
3. 1,000 due: every schedule fires each minute and starts a queue (each a symbol of its own).

Each row is the tick's wall time; rows 2 and 3 also per run started. Verdict: rows 1 and 2
under 1 s at the median (row 3 is reported: a thousand starts in one tick).

It reports; it never fails the run (exit code 0).

    SCHEDULE_REPS (12): ticks per row; SCHEDULE_STORED (1000); SCHEDULE_BACKENDS (sqlite,arango)
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time

from starlette.testclient import TestClient

from shared.core import clock
from tests.arango_standin import ArangoStandIn
from tests.bench.scale_bench import each_backend, verdict_line
from tests.bench.scale_report import p99
from tests.bench.scale_seed import configure

REPS = int(os.environ.get("SCHEDULE_REPS", "12"))
STORED = int(os.environ.get("SCHEDULE_STORED", "1000"))
BACKENDS = os.environ.get("SCHEDULE_BACKENDS", "sqlite,arango").split(",")
BUDGET_S = 1.0
PASSWORD = "bench-secret"
TICK = ("/schedules/tick", {"ce-specversion": "1.0", "ce-id": "bench", "ce-type": "dev.knative.sources.ping",
                            "ce-source": "/apis/v1/namespaces/streamforge/pingsources/queue-manager-schedules",
                            "content-type": "application/json"})


class Clock:
    def __init__(self) -> None:
        self.at = dt.datetime.now(dt.UTC).replace(second=0, microsecond=300_000)
        self.real = clock.now
        clock.now = lambda: clock.format(self.at)  # type: ignore[assignment]

    def minute(self) -> None:
        self.at += dt.timedelta(minutes=1)

    def close(self) -> None:
        clock.now = self.real  # type: ignore[assignment]


def spec(i: int, cron: str) -> dict[str, object]:
    return {"name": f"s{i:05d}", "cron": cron, "catch_up": 1,
            "queue": {"symbol": f"SYM{i:05d}USDT", "time_range": "yesterday", "allow_overlap": True,
                      "requests": [{"target": "loader-producer", "type": "api_candles_1d"},
                                   {"target": "arango-connector", "type": "api_candles_1d"}]}}


def seed(client: TestClient, due: int) -> float:
    began = time.perf_counter()
    for i in range(STORED):
        r = client.post("/schedules", json=spec(i, "* * * * *" if i < due else "0 3 * * *"))
        assert r.status_code == 201, r.text
    return time.perf_counter() - began


def ticks(client: TestClient, moved: Clock, reps: int) -> tuple[list[float], list[int]]:
    took, runs = [], []
    for _ in range(reps):
        moved.minute()
        began = time.perf_counter()
        r = client.post(TICK[0], headers=TICK[1], content=b'{"tick": true}')
        took.append((time.perf_counter() - began) * 1000)
        assert r.status_code == 200, r.text
        runs.append(len(r.json()["data"]["runs"]))
    return took, runs


def row(label: str, took: list[float], runs: list[int]) -> str:
    per = statistics.median(t / n for t, n in zip(took, runs, strict=True) if n) if any(runs) else None
    return (f"  {label:<34} median {statistics.median(took):8.1f} ms  p99 {p99(took):8.1f} ms  "
            f"runs/tick {statistics.median(runs):6.0f}" + (f"  per run {per:6.2f} ms" if per else ""))


def measure(client: TestClient, name: str, run: int) -> dict[str, bool]:
    print(f"\n{name}: {STORED} schedules stored")
    medians = {}
    for label, due, reps in (("none due", 0, REPS), ("10 due", 10, REPS), (f"{STORED} due", STORED, 3)):
        local = tempfile.mkdtemp(prefix="qm-schedules-")
        env = {"QM_LOCAL_DIR": local, "JOB_LAUNCHER": "local"}
        standin = ArangoStandIn(password=PASSWORD).start() if name == "arango" else None
        if standin is not None:
            env |= {"ARANGO_URL": standin.url, "ARANGO_PASSWORD": PASSWORD}
        moved = Clock()
        try:
            configure(env)
            seeded = seed(client, due)
            took, runs = ticks(client, moved, reps)
        finally:
            moved.close()
            if standin is not None:
                standin.stop()
        print(row(f"tick, {label}", took, runs) + f"  (seeded in {seeded:.1f} s)")
        medians[label] = statistics.median(took)
    good = medians["none due"] < BUDGET_S * 1000 and medians["10 due"] < BUDGET_S * 1000
    return {name: good}


def main() -> int:
    print("\nschedules: " + verdict_line(each_backend(BACKENDS, measure)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
