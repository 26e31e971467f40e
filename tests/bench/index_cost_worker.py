"""One measurement for tests/bench/index_cost_bench.py, run with PYTHONPATH at the source tree
measured (this version or the one before the facts): starts and telemetry merges per second.

Imports only `shared`, so it runs against either tree. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

from shared import runtime
from shared.core.models import QueueStart, Telemetry
from shared.examples import load

STARTS = 100


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    service = runtime.get().service
    queues = []
    started = time.perf_counter()
    for n in range(STARTS):  # each a create (with its facts: counters, indexes) and a launch
        payload = {**load("legacy"), "symbol": f"B{n:03d}USDT", "allow_overlap": True}
        queues.append(service.start(QueueStart.parse(payload)).state)
    starts = STARTS / (time.perf_counter() - started)
    queues = queues[:20]
    jobs = [(q.id, q.jobs[0].id) for q in queues]
    for queue_id, job_id in jobs:  # running: what a Job reports first
        service.telemetry(Telemetry.model_validate({"queue_id": queue_id, "job_id": job_id, "status": "running"}))
    done, written = 0, 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        queue_id, job_id = jobs[done % len(jobs)]
        written += 1
        service.telemetry(Telemetry.model_validate(
            {"queue_id": queue_id, "job_id": job_id, "status": "running", "records_written": written}))
        done += 1
    rate = done / (time.perf_counter() - started)
    print(json.dumps({"rate": rate, "starts": starts, "backend": service.store.backend, "pid": os.getpid()}))
    runtime.reset()


if __name__ == "__main__":
    main()
