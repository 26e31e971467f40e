"""`sfq` cold starts: the median wall time of N fresh processes running `sfq --help` and
`sfq ls` (against a local `all` on the embedded default), as a ratio to a bare `python -c pass`
measured side by side in the same run.

    python -m tests.bench.cli_bench                          # this tree's shared/cli
    python -m tests.bench.cli_bench --cli old=/tmp/sfq-old/shared_cli_old --cli new=shared/cli

Each `--cli LABEL=DIR` names a copy of a shared/cli package; it runs from a tree of its own
(DIR as shared/cli beside an empty shared/), so that two versions can be compared in one run.
All the cases are taken in turn in every round, so that the machine's drift falls on all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from shared.examples import load
from tests.bench.functions_bench import stop
from tests.infra.children import free_port

ROOT = Path(__file__).resolve().parents[2]
FF = str(Path(sys.executable).parent / "functions-framework")
RUNS = int(os.environ.get("BENCH_CLI_RUNS", "30"))
LAUNCH = "import sys; sys.path.insert(0, sys.argv.pop(1)); from shared.cli import main; sys.exit(main())"
COMMANDS = {"--help": ["--help"], "ls": ["ls"]}
EXPECT = {"--help": "exit codes: 0 done", "ls": "queue(s)"}


def tree(label: str, package: Path, into: Path) -> Path:
    """A root holding `package` as shared/cli (and nothing else of shared/)."""
    root = into / label
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "__init__.py").write_text('"""The package around the CLI under test."""\n')
    shutil.copytree(package, root / "shared" / "cli", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def serve(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(["nice", "-n", "10", FF, "--source", str(ROOT / "functions" / "all.py"), "--target",
                             "all", "--asgi", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/queues", timeout=1) as reply:
                if reply.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the queue manager at {url} never answered")


def seed(url: str) -> None:
    """A few queues, so that `ls` prints rows."""
    for example in ("historical", "legacy", "realtime"):
        body = json.dumps(load(example)).encode()
        request = urllib.request.Request(url + "/queues/start", data=body, method="POST",
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200, reply.status


def commands(roots: dict[str, Path]) -> dict[tuple[str, str], list[str]]:
    """(case, command) -> argv; the baseline case runs the same for every command."""
    cases = {("python -c pass", name): [sys.executable, "-c", "pass"] for name in COMMANDS}
    for label, root in roots.items():
        for name, args in COMMANDS.items():
            cases[(label, name)] = [sys.executable, "-c", LAUNCH, str(root), *args]
    return cases


def check(cases: dict[tuple[str, str], list[str]], env: dict[str, str]) -> None:
    """Every case once (this also writes its bytecode): exit 0, and the output it should print."""
    for (label, name), argv in cases.items():
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or (label != "python -c pass" and EXPECT[name] not in done.stdout):
            raise RuntimeError(f"{label} {name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")


def measure(cases: dict[tuple[str, str], list[str]], env: dict[str, str], runs: int
            ) -> dict[tuple[str, str], list[float]]:
    times: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for _ in range(runs):
        for case, argv in cases.items():
            t0 = time.perf_counter()
            code = subprocess.call(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[case].append(time.perf_counter() - t0)
            if code != 0:
                raise RuntimeError(f"{case}: exit {code}")
    return times


def report(times: dict[tuple[str, str], list[float]]) -> dict[str, dict[str, dict[str, float]]]:
    base = {name: statistics.median(times[("python -c pass", name)]) for name in COMMANDS}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (label, name), samples in times.items():
        median = statistics.median(samples)
        table.setdefault(label, {})[name] = {"median_ms": round(median * 1000, 1),
                                             "best_ms": round(min(samples) * 1000, 1),
                                             "ratio": round(median / base[name], 2)}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cli_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli", action="append", metavar="LABEL=DIR",
                        help="a shared/cli package to measure (repeatable; default: sfq=this tree's)")
    parser.add_argument("--runs", type=int, default=RUNS, help="cold starts per case (env BENCH_CLI_RUNS)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args(argv)
    packages = dict(item.split("=", 1) for item in args.cli or [f"sfq={ROOT / 'shared' / 'cli'}"])
    with tempfile.TemporaryDirectory(prefix="sfq-bench-") as tmp:
        roots = {label: tree(label, Path(path).resolve(), Path(tmp)) for label, path in packages.items()}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KAFKA_", "ARANGO_", "QUEUE_", "JOB_", "QM_", "SFQ_", "KUBECONFIG"))}
        proc, url = serve({**env, "QM_LOCAL_DIR": str(Path(tmp) / "state")})
        try:
            seed(url)
            env["SFQ_URL"] = url
            cases = commands(roots)
            check(cases, env)
            table = report(measure(cases, env, args.runs))
        finally:
            stop(proc)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"sfq cold start, median of {args.runs} (best), ratio to python -c pass:")
    for label, row in table.items():
        cells = "   ".join(f"{name} {c['median_ms']:6.1f} ms ({c['best_ms']:.1f}) x{c['ratio']:.2f}"
                           for name, c in row.items())
        print(f"  {label:<16} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
