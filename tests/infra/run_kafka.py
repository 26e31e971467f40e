"""`make run-kafka`: the functions on a real local Kafka, the way they run on Knative.

Starts, in this order, and stops in reverse on Ctrl-C / SIGTERM (or when one of them dies):

1. a real Kafka broker (tests/infra/kafka_broker.py) with topics queue-control,
   queue-events and queue-control-dlq;
2. the four functions all-in-one (target ``all``) with KAFKA_BOOTSTRAP_SERVERS set, so
   events go to queue-events and stop commands to queue-control;
3. the KafkaSource stand-in (``python -m shared.kafka_source``) delivering queue-control
   to ``/telemetry``, dead letters to queue-control-dlq.

    python -m tests.infra.run_kafka [--host 127.0.0.1] [--port 8080] [--kafka-port 9092]
                                    [--sasl PLAIN --user alice:secret] [--work-dir DIR]

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
from tests.infra.kafka_broker import KAFKA_VERSION, SASL_MECHANISMS, KafkaBroker, KafkaBrokerError

ROOT = Path(__file__).resolve().parents[2]
FF = str(Path(sys.executable).parent / "functions-framework")
TOPICS = {"queue-control": 3, "queue-events": 3, "queue-control-dlq": 1}


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
    parser.add_argument("--sasl", choices=SASL_MECHANISMS, default=None)
    parser.add_argument("--user", default="admin:admin-secret", metavar="NAME:PASSWORD", help="with --sasl")
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
    user, _, password = args.user.partition(":")
    broker = KafkaBroker(port=kafka_port, sasl=args.sasl, users={user: password} if args.sasl else None,
                         num_partitions=3, work_dir=args.work_dir)
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        say(f"starting Kafka {KAFKA_VERSION} (KRaft) on {args.host}:{kafka_port} ...")
        broker.start()
        for topic, partitions in TOPICS.items():
            broker.create_topic(topic, partitions, exist_ok=True)
        say(f"Kafka ready in {broker.last_start_seconds:.1f}s (log {broker.log_path})")

        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, QUEUE_CONTROL_TOPIC="queue-control",
                   QUEUE_EVENTS_TOPIC="queue-events", PYTHONUNBUFFERED="1")
        if args.sasl:
            env.update(KAFKA_USER=user, KAFKA_PASSWORD=password, KAFKA_SASL_MECHANISM=args.sasl)
        url = f"http://{args.host}:{args.port}"
        functions = spawn([FF, "--source", str(ROOT / "functions" / "all.py"), "--target", "all", "--asgi",
                           "--host", args.host, "--port", str(args.port)], env, log_dir / "functions.log")
        procs.append(("functions", functions, log_dir / "functions.log"))
        wait_ready(url, functions)
        adapter = spawn([sys.executable, "-m", "shared.kafka_source", "--topic", "queue-control",
                         "--sink", f"{url}/telemetry", "--dead-letter-topic", "queue-control-dlq"],
                        env, log_dir / "kafka-source.log")
        procs.append(("kafka-source", adapter, log_dir / "kafka-source.log"))

        print(f"bootstrap_servers={broker.bootstrap_servers}", flush=True)
        print(f"functions={url}", flush=True)
        print(f"pids broker={broker.pid} functions={functions.pid} kafka_source={adapter.pid}", flush=True)
        say(f"functions on {url} (log {log_dir / 'functions.log'}), KafkaSource stand-in delivering "
            f"queue-control to {url}/telemetry (log {log_dir / 'kafka-source.log'}); Ctrl-C stops all")
        while not stop.wait(0.5):
            for name, proc, log in procs:
                if proc.poll() is not None:
                    say(f"{name} exited with {proc.returncode}:\n{tail(log)}")
                    return 1
            if not broker.is_running():
                say(f"Kafka exited:\n{broker.log_tail(30)}")
                return 1
        say("stopping ...")
        return 0
    except (KafkaBrokerError, RuntimeError, OSError) as e:
        say(f"error: {e}")
        for name, _, log in procs:
            say(f"--- {name} log ---\n{tail(log)}")
        return 1
    finally:
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
