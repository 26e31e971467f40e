"""The image users deploy, run as Kubernetes runs it (tests/image/pod.py): read-only root with
no tmpfs on /tmp, the image's numeric non-root user, all capabilities dropped,
no-new-privileges, and the env, volumes and probes of eventing/services.yaml, around real
servers (kube-apiserver with the RBAC of eventing/rbac.yaml, Kafka with SASL_SSL
SCRAM-SHA-512, the ArangoDB stand-in)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.examples import load
from tests.factories import kafka_source_event, telemetry
from tests.image.conftest import OPERATE_TOKEN, READ_TOKEN
from tests.image.pod import Cluster, Pod, job_env
from tests.infra.kafka_broker import KafkaBroker
from tests.infra.kafka_tls import make_certificates
from tests.integration.kafka_support import assert_started_event
from tests.integration.kubeutil import Kube
from tests.knative.test_shutdown import HeldStart, wait_refused
from tests.servers import ROOT

pytestmark = [pytest.mark.kube, pytest.mark.kafka, pytest.mark.image]
FUNCTIONS = ("start", "stop", "telemetry", "status")


@contextlib.contextmanager
def pods(image: str, cluster: Cluster, *specs: tuple[str, dict[str, Any]]) -> Iterator[list[Pod]]:
    """Start every pod, then wait for each one's startup and readiness probes."""
    running = [Pod(image, component, cluster, **kw) for component, kw in specs]
    try:
        for pod in running:
            pod.start()
        for pod in running:
            pod.wait_probe("startupProbe")
            pod.wait_probe("readinessProbe")
        yield running
    finally:
        for pod in running:
            pod.__exit__(None, None, None)


