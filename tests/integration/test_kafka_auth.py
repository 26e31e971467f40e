"""SASL against the real broker: the functions configured only through KAFKA_USER /
KAFKA_PASSWORD (no CA, so SASL_PLAINTEXT) connect, publish and take telemetry; with a
wrong password readiness says Kafka is down within seconds instead of hanging.

The telemetry comes through Knative's KafkaSource dispatcher, which reads the SASL
credentials the KafkaSource's ``net`` names (Secret ``streamforge-kafka``, keys
``sasl.mechanism``, ``user``, ``password``) from the API server, as in a cluster: the Secret
is created on the test control plane (the local broker has no TLS, so no ``ca.crt``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from shared.adapters.bus import client_config
from shared.examples import load
from tests.infra.conftest import KAFKA_SASL_USERS, collect_kafka_python_garbage, running_kafka
from tests.infra.dataplane import contract as dpc
from tests.infra.dataplane.knative import DataPlaneError
from tests.infra.kafka_broker import KafkaBroker
from tests.integration.kafka_support import KafkaStack, RecordingProxy, as_event, start_queue, wait_status
from tests.integration.kubeutil import Kube

pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings("ignore::ResourceWarning")]
FAIL_WITHIN = 8.0  # seconds: KAFKA_TIMEOUT_MS (5 s by default) bounds the bootstrap, plus slack


@pytest.fixture(scope="module")
def scram_broker() -> Iterator[KafkaBroker]:
    with running_kafka(KafkaBroker(sasl="SCRAM-SHA-256", users=KAFKA_SASL_USERS)) as broker:
        yield broker


def kafka_secret(kube: Kube, broker: KafkaBroker, user: str, password: str) -> dict[str, Any]:
    """eventing/secrets.example.yaml's streamforge-kafka with the local broker's values
    (``protocol`` SASL_PLAINTEXT: read by the KafkaSink receiver; no ``ca.crt``), created in
    the test's namespace; returned as the API server has it."""
    template = dpc.manifest("secrets.example.yaml", "Secret", "streamforge-kafka")
    values = {**template["stringData"], "user": user, "password": password, "sasl.mechanism": broker.sasl,
              "protocol": "SASL_PLAINTEXT"}
    values.pop("ca.crt")
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=template["metadata"]["name"]), string_data=values)
    created = kube.core.create_namespaced_secret(kube.namespace, body)
    return {"metadata": {"name": created.metadata.name, "namespace": created.metadata.namespace,
                         "uid": created.metadata.uid, "resourceVersion": created.metadata.resource_version},
            "data": dict(created.data or {})}


def sasl_kafka_stack(broker: KafkaBroker, kube: Kube, tmp_path: Path, user: str = "bob",
                     password: str | None = None) -> KafkaStack:
    secret = kafka_secret(kube, broker, user, broker.users[user] if password is None else password)
    return KafkaStack(broker, tmp_path, auth=dpc.LocalAuth.of(broker, secret),
                      kubeconfig=kube.cp.kubeconfig_path, namespace=kube.namespace)


@pytest.fixture(params=["PLAIN", "SCRAM-SHA-256"])
def sasl_stack(request: pytest.FixtureRequest, kube: Kube, dataplane: None, tmp_path: Path) -> Iterator[KafkaStack]:
    fixture = "kafka_sasl_broker" if request.param == "PLAIN" else "scram_broker"
    broker: KafkaBroker = request.getfixturevalue(fixture)
    assert broker.sasl == request.param
    stack = sasl_kafka_stack(broker, kube, tmp_path)
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


@pytest.mark.kube
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
    source = stack.source(server.url + "/telemetry")  # as bob, from the Secret
    job = stack.job()
    job.report("json", queue_id, job_id, "loading", 10)
    job.report("json", queue_id, job_id, "loading", -1)  # a 422: dead-lettered through the KafkaSink
    job.report("cloudevent", queue_id, job_id, "finished", 42)
    job.flush()
    queue = wait_status(server, queue_id, "finished")
    assert queue["records_written"] == 42
    source.wait_committed()
    assert source.proxy is not None and source.proxy.statuses == {200: 2, 422: 1}
    (dead,) = stack.read(stack.dlq, until=lambda rs: len(rs) >= 1)  # the receiver wrote it over SASL too
    assert as_event(dead).data["records_written"] == -1 and dict(dead.headers)["ce_knativeerrorcode"] == b"422"
    for part in (source.dispatcher, stack.dead_letter_sink()):
        for password in stack.broker.users.values():
            assert password not in part.log_text(), f"a password in the log of {part}"

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


@pytest.mark.kube
def test_the_dispatcher_needs_the_right_password_too(kafka_sasl_broker: KafkaBroker, kube: Kube, dataplane: None,
                                                    tmp_path: Path) -> None:
    """A wrong password in the Secret: the dispatcher never gets a partition, delivers
    nothing, and does not log the password."""
    stack = sasl_kafka_stack(kafka_sasl_broker, kube, tmp_path, password="not-bobs-password")
    try:
        sink = RecordingProxy(status=200)
        stack.proxies.append(sink)
        with pytest.raises(DataPlaneError):
            stack.source(sink.url, record=False, wait=15)
        source = stack.sources[-1]
        stack.job().report("json", "q-1", "j-1", "loading", 1)
        time.sleep(3)
        assert sink.requests() == [], "delivered with a wrong password"
        log = source.dispatcher.log_text()
        assert re.search(r"(?i)authentication failed|SaslAuthenticationException", log), log[-3000:]
        assert "not-bobs-password" not in log
    finally:
        stack.close()
        collect_kafka_python_garbage()
