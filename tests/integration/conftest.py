"""Fixtures for the integration tests against the real control plane (marker ``kube``).

``control_plane`` (and the hook that builds missing binaries) come from
tests/infra/conftest.py: a non-root conftest may not use ``pytest_plugins``, so
they are imported. Run alone, tests/integration starts one control plane; in a
session that also runs tests/infra, each directory gets its own (a session
fixture is per definition).

``kube_env`` points the functions at the control plane, in a fresh namespace:
JOB_LAUNCHER=kubernetes, KUBECONFIG=<admin kubeconfig>, JOB_NAMESPACE=<ns>,
then ``runtime.reset()``; in-process ``client("start")``/``client("stop")``
then go through the real KubeLauncher.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from shared import runtime
from tests.infra.conftest import control_plane, pytest_collection_finish  # noqa: F401
from tests.infra.kube import ControlPlane
from tests.infra.missing import unavailable
from tests.integration.kubeutil import Kube, close_launcher

TTL = 900  # JOB_TTL_SECONDS_AFTER_FINISHED in kube_env: not the default, so the tests see it travel


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:  # noqa: F811
    """A fresh namespace of the test's own; deleted (with everything in it) afterwards."""
    api = control_plane.api_client()
    k = Kube(control_plane, f"it-{uuid.uuid4().hex[:8]}", api)
    k.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=k.namespace)))
    try:
        yield k
    finally:
        for ns in [k.namespace, *k.extra_namespaces]:
            with contextlib.suppress(ApiException):
                k.core.delete_namespace(ns)


@pytest.fixture
def kube_env(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kube]:
    """The functions' environment pointed at the control plane and ``kube.namespace``."""
    monkeypatch.setenv("JOB_LAUNCHER", "kubernetes")
    monkeypatch.setenv("KUBECONFIG", str(kube.cp.kubeconfig_path))
    monkeypatch.setenv("JOB_NAMESPACE", kube.namespace)
    monkeypatch.setenv("JOB_TTL_SECONDS_AFTER_FINISHED", str(TTL))
    # A stop deletes the Jobs at once (the grace period is a test of its own: test_kube_stop).
    monkeypatch.setenv("STOP_GRACE_SECONDS", "0")
    runtime.reset()
    try:
        yield kube
    finally:
        close_launcher()
        runtime.reset()


# ---------------------------------------------------------------------------------------------
# Kafka (marker ``kafka``): the real broker from tests/infra (fixtures kafka_broker,
# kafka_sasl_broker, kafka_broker_factory; under $CI a broker that cannot start FAILS the
# test), Knative's Kafka data plane (``dataplane``: the dispatcher and receiver jars of
# tests/infra/dataplane/build.sh, built if missing; same fail-under-CI rule), and
# ``kafka_stack``: this test's topics, functions, KafkaSource dispatchers and Jobs on it.
# ---------------------------------------------------------------------------------------------

import os  # noqa: E402

from tests.infra.conftest import (  # noqa: E402,F401
    collect_kafka_python_garbage,
    kafka_broker,
    kafka_broker_factory,
    kafka_sasl_broker,
)


@pytest.fixture(scope="session")
def dataplane() -> None:
    """The data-plane jars and Java runtime are there (built now if not)."""
    import subprocess

    from tests.infra.dataplane import knative

    if not knative.available() and os.environ.get("STREAMFORGE_KUBE_BUILD", "1") != "0":
        try:
            knative.build()
        except (subprocess.CalledProcessError, OSError) as e:
            print(f"[dataplane] build failed: {e}")
    if not knative.available():
        msg = f"Knative data plane not built ({knative.CACHE}): run tests/infra/dataplane/build.sh"
        unavailable(msg)


@pytest.fixture
def kafka_stack(kafka_broker, dataplane, tmp_path):  # noqa: F811
    from tests.integration.kafka_support import KafkaStack

    stack = KafkaStack(kafka_broker, tmp_path)
    try:
        yield stack
    finally:
        stack.close()
        collect_kafka_python_garbage()
