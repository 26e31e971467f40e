"""Start latency against a real kube-apiserver: parallel vs serial Job creation.

    python -m tests.bench.kube_bench [--runs 40] [--warmup 3] [--workers 8] [--via function|service]

Starts the test control plane (tests/infra/kube.py: etcd, kube-apiserver,
controllers, kwok; binaries from tests/infra/k8s/build.sh), points the functions
at it (JOB_LAUNCHER=kubernetes, embedded SQLite state, local events) and times
the seed's real-time queue (7 requests, "mode": "parallel": all 7 Jobs at start)
from request to reply, i.e. until every Job is created and the state written.

Two launchers take turns on every iteration, so load on this machine hits
both alike: KubeLauncher as shipped (a pool of --workers threads) and the same
with a pool of 1 (serial creates). Each queue is stopped (its Jobs deleted)
after its timed start, outside the timing, and the next run begins once the
cluster has none of its Jobs or pods left, so runs neither pile up nor overlap. `launch` is
the time spent in KubeLauncher.launch inside the start, the rest being state,
validation and the HTTP edge.

Exit status 1 if the parallel p50 misses the target (150 ms).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

from kubernetes import client

from shared import runtime
from shared.adapters.launch.kube import KubeLauncher
from shared.core.models import QueueStart
from shared.examples import load
from tests.infra.kube import ControlPlane, ControlPlaneError

TARGET_P50_MS = 150.0
PROJECT_ENV = ("KAFKA_", "ARANGO_", "QUEUE_", "JOB_", "QM_", "CA_PATH", "KUBECONFIG", "MAX_BODY",
               "KUBERNETES_SERVICE_HOST", "STOP_GRACE_SECONDS", "LEASE_TTL_SECONDS")


class Timed:
    """A launcher that records how long each launch took."""

    def __init__(self, inner: KubeLauncher) -> None:
        self.inner = inner
        self.kind, self.note = inner.kind, inner.note
        self.last = 0.0

    def launch(self, manifests: list[dict[str, Any]]) -> list[str]:
        t0 = time.perf_counter()
        try:
            return self.inner.launch(manifests)
        finally:
            self.last = time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def settle(service: Any, queue_id: str, timeout: float = 60.0) -> None:
    """Stop the queue and wait until it is `stopped` (no Job or pod left): a `stopping` queue
    still counts as active, and the next start of the same pipeline would be a 409 overlap."""
    state, _ = service.stop(queue_id, reason="bench")
    deadline = time.monotonic() + timeout
    while state.status.value != "stopped":
        if time.monotonic() > deadline:
            raise RuntimeError(f"queue {queue_id} still {state.status.value} after {timeout:.0f} s")
        time.sleep(0.05)
        state = service.finish_stop(queue_id)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="timed starts per variant (>= 30)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8, help="pool size of the parallel variant")
    ap.add_argument("--via", choices=("function", "service"), default="function",
                    help="function: POST /queues/start to the in-process start function; "
                         "service: QueueService.start directly")
    args = ap.parse_args()
    if args.runs < 30:
        ap.error("--runs must be at least 30")

    cp = ControlPlane(build=False)
    try:
        cp.start()
    except ControlPlaneError as e:
        print(f"control plane could not start (build it: bash tests/infra/k8s/build.sh): {e}", file=sys.stderr)
        return 2
    try:
        return bench(cp, args)
    finally:
        runtime.reset()
        cp.stop()


def bench(cp: ControlPlane, args: argparse.Namespace) -> int:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(cp.api_client()).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    batch = client.BatchV1Api(cp.api_client())
    for name in [n for n in os.environ if n.startswith(PROJECT_ENV)]:
        del os.environ[name]
    os.environ.update({"QM_LOCAL_DIR": tempfile.mkdtemp(prefix="kube-bench-"), "JOB_LAUNCHER": "kubernetes",
                       "KUBECONFIG": str(cp.kubeconfig_path), "JOB_NAMESPACE": namespace,
                       "STOP_GRACE_SECONDS": "0"})
    runtime.reset()
    service = runtime.get().service
    jobs = runtime.get().settings.jobs
    variants = {"parallel": Timed(KubeLauncher(jobs, workers=args.workers)),
                "serial": Timed(KubeLauncher(jobs, workers=1))}
    payload = {**load("realtime"), "mode": "parallel"}
    count = len(payload["requests"])
    http = None
    if args.via == "function":
        from tests.conftest import app_for

        http = app_for("start")

    def start_once(key: str) -> str:
        if http is not None:
            r = http.post("/queues/start", json=payload, headers={"Idempotency-Key": key})
            if r.status_code != 200:
                raise RuntimeError(f"start answered {r.status_code}: {r.text}")
            return str(r.json()["data"]["queue_id"])
        result = service.start(QueueStart.parse(payload), idempotency_key=key)
        if len(result.launched) != count:
            raise RuntimeError(f"launched {len(result.launched)} of {count}")
        return result.state.id

    totals: dict[str, list[float]] = {v: [] for v in variants}
    launches: dict[str, list[float]] = {v: [] for v in variants}
    print(f"control plane up in {cp.startup_seconds.get('total')} s; namespace {namespace}; "
          f"{count} Jobs per start via {args.via}; {args.warmup} warm-up + {args.runs} timed runs per variant")
    for i in range(args.warmup + args.runs):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in order:
            launcher = variants[name]
            service._launcher = launcher  # type: ignore[assignment]
            t0 = time.perf_counter()
            queue_id = start_once(f"bench-{name}-{i}-{uuid.uuid4().hex[:6]}")
            elapsed = time.perf_counter() - t0
            # Outside the timing: every Job is there and the state says so; then clean up.
            found = batch.list_namespaced_job(namespace, label_selector=f"streamforge.dev/queue-id={queue_id}")
            state = service.get(queue_id)
            if len(found.items) != count or not all(j.created for j in state.jobs):
                raise RuntimeError(f"{name} run {i}: {len(found.items)} Jobs, state {state.status}")
            settle(service, queue_id)
            if i >= args.warmup:
                totals[name].append(elapsed * 1000)
                launches[name].append(launcher.last * 1000)

    print(f"\n{'variant':<22}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'min ms':>9}{'launch p50':>12}")
    for name, values in totals.items():
        label = f"{name} ({args.workers if name == 'parallel' else 1} worker{'s' if name == 'parallel' else ''})"
        print(f"{label:<22}{pct(values, 50):>9.1f}{pct(values, 99):>9.1f}{statistics.fmean(values):>9.1f}"
              f"{min(values):>9.1f}{pct(launches[name], 50):>12.1f}")
    p50_par, p50_ser = pct(totals["parallel"], 50), pct(totals["serial"], 50)
    print(f"\nserial / parallel p50: {p50_ser / p50_par:.2f}x "
          f"(launch only: {pct(launches['serial'], 50) / pct(launches['parallel'], 50):.2f}x)")
    met = p50_par <= TARGET_P50_MS
    print(f"target parallel p50 <= {TARGET_P50_MS:.0f} ms: {'met' if met else 'MISSED'} ({p50_par:.1f} ms); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for launcher in variants.values():
        launcher.inner.close()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
