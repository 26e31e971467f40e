"""Fixtures for tests that need the real control plane (marker ``kube``).

- Before any test runs, if a collected test is marked ``kube`` and a binary
  is missing or outdated, tests/infra/k8s/build.sh is run (outside any test
  timeout; a cold build takes 15-30 min).
  Set STREAMFORGE_KUBE_BUILD=0 to never build from pytest.
- ``control_plane`` (session scope) starts etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler and kwok once per session.
  If it cannot start: the test FAILS when $CI is set, and is skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.infra.kube import ControlPlane, ControlPlaneError, binaries_up_to_date, ensure_binaries
from tests.infra.missing import unavailable


def _autobuild() -> bool:
    return os.environ.get("STREAMFORGE_KUBE_BUILD", "1") != "0"


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not _autobuild():
        return
    if not any(item.get_closest_marker("kube") for item in session.items):
        return
    if binaries_up_to_date()[0]:
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    with contextlib.ExitStack() as stack:
        if capman is not None:  # show build.sh progress live
            stack.enter_context(capman.global_and_fixture_disabled())
        print("\n[kube] control-plane binaries missing or outdated: running tests/infra/k8s/build.sh", flush=True)
        try:
            ensure_binaries(build=True)
        except ControlPlaneError as e:
            # Reported again by the fixture (fail under CI, skip otherwise).
            print(f"[kube] build failed: {e}", flush=True)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane(build=False)
    error = None
    try:
        cp.start()
    except (ControlPlaneError, OSError) as e:
        error = f"kube control plane could not start: {e}"
    if error is not None:
        unavailable(error)
    try:
        yield cp
    finally:
        cp.stop()


# ---------------------------------------------------------------------------------------------
# Kafka (marker ``kafka``): a real Apache Kafka 4.x broker, KRaft combined mode, 127.0.0.1 only.
# See tests/infra/kafka_broker.py. If a broker cannot start: the test FAILS when $CI is set,
# and is skipped otherwise (same rule as control_plane above).
# ---------------------------------------------------------------------------------------------

from collections.abc import Callable  # noqa: E402

from tests.infra.kafka_broker import KafkaBroker, KafkaBrokerError  # noqa: E402

KAFKA_SASL_USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def _import_kafka_python_quietly() -> None:
    """kafka-python 3.0.12 builds its protocol classes at import time with
    importlib.resources.read_text/open_text, deprecated on Python 3.11: under
    filterwarnings=error (pyproject) `import kafka` itself fails. Import every kafka module
    once here with just that warning ignored (the clean fix is a pyproject filterwarnings
    entry "ignore:.* is deprecated. Use files\\(\\) instead:DeprecationWarning")."""
    import importlib
    import pkgutil
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"\w+ is deprecated. Use files\(\) instead", category=DeprecationWarning
        )
        import kafka

        for mod in pkgutil.walk_packages(kafka.__path__, "kafka."):
            if mod.name.startswith(("kafka.benchmarks", "kafka.cli", "kafka.vendor")):
                continue
            if mod.name.endswith(("__main__", "generate_stubs")):
                continue
            with contextlib.suppress(Exception):
                importlib.import_module(mod.name)


_import_kafka_python_quietly()


def collect_kafka_python_garbage() -> None:
    """gc.collect() with ResourceWarning ignored.

    kafka-python 3.0.12 leaks sockets: every connect that fails (e.g. ECONNREFUSED while a
    test has the broker stopped) leaves an unclosed TCP socket (kafka/net/inet.py
    sock_connect), and a KafkaAdminClient/KafkaConsumer whose constructor fails (bootstrap
    timeout, e.g. wrong SASL password) leaves its socketpair and "kafka-io" thread behind.
    Under filterwarnings=error their ResourceWarnings surface as
    PytestUnraisableExceptionWarning in whichever LATER test happens to trigger a gc run.
    Collect them here, at a known point, instead."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def start_kafka_or_skip(broker: KafkaBroker) -> KafkaBroker:
    """Start ``broker``; on failure pytest.fail under $CI, pytest.skip otherwise."""
    try:
        return broker.start()
    except (KafkaBrokerError, OSError) as e:
        unavailable(f"Kafka broker could not start: {e}")


@contextlib.contextmanager
def running_kafka(broker: KafkaBroker) -> Iterator[KafkaBroker]:
    """``broker`` started as start_kafka_or_skip does; stopped, and kafka-python's leaks
    collected, on the way out."""
    start_kafka_or_skip(broker)
    try:
        yield broker
    finally:
        broker.stop()
        collect_kafka_python_garbage()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One PLAINTEXT broker for the whole session (don't stop/restart it in a test)."""
    with running_kafka(KafkaBroker(num_partitions=1)) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_sasl_broker() -> Iterator[KafkaBroker]:
    """One SASL_PLAINTEXT broker (mechanism PLAIN, users KAFKA_SASL_USERS) for the session."""
    with running_kafka(KafkaBroker(sasl="PLAIN", users=KAFKA_SASL_USERS)) as broker:
        yield broker


@pytest.fixture
def kafka_broker_factory() -> Iterator[Callable[..., KafkaBroker]]:
    """make(**KafkaBroker kwargs) -> a started broker of the test's own (stopped at teardown).
    For tests that stop/restart/kill the broker."""
    brokers: list[KafkaBroker] = []

    def make(**kwargs: object) -> KafkaBroker:
        broker = KafkaBroker(**kwargs)  # type: ignore[arg-type]
        brokers.append(broker)
        return start_kafka_or_skip(broker)

    try:
        yield make
    finally:
        for broker in reversed(brokers):
            broker.stop()
        collect_kafka_python_garbage()
