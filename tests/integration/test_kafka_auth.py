"""SASL against the real broker: the functions configured only through KAFKA_USER /
KAFKA_PASSWORD (no CA, so SASL_PLAINTEXT) connect, publish and take telemetry; with a
wrong password readiness says Kafka is down within seconds instead of hanging."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.bus import client_config
from shared.examples import load
from tests.infra.conftest import KAFKA_SASL_USERS, collect_kafka_python_garbage, running_kafka
from tests.infra.kafka_broker import KafkaBroker
from tests.integration.kafka_support import KafkaStack, as_event, start_queue, wait_status

pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings("ignore::ResourceWarning")]
FAIL_WITHIN = 8.0  # seconds: KAFKA_TIMEOUT_MS (5 s by default) bounds the bootstrap, plus slack


@pytest.fixture(scope="module")
def scram_broker() -> Iterator[KafkaBroker]:
    with running_kafka(KafkaBroker(sasl="SCRAM-SHA-256", users=KAFKA_SASL_USERS)) as broker:
        yield broker


@pytest.fixture(params=["PLAIN", "SCRAM-SHA-256"])
def sasl_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KafkaStack]:
    fixture = "kafka_sasl_broker" if request.param == "PLAIN" else "scram_broker"
    broker: KafkaBroker = request.getfixturevalue(fixture)
    assert broker.sasl == request.param
    stack = KafkaStack(broker, tmp_path)
    try:
        yield stack
    finally:
        stack.close()
        collect_kafka_python_garbage()


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_functions_publish_and_take_telemetry_over_sasl(sasl_stack: KafkaStack) -> None:
    stack = sasl_stack
    settings = stack.settings(user="alice")
    conf = client_config(settings)
    assert conf["security_protocol"] == "SASL_PLAINTEXT" and conf["sasl_mechanism"] == stack.broker.sasl
    assert stack.env()["KAFKA_USER"] == "alice" and "CA_PATH" not in stack.env()

    server = stack.functions()
    code, body = server.call("GET", "/health/ready")
    assert code == 200 and body["data"]["events (kafka)"] == "ok", body
    started = start_queue(server, load("legacy"), key=f"sasl-{stack.broker.sasl}")
    queue_id, job_id = started["queue_id"], started["jobs"][0]["id"]
    adapter = stack.adapter(server.url + "/telemetry", settings=stack.settings(user="bob"))
    job = stack.job()
    job.report("json", queue_id, job_id, "loading", 10)
    job.report("cloudevent", queue_id, job_id, "finished", 42)
    job.flush()
    queue = wait_status(server, queue_id, "finished")
    assert queue["records_written"] == 42
    adapter.wait_handled(2)

    wanted = {f"{queue_id}/started", f"{queue_id}/finished"}
    records = stack.read(stack.events, until=lambda rs: wanted <= {as_event(r)["id"] for r in rs})
    assert {as_event(r)["id"] for r in records} >= wanted


@pytest.mark.parametrize(("mechanism", "timeout_ms"), [("PLAIN", None), ("SCRAM-SHA-256", 2000)])
def test_wrong_password_fails_readiness_within_seconds(mechanism: str, timeout_ms: int | None, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    """With the default KAFKA_TIMEOUT_MS (5 s), and with a shorter one that must be honoured."""
    broker: KafkaBroker = request.getfixturevalue("kafka_sasl_broker" if mechanism == "PLAIN" else "scram_broker")
    stack = KafkaStack(broker, tmp_path)
    limit = FAIL_WITHIN if timeout_ms is None else timeout_ms / 1000 + 1.5
    try:
        extra = {"KAFKA_TIMEOUT_MS": str(timeout_ms)} if timeout_ms else {}
        server = stack.functions(KAFKA_PASSWORD="not-the-password", **extra)
        assert server.proc is not None
        counts = []
        for _ in range(3):
            t0 = time.monotonic()
            code, body = server.call("GET", "/health/ready", timeout=60)
            elapsed = time.monotonic() - t0
            assert code == 503 and elapsed < limit, (code, elapsed, body)
            assert body["message"] == "unavailable: events (kafka)", body
            assert "kafka unavailable" in body["data"]["events (kafka)"], body
            assert "not-the-password" not in str(body)
            counts.append(threads(server.proc.pid))
        # each failed attempt cleans up after itself (kafka-python leaves an IO thread otherwise)
        assert counts[-1] <= counts[1], f"threads grew with every probe: {counts}"

        t0 = time.monotonic()
        code, body = server.call("POST", "/queues/start", load("legacy"), timeout=60)
        assert code == 503 and time.monotonic() - t0 < limit, body
        assert body["message"].startswith("kafka unavailable"), body
    finally:
        stack.close()
        collect_kafka_python_garbage()


def test_right_password_is_needed_for_the_adapter_too(kafka_sasl_broker: KafkaBroker, tmp_path: Path) -> None:
    """The KafkaSource stand-in shares client_config: a wrong password fails fast there as well."""
    from kafka.errors import KafkaTimeoutError

    from shared.kafka_source import KafkaSourceAdapter

    stack = KafkaStack(kafka_sasl_broker, tmp_path)
    t0 = time.monotonic()
    with pytest.raises(KafkaTimeoutError):
        KafkaSourceAdapter(stack.settings(user="bob", password="wrong"), stack.control, "http://127.0.0.1:9/")
    assert time.monotonic() - t0 < FAIL_WITHIN
    collect_kafka_python_garbage()
