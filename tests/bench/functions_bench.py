"""`make bench`: cold start and telemetry throughput, each as a ratio to a bare
functions-framework function measured side by side in the same run.

    cold start  spawn -> first 200, median of N spawns (ours: /health/ready, then a real request);
                "floor" is the bare function plus the packages every function needs
    throughput  wrk, 1 thread, 16 connections, KafkaSource-shaped telemetry, rounds in turn
"""

from __future__ import annotations

import compileall
import json
import os
import py_compile
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from shared.examples import load
from tests.infra.children import free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FF = str(Path(sys.executable).parent / "functions-framework")
SPAWNS = int(os.environ.get("BENCH_SPAWNS", "5"))
DURATION = os.environ.get("BENCH_DURATION", "5s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def spawn(source: Path, target: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([FF, "--source", str(source), "--target", target, "--asgi",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_200(url: str, timeout: float = 30, body: bytes | None = None) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"{url} never answered 200")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def spawn_once(source: Path, target: str, path: str, env: dict[str, str], body: bytes | None) -> float:
    port = free_port()
    t0 = time.perf_counter()
    proc = spawn(source, target, port, env)
    try:
        wait_200(f"http://127.0.0.1:{port}{path}", body=body)
        return time.perf_counter() - t0
    finally:
        stop(proc)


Case = tuple[Path, str, str, bytes | None]  # source, target, path, body


def cold_starts(cases: dict[str, Case], env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """(median, best) spawn -> first 200 per case, the cases taken in turn in every
    round, so that the machine's drift (these machines are noisy) falls on all alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(SPAWNS):
        for name, (source, target, path, body) in cases.items():
            times[name].append(spawn_once(source, target, path, env, body))
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def wrk(url: str, targets: str) -> tuple[float, int]:
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{DURATION}", "-s", str(HERE / "telemetry.lua"), url],
                         env={**os.environ, "TARGETS": targets}, capture_output=True, text=True,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def post_start_once(env: dict[str, str]) -> str:
    """A queue for the stop function's cold request to stop (again: stop is idempotent)."""
    port = free_port()
    server = spawn(ROOT / "functions" / "all.py", "all", port, env)
    try:
        wait_200(f"http://127.0.0.1:{port}/health/live")
        return post(f"http://127.0.0.1:{port}/queues/start", {**load("legacy"), "symbol": "XRPUSDT"})["data"][
            "queue_id"]
    finally:
        stop(server)


def bytecode() -> None:
    """As `make bytecode` and the image build do: measure what production runs."""
    for folder in ("functions", "shared"):
        compileall.compile_dir(ROOT / folder, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


def main() -> int:
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    bytecode()
    local = tempfile.mkdtemp(prefix="qm-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARANGO_", "KAFKA_"))}
    env.update(QM_LOCAL_DIR=local)
    noop = HERE / "noop.py"
    print(f"cold start: spawn -> first 200, median of {SPAWNS} rounds (readiness probe | first real request)")
    stop_id = post_start_once(env)
    real = {
        "start": ("/queues/start", json.dumps({**load("legacy"), "allow_overlap": True}).encode()),
        "stop": (f"/queues/stop?queue_id={stop_id}", b""),
        "telemetry": ("/", json.dumps({"type": "telemetry", "queue_id": "unknown", "status": "loading"}).encode()),
        "status": ("/queues", None),
        "all": ("/queues", None),
    }
    cases: dict[str, Case] = {"bare noop": (noop, "noop", "/", None),
                              "floor": (HERE / "floor.py", "floor", "/", b'{"queue_id": "q"}')}
    for target, (path, body) in real.items():
        source = ROOT / "functions" / f"{target}.py"
        cases[f"{target} ready"] = (source, target, "/health/ready", None)
        cases[f"{target} first"] = (source, target, path, body)
    took = cold_starts(cases, env)
    base, base_best = took["bare noop"]

    def show(name: str) -> str:
        median, best = took[name]
        return f"{median * 1000:4.0f} ms {median / base:.2f}x (best {best / base_best:.2f}x)"

    print(f"  {'':<10} median of {SPAWNS}, ratio to bare (ratio of the bests)")
    print(f"  {'bare noop':<10} {base * 1000:4.0f} ms (best {base_best * 1000:.0f} ms)")
    print(f"  {'floor':<10} {show('floor')}  bare + pydantic + prometheus-client, no project code")
    worst = 0.0
    for target in real:
        worst = max(worst, took[f"{target} first"][0] / base)
        print(f"  {target:<10} {show(target + ' ready')} | {show(target + ' first')}")

    print(f"telemetry throughput: wrk -t1 -c16 -d{DURATION}, {ROUNDS} rounds")
    port = free_port()
    server = spawn(ROOT / "functions" / "all.py", "all", port, env)
    try:
        wait_200(f"http://127.0.0.1:{port}/health/ready")
        pairs = []
        for _ in range(10):
            data = post(f"http://127.0.0.1:{port}/queues/start", {**load("realtime"), "allow_overlap": True})["data"]
            pairs += [f"{data['queue_id']}/{j['id']}" for j in data["jobs"]]
    finally:
        stop(server)
    targets = ",".join(pairs)
    cases = {"bare noop": (noop, "noop", "/"),
             "telemetry": (ROOT / "functions" / "telemetry.py", "telemetry", "/health/live")}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    ratios = []
    for _ in range(ROUNDS):  # in turn, so that drift falls on both alike
        for name, (source, target, probe) in cases.items():
            port = free_port()
            proc = spawn(source, target, port, env)
            try:
                wait_200(f"http://127.0.0.1:{port}{probe}")
                rate, bad = wrk(f"http://127.0.0.1:{port}/", targets)
            finally:
                stop(proc)
            if bad:
                raise RuntimeError(f"{name}: {bad} responses were not 2xx")
            rates[name].append(rate)
        ratios.append(rates["telemetry"][-1] / rates["bare noop"][-1])
    for name, got in rates.items():
        print(f"  {name:<10} {statistics.median(got):8.0f} events/s (rounds: {', '.join(f'{r:.0f}' for r in got)})")
    ratio = statistics.median(ratios)
    print(f"  ratio {ratio:.2f}x of bare (median of the rounds' ratios: {', '.join(f'{r:.2f}' for r in ratios)})")
    absolute = statistics.median(rates["telemetry"])
    shutil.rmtree(local, ignore_errors=True)
    print(f"targets: cold start <= 1.25x (worst {worst:.2f}x); telemetry >= 0.5x ({ratio:.2f}x) "
          f"and >= 2000/s ({absolute:.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
