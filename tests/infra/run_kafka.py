"""`make run-kafka`: the functions on a real local Kafka, the way they run on Knative.

Starts, in this order, and stops in reverse on Ctrl-C / SIGTERM (or when one of them dies):

1. a real Kafka broker (tests/infra/kafka_broker.py) with topics queue-control,
   queue-events and queue-control-dlq;
2. the four functions all-in-one (target ``all``) with KAFKA_BOOTSTRAP_SERVERS set, so
   events go to queue-events and stop commands to queue-control;
3. eventing/kafka-source.yaml's KafkaSource as Knative runs it: the real data plane
   (tests/infra/dataplane: eventing-kafka-broker's dispatcher, and the KafkaSink receiver of
   its dead-letter sink queue-control-dlq), rendered from the manifests, delivering
   queue-control to ``/telemetry``.

    python -m tests.infra.run_kafka [--host 127.0.0.1] [--port 8080] [--kafka-port 9092] [--work-dir DIR]

No SASL here: the real data plane reads Kafka credentials from a Kubernetes Secret, and this
runs without a cluster (tests/integration/test_kafka_auth.py covers SASL with one).

The rest of the environment (QM_LOCAL_DIR, JOB_LAUNCHER, ...) is passed through.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.infra.children import free_port
from tests.infra.dataplane import knative
from tests.infra.kafka_broker import KAFKA_VERSION, KafkaBroker, KafkaBrokerError

ROOT = Path(__file__).resolve().parents[2]
FF = str(Path(sys.executable).parent / "functions-framework")
PARTITIONS = 3  # of queue-control and queue-events (the dead-letter topic: its KafkaSink's)


def topics() -> tuple[str, str]:
    """queue-control and queue-events as eventing/ names them: the KafkaSource's topic, and
    the functions' QUEUE_*_TOPIC in the ConfigMap."""
    from tests.infra.dataplane import contract

    config = contract.manifest("config.yaml", "ConfigMap", "queue-manager-config")["data"]
    control = contract.manifest("kafka-source.yaml", "KafkaSource")["spec"]["topics"][0]
    if config["QUEUE_CONTROL_TOPIC"] != control:
        raise RuntimeError(f"eventing/: the KafkaSource reads {control}, the functions write "
                           f"{config['QUEUE_CONTROL_TOPIC']}")
    return control, config["QUEUE_EVENTS_TOPIC"]


def say(msg: str) -> None:
    print(f"[run-kafka] {msg}", file=sys.stderr, flush=True)


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # the child keeps its own descriptor
        # own session: Ctrl-C reaches only us, and we stop everything in order
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def terminate(name: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop within {timeout:.0f}s: killing it")
            proc.kill()
            proc.wait()
    say(f"{name} stopped (exit {proc.returncode})")


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the functions exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health/ready", timeout=10) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}/health/ready not 200 after {timeout:.0f}s")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.infra.run_kafka", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port of the functions")
    parser.add_argument("--kafka-port", type=int, default=None, help="default: 9092 if free, else a free port")
    parser.add_argument("--work-dir", default=None, help="keep the broker's data here across runs")
    parser.add_argument("--log-dir", default=None, help="default: a temporary directory")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="sf-run-kafka-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    kafka_port = args.kafka_port
    if kafka_port is None:
        kafka_port = 9092 if _free(args.host, 9092) else free_port()
    broker = KafkaBroker(port=kafka_port, num_partitions=3, work_dir=args.work_dir)
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    source: knative.KafkaSourceDeployment | None = None
    try:
        if not knative.available():
            say("building Knative's data plane (tests/infra/dataplane/build.sh java) ...")
            knative.build()
        say(f"starting Kafka {KAFKA_VERSION} (KRaft) on {args.host}:{kafka_port} ...")
        broker.start()
        control, events = topics()
        for topic in (control, events):
            broker.create_topic(topic, PARTITIONS, exist_ok=True)
        say(f"Kafka ready in {broker.last_start_seconds:.1f}s (log {broker.log_path})")

        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, QUEUE_CONTROL_TOPIC=control,
                   QUEUE_EVENTS_TOPIC=events, PYTHONUNBUFFERED="1")
        url = f"http://{args.host}:{args.port}"
        functions = spawn([FF, "--source", str(ROOT / "functions" / "all.py"), "--target", "all", "--asgi",
                           "--host", args.host, "--port", str(args.port)], env, log_dir / "functions.log")
        procs.append(("functions", functions, log_dir / "functions.log"))
        wait_ready(url, functions)
        say("starting the KafkaSource data plane (dispatcher, dead-letter KafkaSink receiver) ...")
        source = knative.KafkaSourceDeployment(broker, log_dir, f"{url}/telemetry").start()
        assert source.dispatcher is not None
        parts = [("dispatcher", source.dispatcher)]
        if source.dead_letter is not None:
            parts.append(("dead_letter_sink", source.dead_letter))

        print(f"bootstrap_servers={broker.bootstrap_servers}", flush=True)
        print(f"functions={url}", flush=True)
        print("pids " + " ".join([f"broker={broker.pid}", f"functions={functions.pid}",
                                  *(f"{name}={part.pid}" for name, part in parts)]), flush=True)
        say(f"functions on {url} (log {log_dir / 'functions.log'}); KafkaSource {source.manifest['metadata']['name']}"
            f" delivering {control} to {url}/telemetry (logs in {log_dir}); Ctrl-C stops all")
        while not stop.wait(0.5):
            for name, proc, log in procs:
                if proc.poll() is not None:
                    say(f"{name} exited with {proc.returncode}:\n{tail(log)}")
                    return 1
            if not broker.is_running():
                say(f"Kafka exited:\n{broker.log_tail(30)}")
                return 1
            for name, part in parts:
                if not part.is_running():
                    say(f"{name} exited:\n{part.log_text()[-3000:]}")
                    return 1
        say("stopping ...")
        return 0
    except (KafkaBrokerError, RuntimeError, OSError, subprocess.CalledProcessError) as e:
        say(f"error: {e}")
        for name, _, log in procs:
            say(f"--- {name} log ---\n{tail(log)}")
        return 1
    finally:
        if source is not None:
            source.stop()
            say("KafkaSource data plane stopped")
        for name, proc, _ in reversed(procs):
            terminate(name, proc)
        broker.stop()
        say("Kafka stopped")


def _free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
