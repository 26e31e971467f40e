"""Fixtures for the image tests: the image `make image` built, and a cluster around it made of
real parts: the kube-apiserver (tests/infra), a Kafka broker with SASL_SSL and SCRAM-SHA-512
(what eventing/config.yaml names), and the ArangoDB stand-in (no ArangoDB server runs here)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.arango_standin import ArangoStandIn
from tests.image.pod import Cluster
from tests.infra.conftest import control_plane, pytest_collection_finish, running_kafka  # noqa: F401
from tests.infra.kafka_broker import KafkaBroker
from tests.infra.missing import unavailable
from tests.integration.conftest import kube  # noqa: F401
from tests.integration.kubeutil import Kube, apply_rbac
from tests.servers import ROOT

REF = ROOT / ".local" / "image" / "ref"
KAFKA_USER, KAFKA_PASSWORD = "queue-manager", "kafka-test-secret"
ARANGO_PASSWORD = "arango-test-secret"
READ_TOKEN, OPERATE_TOKEN = "read-token-6c1f0e", "operate-token-93b2aa"


@pytest.fixture(scope="session")
def image() -> str:
    """The reference `make image` wrote (built, pushed and pulled back by digest)."""
    if not shutil.which("podman"):
        unavailable("podman not found (apt-get install podman buildah skopeo mmdebstrap runc)")
    if not REF.exists():
        unavailable(f"no image: run `make image` ({REF} is missing)")
    ref = REF.read_text().strip()
    if subprocess.run(["podman", "image", "exists", ref]).returncode != 0:
        unavailable(f"image {ref} is not in podman's store: run `make image`")
    return ref


@pytest.fixture(scope="session")
def kafka_tls() -> Iterator[KafkaBroker]:
    broker = KafkaBroker(sasl="SCRAM-SHA-512", users={KAFKA_USER: KAFKA_PASSWORD}, tls=True)
    with running_kafka(broker):
        yield broker


@pytest.fixture
def arango() -> Iterator[ArangoStandIn]:
    with ArangoStandIn(username="root", password=ARANGO_PASSWORD) as server:
        yield server


@pytest.fixture
def cluster(kube: Kube, kafka_tls: KafkaBroker, arango: ArangoStandIn, tmp_path: Path) -> Cluster:  # noqa: F811
    """eventing/rbac.yaml applied in a namespace of the test's own; the Secrets' values; the
    ConfigMap's addresses pointed at this machine's servers."""
    apply_rbac(kube, "queue-manager")
    host, port = kube.cp.server.removeprefix("https://").rsplit(":", 1)
    assert kafka_tls.ca_path is not None
    return Cluster(
        secrets={
            "streamforge-kafka": {"user": KAFKA_USER, "password": KAFKA_PASSWORD,
                                  "ca.crt": kafka_tls.ca_path.read_text(),
                                  "protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"},
            "streamforge-arango": {"user": "root", "password": ARANGO_PASSWORD},
            "queue-manager-tokens": {"read": READ_TOKEN, "operate": OPERATE_TOKEN},
        },
        config_overrides={"KAFKA_BOOTSTRAP_SERVERS": kafka_tls.bootstrap_servers, "ARANGO_URL": arango.url,
                          "JOB_NAMESPACE": kube.namespace},
        work=tmp_path,
        api_server=(host, int(port)),
        tokens={"queue-manager": kube.cp.service_account_token(kube.namespace, "queue-manager", create=False)},
        api_ca=kube.cp.ca_path,
        namespace=kube.namespace,
    )
