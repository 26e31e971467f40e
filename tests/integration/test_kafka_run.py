"""`make run-kafka` (tests/infra/run_kafka.py): broker, functions and the real KafkaSource data plane
come up wired together, a Job's telemetry on queue-control reaches the state, and Ctrl-C
stops them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaProducer

from shared.examples import load
from tests.infra.children import free_port
from tests.infra.conftest import collect_kafka_python_garbage
from tests.infra.kafka_broker import KafkaBroker
from tests.integration.kafka_support import as_event, read_records, wait_until
from tests.servers import ROOT, FunctionServer, base_env

pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings("ignore::ResourceWarning")]


def test_run_kafka_wires_everything_and_ctrl_c_stops_all(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """(`kafka_broker` only applies the harness's rule: no broker possible -> fail under CI, else skip.)"""
    port, kafka_port = free_port(), free_port()
    with open(tmp_path / "run.log", "wb") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "tests.infra.run_kafka", "--port", str(port), "--kafka-port", str(kafka_port),
             "--log-dir", str(tmp_path)],
            cwd=ROOT, env=base_env(tmp_path / "local"), stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, text=True)
    try:
        info: dict[str, str] = {}
        pids: dict[str, int] = {}
        assert launcher.stdout is not None
        for line in launcher.stdout:  # key=value lines, then "pids name=pid ..." once all is up
            if line.startswith("pids "):
                pids = {k: int(v) for k, v in (p.split("=") for p in line.split()[1:])}
                break
            key, _, value = line.strip().partition("=")
            info[key] = value
        if not pids:
            pytest.fail(f"run_kafka exited ({launcher.wait(30)}):\n{(tmp_path / 'run.log').read_text()}")
        assert info["bootstrap_servers"] == f"127.0.0.1:{kafka_port}"

        server = FunctionServer("all", {}, tmp_path)
        server.url = info["functions"]
        code, body = server.call("POST", "/queues/start", load("legacy"))
        assert code == 200, body
        queue_id, job_id = body["data"]["queue_id"], body["data"]["jobs"][0]["id"]
        producer = KafkaProducer(bootstrap_servers=info["bootstrap_servers"], acks="all")
        telemetry = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": "finished",
                     "records_written": 1234}
        producer.send("queue-control", json.dumps(telemetry).encode(), key=queue_id.encode()).get(30)
        producer.close()
        wait_until("the queue finished through Kafka", lambda: server.call("GET", f"/queues/{queue_id}")[1]
                   ["data"]["status"] == "finished", timeout=60)
        events = read_records({"bootstrap_servers": info["bootstrap_servers"]}, "queue-events",
                              until=lambda rs: any(as_event(r)["id"] == f"{queue_id}/finished" for r in rs))
        assert any(as_event(r)["id"] == f"{queue_id}/started" for r in events)

        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        assert launcher.wait(60) == 0, (tmp_path / "run.log").read_text()
        for name, pid in pids.items():
            assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
            launcher.wait(60)
        collect_kafka_python_garbage()