def in_image(image: str, code: str) -> str:
    """Run Python code in the image (its own interpreter, its user, a read-only root)."""
    out = subprocess.run(["podman", "run", "--rm", "--read-only", "--network", "none", "--ulimit", "nofile=16384:16384",
                          "--ulimit", "nproc=4096:4096", "--entrypoint", "python3", image, "-c", code],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_image_config(image: str) -> None:
    out = subprocess.run(["podman", "image", "inspect", "--format", "json", image],
                         check=True, capture_output=True, text=True)
    cfg = yaml.safe_load(out.stdout)[0]["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["functions-framework"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    func_yaml = yaml.safe_load((ROOT / "func.yaml").read_text())
    for e in func_yaml["run"]["envs"]:
        if e.get("name", "").startswith("FUNCTION_") or e.get("name") == "QM_FUNCTION":
            assert env[e["name"]] == e["value"], e
    assert env["TMPDIR"] == "/tmp" and env["XDG_RUNTIME_DIR"] == "/tmp"
    labels = cfg["Labels"]
    for key in ("title", "description", "source", "version", "revision", "created"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == "0.1.0"


def test_image_has_no_installer_and_only_checked_bytecode(image: str) -> None:
    report = in_image(image, """
import importlib.util, pathlib, shutil, sys
missing = [m for m in ("pip", "setuptools", "ensurepip", "wheel") if importlib.util.find_spec(m)]
print("installers", missing)
print("tools", [t for t in ("gcc", "cc", "make", "pip", "pip3", "apt-get") if shutil.which(t)])
unchecked = stale = 0
for py in pathlib.Path("/opt/queue-manager").rglob("*.py"):
    pyc = importlib.util.cache_from_source(str(py))
    try:
        head = open(pyc, "rb").read(16)
    except FileNotFoundError:
        stale += 1
        continue
    flags = int.from_bytes(head[4:8], "little")
    if flags != 0b11 or head[8:16] != importlib.util.source_hash(py.read_bytes()):
        unchecked += 1
print("bytecode", unchecked, stale)
import functions.all  # everything a function imports, the standard library's share included
loaded = [m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", "") and m.__file__.endswith(".py")]
print("uncached", [f for f in loaded if not pathlib.Path(importlib.util.cache_from_source(f)).exists()], len(loaded))
""")
    assert "installers []" in report and "tools []" in report, report
    assert "bytecode 0 0" in report, report  # every module compiled, each checked by its source hash
    assert "uncached [] " in report, report  # nothing imported compiles at each cold start


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_answers_its_probes_and_metrics(image: str, cluster: Cluster, function: str) -> None:
    with pods(image, cluster, (function, {})) as (pod,):
        pod.wait_probe("livenessProbe")
        code, ready = pod.call("GET", pod.probe("readinessProbe")["httpGet"]["path"])
        assert code == 200 and set(ready["data"].values()) == {"ok"}, ready
        backends = " ".join(ready["data"])
        assert "arango" in backends, ready  # the state every function reads
        if function in ("start", "stop"):  # they publish events and launch or delete Jobs
            assert "kafka" in backends and "kubernetes" in backends, ready
        code, metrics = pod.call("GET", "/metrics", token=READ_TOKEN)
        assert code == 200 and "queue_manager_" in metrics
        code, refused = pod.call("GET", "/metrics", token=None)  # the manifests turn tokens on
        assert code == 401 and refused["status"] == "error", refused
        if function == "stop":
            code, refused = pod.call("POST", "/queues/nope/stop", token=READ_TOKEN)
            assert code == 403, refused
        assert pod.inspect("{{.Config.User}}") == "65532:65532"
        assert pod.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"


def seed_flow(start: Pod, status: Pod, telemetry_pod: Pod, stop: Pod, kube: Kube, kafka: KafkaBroker) -> str:
    code, body = start.call("POST", "/queues/start", load("historical"))
    assert code == 200, body
    queue_id, jobs = body["data"]["queue_id"], body["data"]["jobs"]
    launched = [j["id"] for j in jobs if j["status"] == "launched"]
    assert launched
    names = {j.metadata.name for j in kube.batch.list_namespaced_job(kube.namespace).items}
    assert set(launched) <= names, (launched, names)  # created with the queue-manager token

    code, body = status.call("GET", f"/queues/{queue_id}")
    assert code == 200 and body["data"]["id"] == queue_id, body

    headers, raw = kafka_source_event(telemetry(queue_id, job_id=launched[0], status="loading",
                                                records_written=42), key=queue_id)
    code, body = telemetry_pod.call("POST", "/", raw=raw, headers=headers)
    assert code in (200, 202), body
    code, body = status.call("GET", f"/queues/{queue_id}")
    job = next(j for j in body["data"]["jobs"] if j["id"] == launched[0])
    assert job["status"] == "running" and job["records_written"] == 42, job  # loading is a running job

    code, body = stop.call("POST", f"/queues/{queue_id}/stop")
    assert code == 200, body
    code, body = status.call("GET", f"/queues/{queue_id}")
    assert body["data"]["status"] in ("stopping", "stopped"), body
    assert_started_event(kafka, queue_id)
    return queue_id


def test_seed_flow_through_the_four_functions(image: str, cluster: Cluster, kube: Kube,
                                              kafka_tls: KafkaBroker) -> None:
    with pods(image, cluster, *[(f, {}) for f in FUNCTIONS]) as (start, stop, telemetry_pod, status):
        seed_flow(start, status, telemetry_pod, stop, kube, kafka_tls)
        for pod in (start, stop, telemetry_pod, status):
            assert_no_secret(cluster, pod.logs(tail=None))


def assert_no_secret(cluster: Cluster, text: str) -> None:
    """No Secret value (nor the ServiceAccount token) appears in ``text``."""
    values = [v for s in cluster.secrets.values() for k, v in s.items() if k not in ("ca.crt", "user")]
    values += list(cluster.tokens.values())
    assert values and not [v for v in values if v in text]


@pytest.mark.parametrize("broken", ["password", "ca"])
def test_wrong_kafka_password_or_ca_fails_readiness_naming_kafka_without_leaking(
        image: str, cluster: Cluster, broken: str, tmp_path: Path) -> None:
    """SASL_SSL with SCRAM-SHA-512 as services.yaml configures it (KAFKA_USER, KAFKA_PASSWORD,
    CA_PATH from the Secret): a wrong password, or a CA that did not sign the broker's
    certificate, is a 503 naming Kafka, in readiness and on a start, and no secret is shown."""
    secret = cluster.secrets["streamforge-kafka"]
    if broken == "password":
        secret["password"] = "not-the-kafka-password"
    else:
        secret["ca.crt"] = make_certificates(tmp_path / "another-ca")[0].read_text()
    with Pod(image, "start", cluster) as pod:
        pod.wait_probe("startupProbe")
        code, ready = pod.call("GET", pod.probe("readinessProbe")["httpGet"]["path"], timeout=30)
        assert code == 503 and ready["message"] == "unavailable: events (kafka)", ready
        assert ready["data"]["state (arango)"] == "ok", ready
        code, started = pod.call("POST", "/queues/start", load("historical"), timeout=30)
        assert code == 503 and started["message"].startswith("kafka unavailable"), started
        assert_no_secret(cluster, pod.logs(tail=None) + json.dumps(ready) + json.dumps(started))


def test_all_in_one_writes_nothing_outside_its_writable_paths(image: str, cluster: Cluster, kube: Kube,
                                                              kafka_tls: KafkaBroker) -> None:
    """With a writable root (so that a stray write would succeed and show), the seed flow through
    the all-in-one leaves the image's filesystem unchanged: everything went to the emptyDir."""
    with pods(image, cluster, ("start", {"function": "all", "read_only": False})) as (pod,):
        seed_flow(pod, pod, pod, pod, kube, kafka_tls)
        changed = [line for line in pod.diff() if line]
        stray = [line for line in changed if line.split(" ", 1)[1] not in pod.runtime_paths()]
        assert not stray, stray
        written = sorted(p.name for p in pod.volume_dirs["/tmp"].iterdir())
        assert "gunicorn.ctl" in written, written  # XDG_RUNTIME_DIR went to the emptyDir too


def test_sigterm_finishes_the_request_in_flight_and_exits_0(image: str, cluster: Cluster) -> None:
    with pods(image, cluster, ("start", {}), ("status", {})) as (start, status):
        held = HeldStart(start.port, "held-over-sigterm", token=OPERATE_TOKEN)
        start.signal("TERM")
        wait_refused(start.port)
        code, body = held.finish()
        assert code == 200, body
        assert start.wait(60) == 0, start.logs()
        code, got = status.call("GET", f"/queues/{body['data']['queue_id']}")
        assert code == 200 and len(got["data"]["jobs"]) == len(body["data"]["jobs"]), got


def test_without_a_writable_tmp_the_function_never_gets_ready(image: str, cluster: Cluster) -> None:
    """Why services.yaml mounts an emptyDir at /tmp: under readOnlyRootFilesystem without it,
    gunicorn's worker finds no temporary directory and dies at start, again and again."""
    pod = Pod(image, "status", cluster)
    pod.container["volumeMounts"] = [m for m in pod.container["volumeMounts"] if m["mountPath"] != "/tmp"]
    with pod:
        deadline = time.monotonic() + 20
        while "No usable temporary directory" not in pod.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "No usable temporary directory" in pod.logs()
        with contextlib.suppress(OSError):
            code, _ = pod.call("GET", "/health/ready", timeout=2)
            assert code != 200


def test_a_job_reaches_kafka_over_sasl_ssl_with_the_env_it_is_given(image: str, cluster: Cluster, kube: Kube,
                                                                    kafka_tls: KafkaBroker, tmp_path: Path) -> None:
    """A Job created by the start function, its env resolved from the Secret as the kubelet
    would: KAFKA_BOOTSTRAP_SERVERS, KAFKA_USER, KAFKA_PASSWORD, KAFKA_SASL_MECHANISM and CA_PATH
    (the seed's names) are enough for a client to send its telemetry over SASL_SSL."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    with pods(image, cluster, ("start", {})) as (start,):
        code, body = start.call("POST", "/queues/start", load("historical"))
        assert code == 200, body
        job_id = next(j["id"] for j in body["data"]["jobs"] if j["status"] == "launched")
    env = job_env(kube.batch.read_namespaced_job(job_id, kube.namespace), cluster, tmp_path / "mounts")
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512" and Path(env["CA_PATH"]).is_file()
    producer = KafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], security_protocol="SASL_SSL",
                             sasl_mechanism=env["KAFKA_SASL_MECHANISM"], sasl_plain_username=env["KAFKA_USER"],
                             sasl_plain_password=env["KAFKA_PASSWORD"], ssl_cafile=env["CA_PATH"])
    report = {"type": "telemetry", "queue_id": env["QUEUE_ID"], "job_id": env["JOB_ID"], "status": "loading"}
    sent = producer.send(env["QUEUE_CONTROL_TOPIC"], json.dumps(report).encode(),
                         key=env["QUEUE_ID"].encode()).get(30)
    producer.close()
    consumer = KafkaConsumer(**kafka_tls.client_config(), enable_auto_commit=False)
    try:
        part = TopicPartition(sent.topic, sent.partition)
        consumer.assign([part])
        consumer.seek(part, sent.offset)
        records = [r for rs in consumer.poll(timeout_ms=10_000).values() for r in rs]
    finally:
        consumer.close()
    assert json.loads(records[0].value) == report and env["JOB_ID"] == job_id


def test_oci_layout_and_docker_archive_hold_the_image_that_was_tested(image: str) -> None:
    """`make image`'s two outputs are the image these tests run: same config digest (image id)."""
    out = ROOT / ".local" / "image"
    for ref in (f"oci:{out / 'oci'}:0.1.0", f"docker-archive:{out / 'queue-manager.tar'}"):
        raw = subprocess.run(["skopeo", "inspect", "--raw", ref], check=True, capture_output=True, text=True)
        assert json.loads(raw.stdout)["config"]["digest"] == image, ref
