"""Path matching and 405 `Allow` on the status function's routes: dispatches per second.

`python -m tests.bench.routing_bench`. Prints the rate of `web._match` over a mix of the
paths users send (a listing, a queue, its watch stream, a probe, a wrong method, an unknown
path) and, as the machine's yardstick measured in the same run, the rate of a bare dict
lookup loop; the ratio is the figure to compare between trees.
"""

from __future__ import annotations

import statistics
import time

from shared.api import web
from shared.core.errors import MethodNotAllowed, NotFound

PATHS = [("GET", "/queues"), ("GET", "/queues/3f2a9c1e-8d7b-4e6f-a5c4-0b1d2e3f4a5b"),
         ("GET", "/queues/3f2a9c1e-8d7b-4e6f-a5c4-0b1d2e3f4a5b/watch"), ("GET", "/health/ready"),
         ("DELETE", "/queues/q1"), ("GET", "/no/such/path"), ("GET", "/metrics"), ("HEAD", "/queues")]
ROUNDS = 7
N = 20_000


def _routes() -> list[web.Route]:
    from functions import status
    return status._ALL


def _dispatch(routes: list[web.Route]) -> float:
    started = time.perf_counter()
    for _ in range(N // len(PATHS)):
        for method, path in PATHS:
            try:
                web._match(routes, method, path)
            except (MethodNotAllowed, NotFound):
                pass
    return N / (time.perf_counter() - started)


def _yardstick() -> float:
    table = {path: method for method, path in PATHS}
    started = time.perf_counter()
    for _ in range(N * 20 // len(PATHS)):
        for _method, path in PATHS:
            table.get(path)
    return N * 20 / (time.perf_counter() - started)


def main() -> None:
    routes = _routes()
    rates, bare = [], []
    for _ in range(ROUNDS):
        rates.append(_dispatch(routes))
        bare.append(_yardstick())
    rate, base = statistics.median(rates), statistics.median(bare)
    print(f"routing: {rate:,.0f} dispatches/s over {len(routes)} routes; "
          f"yardstick {base:,.0f} lookups/s; ratio {rate / base:.4f}")


if __name__ == "__main__":
    main()
