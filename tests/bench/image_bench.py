"""The container image: its size, and its cold start beside the same function as a plain process.

Size: uncompressed (the image in podman's store) and compressed (the gzip'd layers of the OCI
layout `make image` wrote, what a node pulls), layer by layer.

Cold start, the all-in-one on the embedded default (no Kafka, ArangoDB or cluster), in turns so
that this machine's drift falls on both alike:
    container  `podman run` as Kubernetes runs it (read-only root, an emptyDir-like /tmp, uid
               65532, no capabilities, no-new-privileges)
    process    functions-framework from the project's venv with the image's env (func.yaml's)
each timed from launch to the first 200 on /health/ready, and to the first real request answered
(POST /queues/start, seed example "historical"). Medians over --rounds.

    .venv/bin/python -m tests.bench.image_bench [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from shared.examples import load
from tests.image.pod import SANDBOX_FLAGS
from tests.infra.children import free_port
from tests.servers import FF, ROOT, base_env, http_call

OUT = ROOT / ".local" / "image"
START = load("historical")


def sizes(ref: str) -> tuple[int, int, list[int]]:
    size = int(subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", ref],
                              check=True, capture_output=True, text=True).stdout)
    index = json.loads((OUT / "oci" / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((OUT / "oci" / "blobs" / "sha256" / digest).read_text())
    layers = [layer["size"] for layer in manifest["layers"]]
    return size, sum(layers) + manifest["config"]["size"], layers


def until_ok(url: str, method: str = "GET", body: object = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_call(url, method, body, timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url}: no 200 in {timeout}s")


def timed(launch: Callable[[int], Callable[[], None]]) -> tuple[float, float]:
    """(s to ready, s to the first start answered) for one cold start; ``launch(port)`` starts
    the server and returns its stop."""
    port = free_port()
    t0 = time.monotonic()
    stop = launch(port)
    try:
        until_ok(f"http://127.0.0.1:{port}/health/ready")
        ready = time.monotonic() - t0
        until_ok(f"http://127.0.0.1:{port}/queues/start", "POST", START)
        return ready, time.monotonic() - t0
    finally:
        stop()


def container(ref: str, work: Path) -> Callable[[int], Callable[[], None]]:
    def launch(port: int) -> Callable[[], None]:
        tmp = Path(tempfile.mkdtemp(dir=work))
        tmp.chmod(0o1777)
        name = f"qm-bench-{port}"
        subprocess.run(["podman", "run", "-d", "--name", name, "--network", "host", "--image-volume", "ignore",
                        *SANDBOX_FLAGS, "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
                        "--security-opt", "no-new-privileges", "-v", f"{tmp}:/tmp", "-e", f"PORT={port}", ref],
                       check=True, capture_output=True)
        return lambda: subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
    return launch


def process(work: Path) -> Callable[[int], Callable[[], None]]:
    func_env = {"FUNCTION_TARGET": "handle", "FUNCTION_SOURCE": "functions/main.py",
                "FUNCTION_SIGNATURE_TYPE": "http", "FUNCTION_USE_ASGI": "true", "QM_FUNCTION": "all"}

    def launch(port: int) -> Callable[[], None]:
        env = base_env(Path(tempfile.mkdtemp(dir=work)), **func_env, PORT=str(port), HOST="127.0.0.1")
        proc = subprocess.Popen([FF], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop() -> None:
            proc.terminate()
            proc.wait(30)
        return stop
    return launch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (OUT / "ref").exists():
        print("image bench: no image, run `make image`", file=sys.stderr)
        return 1
    ref = (OUT / "ref").read_text().strip()
    size, compressed, layers = sizes(ref)
    print(f"image {ref} ({(OUT / 'digest').read_text().strip()})")
    print(f"  size: {size / 1e6:.0f} MB uncompressed, {compressed / 2**20:.1f} MiB compressed "
          f"(layers, MiB: {', '.join(f'{n / 2**20:.1f}' for n in layers)})")
    with tempfile.TemporaryDirectory() as work:
        runs: dict[str, list[tuple[float, float]]] = {"container": [], "process": []}
        kinds = {"container": container(ref, Path(work)), "process": process(Path(work))}
        for _ in range(args.rounds):
            for kind, launch in kinds.items():
                runs[kind].append(timed(launch))
    print(f"cold start, median of {args.rounds} (all-in-one, embedded default):")
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items()}
    for kind, (ready, first) in med.items():
        print(f"  {kind:<9}  ready {ready * 1000:6.0f} ms   first start answered {first * 1000:6.0f} ms")
    print(f"  container/process: ready {med['container'][0] / med['process'][0]:.2f}x, "
          f"first start {med['container'][1] / med['process'][1]:.2f}x")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
