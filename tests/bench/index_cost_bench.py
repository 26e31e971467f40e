"""`make bench`: what the store's facts cost per write, before and after, in one run.

Telemetry merges per second (progress reports: the hot path, whose facts do not change) on
each backend, by this tree and by the last commit before `shared/core/facts.py` existed (a
git worktree; `BENCH_BEFORE` names another revision), in alternating rounds so that the
machine's drift falls on both alike. The ArangoDB stand-in serving both is this tree's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.arango_standin import ArangoStandIn

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "index_cost_worker.py"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = os.environ.get("BENCH_SECONDS", "2")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def before_revision() -> str:
    if os.environ.get("BENCH_BEFORE"):
        return os.environ["BENCH_BEFORE"]
    added = _git("log", "--diff-filter=A", "--format=%H", "--", "shared/core/facts.py").splitlines()
    return f"{added[-1]}^" if added else "HEAD"


def measure(tree: Path, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(WORKER), SECONDS], cwd=tree, capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(tree), "QM_LOCAL_DIR": tempfile.mkdtemp(prefix="qm-ix-")},
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    revision = before_revision()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ARANGO_", "KAFKA_", "JOB_", "QM_"))}
    with tempfile.TemporaryDirectory(prefix="qm-before-") as where, ArangoStandIn(password="bench") as arango:
        before = Path(where) / "tree"
        _git("worktree", "add", "--detach", "-q", str(before), revision)
        try:
            trees = {"before": before, "after": ROOT}
            backends = {"sqlite": {}, "arango": {"ARANGO_URL": arango.url, "ARANGO_PASSWORD": "bench",
                                                 "ARANGO_DB": "streamforge"}}
            rates: dict[tuple[str, str], list[dict[str, float]]] = {(t, b): [] for t in trees for b in backends}
            for n in range(ROUNDS):
                for backend, extra in backends.items():
                    for name, tree in trees.items():
                        extra = {**extra, "ARANGO_DB": f"ix{n}{name}"} if backend == "arango" else extra
                        if backend == "arango":
                            arango.add_database(extra["ARANGO_DB"])
                        rates[(name, backend)].append(measure(tree, {**base, **extra}))
        finally:
            _git("worktree", "remove", "--force", str(before))
    print(f"per second, median of {ROUNDS} rounds; before = {_git('rev-parse', '--short', revision)}")
    print("  starts: a new queue each (its facts written: counters and indexes)")
    print(f"  telemetry: progress reports for {SECONDS} s (facts unchanged: no index touched)")
    print(f"{'backend':8} {'what':10} {'before':>9} {'after':>9} {'after/before':>13}")
    for backend in ("sqlite", "arango"):
        for what, field in (("starts", "starts"), ("telemetry", "rate")):
            old = statistics.median(r[field] for r in rates[("before", backend)])
            new = statistics.median(r[field] for r in rates[("after", backend)])
            print(f"{backend:8} {what:10} {old:9.0f} {new:9.0f} {new / old:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
