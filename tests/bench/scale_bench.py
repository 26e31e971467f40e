"""The same requests at two sizes of stored history, side by side, on both state backends.

`python -m tests.bench.scale_bench`. For SQLite (the embedded default) and ArangoDB (the stand-in
of tests/arango_standin.py, in this process), a small and a large history are seeded through the
store's API (tests/bench/scale_seed.py); then each request below is timed in-process through the
all-in-one app (`functions/all.py`), so the HTTP layer is included, the two sizes taken in turn
in each of a few rounds so that the machine's drift falls on both alike:

    POST /queues/start, GET /queues (first page, by status, by symbol, deep by cursor), GET /queues/{id},
    GET /metrics, POST /telemetry (a progress report), and admission (`admission.gate`, direct)

Per backend: a table of median and p99 at both sizes and their ratio, "ok" where the large
history costs at most 1.5x the small one (and a listing's p99 stays within 20 ms), and the
telemetry throughput at both sizes (tests/bench/scale_report.py). It reports; it never fails
the run (exit code 0).

    SCALE_SMALL (1000), SCALE_LARGE (100000), SCALE_LARGE_ARANGO (SCALE_LARGE): queues stored,
    10% of them active; SCALE_REPS (40): repetitions per request and size; SCALE_BACKENDS
    (sqlite,arango)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
from starlette.testclient import TestClient

from shared import runtime
from shared.core import lifecycle, lineage
from shared.core.models import JobStatus, QueueStart, QueueState
from shared.services import admission
from tests.bench import scale_seed as seed
from tests.bench.scale_report import Samples, size, table

ROOT = Path(__file__).resolve().parents[2]
SMALL = int(os.environ.get("SCALE_SMALL", "1000"))
LARGE = int(os.environ.get("SCALE_LARGE", "100000"))
LARGE_ARANGO = int(os.environ.get("SCALE_LARGE_ARANGO", str(LARGE)))
REPS = int(os.environ.get("SCALE_REPS", "40"))
BACKENDS = os.environ.get("SCALE_BACKENDS", "sqlite,arango").split(",")
ROUNDS = 4  # the repetitions of each size split in rounds, the sizes in turn in each
WARMUP = 2  # calls per request and round not counted (the runtime is new in each round)
THROUGHPUT_S, CONCURRENCY = 2.0, 16  # telemetry: seconds per size (over the rounds), requests in flight
LIMITED, OTHER = "loader-producer", "arango-connector"  # JOB_LIMITS has the first only
BATCH = 100  # admission decisions per timed sample


def app() -> object:
    from functions_framework.aio import create_asgi_app

    return create_asgi_app(target="all", source=str(ROOT / "functions" / "all.py"), signature_type="http")


def ok(response: httpx.Response, codes: tuple[int, ...] = (200,)) -> None:
    """Checks the status only: the client's parsing of a page (190 kB) is not the server's time."""
    if response.status_code not in codes:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} "
                           f"{response.text[:300]}")


def body(response: httpx.Response) -> dict:
    ok(response)
    return response.json()


def timed(fn: Callable[[int], None], reps: int) -> list[float]:
    """Seconds per call of fn(rep), after WARMUP calls not counted."""
    for rep in range(WARMUP):
        fn(-1 - rep)
    samples = []
    for rep in range(reps):
        started = time.perf_counter()
        fn(rep)
        samples.append(time.perf_counter() - started)
    return samples


class Probe:
    """The requests at one size: what they name (ids, a deep cursor, running jobs) found once."""

    def __init__(self, client: TestClient, env: dict[str, str], run: int, stored: int) -> None:
        self.client, self.env, self.stored = client, env, stored
        seed.configure(env)
        store = runtime.get().store
        self.starts = itertools.count(1)
        self.records = itertools.count(10**6, 10)
        self.outcomes: dict[str, int] = {}
        self.symbol = seed.symbol(stored // 2)
        found = len(body(client.get(f"/queues?symbol={self.symbol}&limit=50"))["data"])
        page = body(client.get("/queues?limit=50"))["page"]
        depth = min(100, page["total"] // 50 // 2)
        for _ in range(depth - 1):
            page = body(client.get(f"/queues?limit=50&cursor={page['next']}"))["page"]
        self.deep = f"/queues?limit=50&cursor={page['next']}"
        loading = seed.active_ids(run, stored, seed.loading)
        self.one = loading[len(loading) // 2]
        # Reports of running jobs, of the limited target and of another: a job of a limited
        # target renews its slot lease with each report (and these hold none: the renewal
        # looks at every slot of the pool, one read each).
        self.jobs: dict[str, list[tuple[str, str]]] = {LIMITED: [], OTHER: []}
        for queue_id in loading[::max(1, len(loading) // 10)][:10]:
            state = QueueState.model_validate_json(store.get(queue_id)[0])
            for job in state.jobs:
                if job.status == JobStatus.RUNNING:
                    self.jobs[LIMITED if job.target == LIMITED else OTHER].append((queue_id, job.id))
        self.best = QueueState.model_validate_json(store.get(admission.waiting_for_slots(store, LIMITED, 1)[0])[0])
        command = QueueStart.parse(seed.payload("historical", seed.symbol(7), seed.day_range(9000)))
        self.fresh = lifecycle.new_queue(queue_id=seed.queue_id(99, 1), command=command,
                                         now="2099-01-01T00:00:00.000Z", needs=lineage.plan(command))
        self.notes = [f"GET /queues?symbol={self.symbol} returns {found} queues",
                      f"the deep page is page {depth + 1}",
                      f"telemetry goes to {len(self.jobs[LIMITED])} + {len(self.jobs[OTHER])} running jobs of "
                      f"{min(10, len(loading))} loading queues",
                      f"admission: the best waiter has priority {self.best.priority}"]
        self.requests: dict[str, Callable[[int], None]] = {
            "POST /queues/start": self.start,
            "GET /queues?limit=50": lambda rep: ok(client.get("/queues?limit=50")),
            "GET /queues?status=finished&limit=50": lambda rep: ok(client.get("/queues?status=finished&limit=50")),
            "GET /queues?symbol=..&limit=3": lambda rep: ok(client.get(f"/queues?symbol={self.symbol}&limit=3")),
            "GET /queues?cursor=.. (deep page)": lambda rep: ok(client.get(self.deep)),
            "GET /queues/{id}": lambda rep: ok(client.get(f"/queues/{self.one}")),
            "GET /metrics": lambda rep: ok(client.get("/metrics")),
            f"POST /telemetry ({LIMITED})": lambda rep: self.report(LIMITED, rep),
            f"POST /telemetry ({OTHER})": lambda rep: self.report(OTHER, rep),
            "admission: best waiter takes slot": lambda rep: self.batch(self.taken, rep),
            "admission: start waits for slot": lambda rep: self.batch(self.waits, rep),
        }

    def start(self, rep: int) -> None:
        """A seeded symbol (its active queues are checked for overlap) on a day none has."""
        n = next(self.starts)
        command = seed.payload("historical", seed.symbol(n), seed.day_range(5000 + n))
        ok(self.client.post("/queues/start", json=command), (200, 201, 202))

    def progress(self, kind: str, n: int) -> dict:
        queue_id, job_id = self.jobs[kind][n % len(self.jobs[kind])]
        return {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": "running",
                "records_written": next(self.records)}

    def report(self, kind: str, rep: int) -> None:
        outcome = body(self.client.post("/telemetry", json=self.progress(kind, rep)))["data"]["outcome"]
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    # Admission, `admission.gate` called directly, for two queues with ready jobs of the limited
    # target (JOB_LIMITS loader-producer: 50). Both read the store's index of the queues waiting
    # for a slot, best first: the part that could grow with the history.
    @staticmethod
    def batch(fn: Callable[[int], None], rep: int) -> None:
        """A decision takes about 0.1 ms, below what one timed call measures on a busy machine:
        a sample is BATCH of them (the table divides)."""
        for _ in range(BATCH):
            fn(rep)

    def taken(self, rep: int) -> None:
        """The best-ranked queue waiting for a slot: nothing outranks it, so it takes free slots
        (its first call) or finds and renews its own (the others), as a queue does that a
        freed slot goes to."""
        rt = runtime.get()
        allowed, blocked = admission.gate(rt.store, rt.service.slots, self.best)
        if blocked or not any(j.id in allowed for j in self.best.jobs if j.target == LIMITED):
            raise RuntimeError(f"the best waiter got no slot: {blocked}")

    def waits(self, rep: int) -> None:
        """A new start of priority 5 (not stored): the queues waiting with priority 10 go first,
        so its loaders must wait for a slot (nothing written)."""
        rt = runtime.get()
        allowed, blocked = admission.gate(rt.store, rt.service.slots, self.fresh)
        if not blocked or any(j.id in allowed for j in self.fresh.jobs if j.target == LIMITED):
            raise RuntimeError("a start of priority 5 went before the waiting queues of priority 10")

    def throughput(self, kind: str, seconds: float) -> float:
        """Progress reports per second, CONCURRENCY in flight (telemetry's group commit merges
        the reports that arrive together)."""

        async def worker(client: httpx.AsyncClient, until: float, done: list[int], n: int) -> None:
            while time.perf_counter() < until:
                ok(await client.post("/telemetry", json=self.progress(kind, n + done[0])))
                done[0] += 1

        async def burst() -> float:
            transport = httpx.ASGITransport(app=self.client.app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://scale") as client:
                done = [0]
                started = time.perf_counter()
                await asyncio.gather(*(worker(client, started + seconds, done, n) for n in range(CONCURRENCY)))
                return done[0] / (time.perf_counter() - started)

        return asyncio.run(burst())


def compare(client: TestClient, name: str, run: int, sizes: tuple[int, int]) -> bool:
    with contextlib.ExitStack() as stack:
        probes, seeded = [], []
        for n, stored in enumerate(sizes):
            env, took = stack.enter_context(seed.backend(name, run * 10 + n, stored))
            print(f"{name} {size(stored)}: seeded {stored:,} queues in {took:.1f} s", flush=True)
            probes.append(Probe(client, env, run * 10 + n, stored))
            seeded.append(took)
        # The seeding's garbage goes, and what stays (the stand-in's documents, in this process
        # unlike a real server) is left out of the collector's passes: a full pass over 100k
        # documents pauses every thread for seconds, the p99 of whichever request it meets.
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)
        got: list[Samples] = [{row: [] for row in p.requests} for p in probes]
        rates: list[dict[str, list[float]]] = [{LIMITED: [], OTHER: []} for _ in probes]
        per_round = [REPS // ROUNDS + (r < REPS % ROUNDS) for r in range(ROUNDS)]
        for reps in per_round:
            for probe, samples, rate in zip(probes, got, rates, strict=True):
                seed.configure(probe.env)
                for row, fn in probe.requests.items():
                    per = BATCH if row.startswith("admission") else 1
                    samples[row] += [t / per for t in timed(fn, reps)]
                for kind, bursts in rate.items():
                    bursts.append(probe.throughput(kind, THROUGHPUT_S / ROUNDS))
        runtime.reset()
        for probe in probes:
            if set(probe.outcomes) != {"applied"}:
                probe.notes.append(f"telemetry outcomes {probe.outcomes}")
    return table(name, sizes, (seeded[0], seeded[1]), (got[0], got[1]), (rates[0], rates[1]),
                 (probes[0].notes, probes[1].notes))


def each_backend(backends: list[str], measure: Callable[[TestClient, str, int], dict[str, bool]]) -> dict[str, bool]:
    """`measure(client, backend, run)` for each backend through one in-process app, the
    environment restored after; a backend whose requests broke is said FAIL, the next still runs."""
    saved = dict(os.environ)
    verdicts: dict[str, bool] = {}
    try:
        with TestClient(app(), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
            for run, name in enumerate(backends, start=1):
                try:
                    verdicts.update(measure(client, name, run))
                except Exception:  # a request that broke: said, and the other backend still runs
                    traceback.print_exc()
                    print(f"{name}: FAIL (a request broke, above)")
                    verdicts[name] = False
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return verdicts


def verdict_line(verdicts: dict[str, bool]) -> str:
    return ", ".join(f"{name} {'ok' if good else 'FAIL'}" for name, good in verdicts.items())


def main() -> int:
    def measure(client: TestClient, name: str, run: int) -> dict[str, bool]:
        return {name: compare(client, name, run, (SMALL, LARGE_ARANGO if name == "arango" else LARGE))}

    print("\nscale: " + verdict_line(each_backend(BACKENDS, measure)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
