"""The tables of tests/bench/scale_bench.py: per request, the median and p99 at both sizes."""

from __future__ import annotations

import math
import statistics

MAX_RATIO, MAX_LIST_P99_MS = 1.5, 20.0
LISTING = "GET /queues?"  # the rows the p99 bound applies to

Samples = dict[str, list[float]]


def p99(samples: list[float]) -> float:
    """Nearest rank: of 40 samples, the largest."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def size(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else f"{n:,}"


def table(name: str, sizes: tuple[int, int], seeded: tuple[float, float], got: tuple[Samples, Samples],
          rates: tuple[dict[str, list[float]], dict[str, list[float]]], notes: tuple[list[str], list[str]]) -> bool:
    """Print the backend's table; whether every row is ok."""
    small, large = (size(n) for n in sizes)
    reps = len(next(iter(got[0].values())))
    print(f"\n{name}: {small} = {sizes[0]:,} stored ({sizes[0] // 10:,} active), "
          f"{large} = {sizes[1]:,} stored ({sizes[1] // 10:,} active); seeding took {seeded[0]:.1f} s and "
          f"{seeded[1]:.1f} s; {reps} repetitions per request and size, sizes in turn; ms")
    for label, said in zip((small, large), notes, strict=True):
        print(f"  at {label}: {'; '.join(said)}")
    print(f"  {'request':<36} {small + ' med':>9} {small + ' p99':>9} {large + ' med':>9} {large + ' p99':>9} "
          f"{'ratio':>6}")
    worst, list_p99, every = 0.0, 0.0, True
    for row, a in got[0].items():
        b = got[1][row]
        ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
        ratio = mb / ma
        row_ok = ratio <= MAX_RATIO
        if row.startswith(LISTING):
            list_p99 = max(list_p99, p99(b) * 1000)
            row_ok = row_ok and p99(b) * 1000 <= MAX_LIST_P99_MS
        worst, every = max(worst, ratio), every and row_ok
        print(f"  {row:<36} {ma:9.2f} {p99(a) * 1000:9.2f} {mb:9.2f} {p99(b) * 1000:9.2f} {ratio:6.2f}  "
              f"{'ok' if row_ok else 'FAIL'}")
    for kind, bursts in rates[0].items():
        ra, rb = statistics.median(bursts), statistics.median(rates[1][kind])
        print(f"  telemetry throughput, {kind} jobs (reports/s, median of {len(bursts)} bursts): {small} {ra:,.0f}/s "
              f"({', '.join(f'{r:.0f}' for r in bursts)}), {large} {rb:,.0f}/s "
              f"({', '.join(f'{r:.0f}' for r in rates[1][kind])}); ratio {rb / ra:.2f}")
    print(f"  {name}: every ratio <= {MAX_RATIO}: {'yes' if worst <= MAX_RATIO else 'no'} (worst {worst:.2f}); "
          f"GET /queues p99 at {large} <= {MAX_LIST_P99_MS:.0f} ms: {'yes' if list_p99 <= MAX_LIST_P99_MS else 'no'}"
          f" (worst of the listings {list_p99:.1f} ms) -> {'ok' if every else 'FAIL'}")
    return every
