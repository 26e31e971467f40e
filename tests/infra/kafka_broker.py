"""A real Apache Kafka broker (KRaft, combined broker+controller) for tests and local runs.

The broker is the genuine ``kafka.Kafka`` from Maven Central (see ``tests/infra/kafka/pom.xml``),
started as ``java -cp <libs>/* kafka.Kafka server.properties`` on 127.0.0.1 only, on free
random ports, with its data in a temporary directory.

    from tests.infra.kafka_broker import KafkaBroker

    with KafkaBroker() as kafka:
        kafka.create_topic("telemetry", partitions=3)
        producer = KafkaProducer(**kafka.client_config())

    # SASL (SASL_PLAINTEXT listener for clients, PLAIN or SCRAM-SHA-256/512):
    with KafkaBroker(sasl="SCRAM-SHA-256", users={"alice": "alice-secret"}) as kafka:
        consumer = KafkaConsumer(**kafka.client_config(user="alice"))

    # SASL over TLS (SASL_SSL, a CA of its own: kafka.ca_path), as production runs it:
    with KafkaBroker(sasl="SCRAM-SHA-512", tls=True) as kafka: ...

CLI (for ``make run-kafka``)::

    python -m tests.infra.kafka_broker run [--port 9092] [--sasl PLAIN] [--user alice:secret]

Jars come from ``tests/infra/kafka/fetch.sh`` (cached in
``${XDG_CACHE_HOME:-~/.cache}/streamforge-qm/kafka/<version>/libs``); set
``STREAMFORGE_KAFKA_LIBS`` to use another directory of jars.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tests.infra.children import die_with_parent, free_port
from tests.infra.kafka_jvm import (
    KAFKA_DIR,
    KAFKA_VERSION,
    CdsArchive,
    KafkaBrokerError,
    fetch_kafka_libs,
    find_java,
    kafka_version,
)

__all__ = [
    "KafkaBroker",
    "KafkaBrokerError",
    "KAFKA_VERSION",
    "fetch_kafka_libs",
    "kafka_version",
]

LOG4J2_CONFIG = KAFKA_DIR / "log4j2.xml"

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: JVM flags for the broker. Measured on the 2-core dev/CI machine (5 cold starts each, other
#: builds running): C1-only JIT + serial GC start the broker in a median 3.1 s vs 4.2 s with
#: the JVM defaults (tiered C2 + G1), RSS 150 MiB vs 215 MiB; with the AppCDS archive that
#: CdsArchive adds automatically, 1.6 s. Throughput is irrelevant for tests. Override with
#: ``jvm_opts=`` or ``STREAMFORGE_KAFKA_JVM_OPTS`` (whitespace separated, replaces these).
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:MaxDirectMemorySize=128m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xss512k",
    "-Xshare:auto",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)

#: JVM flags for the one-shot ``kafka.tools.StorageTool format`` run.
STORAGE_TOOL_JVM_OPTS: tuple[str, ...] = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
)

# Credentials end up in a Java properties file inside a JAAS string, and (for SCRAM) in a
# StorageTool argument of the form `SCRAM-SHA-256=[name=alice,password=secret]`; keep them
# to characters that need no escaping in any of those.
_CRED_RE = re.compile(r"^[A-Za-z0-9_.@+\-:/!#$%&*?^~]+$")


def _new_cluster_id() -> str:
    # Same format as org.apache.kafka.common.Uuid.toString(): URL-safe base64 of 16 random
    # bytes without padding. Kafka never hands out ids starting with '-' (CLI parsing).
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _props_escape(value: str) -> str:
    # Java .properties value escaping (values only; our keys are fixed ASCII identifiers).
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if out.startswith(" "):
        out = "\\" + out
    return out


def _tail(path: Path | None, max_lines: int = 60) -> str:
    if path is None or not path.exists():
        return "(no broker log)"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:  # pragma: no cover
        return f"(cannot read {path}: {e})"
    return "\n".join(data.splitlines()[-max_lines:])


_LIVE: weakref.WeakSet[KafkaBroker] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for broker in list(_LIVE):
        try:
            broker.stop(timeout=10)
        except Exception:
            pass


class KafkaBroker:
    """One Kafka 4.x node in KRaft combined mode (``process.roles=broker,controller``).

    Arguments:
        sasl: None (PLAINTEXT listener) or "PLAIN" / "SCRAM-SHA-256" / "SCRAM-SHA-512":
            the client listener is then SASL_PLAINTEXT with that mechanism. The broker also
            gets an extra PLAINTEXT listener named INTERNAL (inter-broker, and used by the
            helpers here: ``internal_bootstrap_servers``) so helpers never need credentials.
        users: {username: password} accepted on the SASL listener (default {"admin": "admin-secret"}).
            PLAIN: ``user_<name>="<password>"`` entries of the broker's PlainLoginModule.
            SCRAM: credentials written into the metadata log at format time
            (``StorageTool format --add-scram``).
        port: client port (default: a free random port). The controller port (and INTERNAL
            port with SASL) are always random.
        num_partitions: default partition count for auto-created topics.
        offsets_partitions: partitions of __consumer_offsets (1 keeps the first group join fast).
        broker_config: extra/overriding server.properties entries.
        work_dir: use (and keep) this directory instead of a fresh temp dir; if it already
            holds formatted storage it is reused (data survives, SCRAM users from the
            first format stay).
        keep: keep the temp dir after stop() (also: STREAMFORGE_KAFKA_KEEP=1).
        start_timeout: seconds to wait for readiness.
        jvm_opts: replaces DEFAULT_JVM_OPTS.
        log_level: root log4j2 level of the broker (default INFO, or STREAMFORGE_KAFKA_LOG_LEVEL).
        libs_dir: directory with the Kafka jars (default: fetch_kafka_libs()).
    """

    def __init__(
        self,
        *,
        sasl: str | None = None,
        users: Mapping[str, str] | None = None,
        port: int | None = None,
        num_partitions: int = 1,
        offsets_partitions: int = 1,
        broker_config: Mapping[str, Any] | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        keep: bool | None = None,
        start_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        jvm_opts: Iterable[str] | None = None,
        log_level: str | None = None,
        libs_dir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        tls: bool = False,
    ) -> None:
        if tls and sasl is None:
            raise ValueError("tls needs sasl: the TLS listener is SASL_SSL")
        self.tls = tls
        #: the CA that signed the TLS listener's certificate (with tls=True, once started)
        self.ca_path: Path | None = None
        if sasl is not None:
            sasl = sasl.upper()
            if sasl not in SASL_MECHANISMS:
                raise ValueError(f"sasl must be None or one of {SASL_MECHANISMS}, got {sasl!r}")
        self.sasl = sasl
        self.users: dict[str, str] = dict(users) if users else {}
        if sasl and not self.users:
            self.users = {"admin": "admin-secret"}
        for name, password in self.users.items():
            for what, value in (("username", name), ("password", password)):
                if not isinstance(value, str) or not _CRED_RE.match(value):
                    raise ValueError(f"SASL {what} {value!r}: use only letters, digits and _.@+-:/!#$%&*?^~")
        self.host = host
        self.num_partitions = int(num_partitions)
        self.offsets_partitions = int(offsets_partitions)
        self.broker_config = {k: str(v) for k, v in (broker_config or {}).items()}
        self.start_timeout = float(start_timeout)
        self.stop_timeout = float(stop_timeout)
        env_opts = os.environ.get("STREAMFORGE_KAFKA_JVM_OPTS")
        if jvm_opts is not None:
            self.jvm_opts = list(jvm_opts)
        elif env_opts:
            self.jvm_opts = env_opts.split()
        else:
            self.jvm_opts = list(DEFAULT_JVM_OPTS)
        self.log_level = log_level or os.environ.get("STREAMFORGE_KAFKA_LOG_LEVEL") or "INFO"
        self._libs_dir = Path(libs_dir) if libs_dir else None
        self._fixed_work_dir = Path(work_dir) if work_dir else None
        if keep is None:
            keep = os.environ.get("STREAMFORGE_KAFKA_KEEP", "") not in ("", "0", "false", "no")
        self.keep = bool(keep) or self._fixed_work_dir is not None
        self._requested_port = port

        self.port: int | None = None
        self.controller_port: int | None = None
        self.internal_port: int | None = None
        self.work_dir: Path | None = None
        self.cluster_id: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cds: CdsArchive | None = None
        self._log_fh: Any = None
        self._formatted = False
        self._lock = threading.RLock()
        #: seconds from launching the broker JVM until it answered a metadata request
        self.last_start_seconds: float | None = None
        #: seconds the last StorageTool format took
        self.last_format_seconds: float | None = None

    # ------------------------------------------------------------------ properties

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect: the PLAINTEXT listener, or the SASL_PLAINTEXT one."""
        if self.port is None:
            raise KafkaBrokerError("broker not started")
        return f"{self.host}:{self.port}"

    @property
    def internal_bootstrap_servers(self) -> str:
        """A PLAINTEXT listener that needs no credentials (same as bootstrap_servers without SASL)."""
        if self.sasl is None:
            return self.bootstrap_servers
        if self.internal_port is None:
            raise KafkaBrokerError("broker not started")
        return f"{self.host}:{self.internal_port}"

    @property
    def security_protocol(self) -> str:
        return ("SASL_SSL" if self.tls else "SASL_PLAINTEXT") if self.sasl else "PLAINTEXT"

    @property
    def log_path(self) -> Path | None:
        """The broker's log (its stdout/stderr, log4j2 console appender)."""
        return self.work_dir / "broker.log" if self.work_dir else None

    @property
    def data_dir(self) -> Path | None:
        return self.work_dir / "data" if self.work_dir else None

    @property
    def properties_path(self) -> Path | None:
        return self.work_dir / "server.properties" if self.work_dir else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def libs_dir(self) -> Path:
        if self._libs_dir is None:
            self._libs_dir = fetch_kafka_libs()
        return self._libs_dir

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def rss_bytes(self) -> int | None:
        """Resident memory of the broker JVM (Linux /proc), or None."""
        if not self.is_running():
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def client_config(self, user: str | None = None, password: str | None = None, **overrides: Any) -> dict[str, Any]:
        """kafka-python keyword arguments to reach this broker (KafkaProducer/Consumer/Admin).

        With SASL, ``user`` defaults to the first configured user and ``password`` to its
        password (pass a wrong one to test authentication failures).
        """
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            if user is None:
                user = next(iter(self.users))
            if password is None:
                password = self.users.get(user, "")
            cfg.update(
                sasl_mechanism=self.sasl,
                sasl_plain_username=user,
                sasl_plain_password=password,
            )
        if self.tls:
            cfg["ssl_cafile"] = str(self.ca_path)
        cfg.update(overrides)
        return cfg

    def internal_client_config(self, **overrides: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.internal_bootstrap_servers,
            "security_protocol": "PLAINTEXT",
        }
        cfg.update(overrides)
        return cfg

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<KafkaBroker {KAFKA_VERSION} {self.security_protocol} {self.port} {state}>"

    def start(self) -> KafkaBroker:
        """Format storage (first time only), launch the JVM and wait until clients can use it."""
        with self._lock:
            if self.is_running():
                return self
            java = find_java()
            libs = self.libs_dir
            first = self.work_dir is None
            attempts = 3 if (first and self._requested_port is None) else 1
            for attempt in range(1, attempts + 1):
                if self.work_dir is None:
                    self._make_work_dir()
                    self._pick_ports()
                self._write_properties()
                try:
                    if not self._formatted:
                        self._format_storage(java, libs)
                    self._launch(java, libs)
                    self._wait_ready()
                    _LIVE.add(self)
                    return self
                except KafkaBrokerError as e:
                    self._kill_process(graceful=False)
                    if self._cds is not None and re.search(r"(?i)shared archive|\[cds\]|class data sharing", str(e)):
                        self._cds.discard()
                    port_clash = "Address already in use" in str(e)
                    if port_clash and attempt < attempts:
                        # Another process took one of our random ports between the probe and
                        # the bind: throw this dir away and start over on fresh ports.
                        self._cleanup_dir(force=True)
                        continue
                    if first and not self.keep:
                        self._cleanup_dir()
                    raise
            raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float | None = None, *, keep_data: bool = False) -> None:
        """SIGTERM the broker (clean shutdown), SIGKILL after ``timeout`` s; then remove the
        temp dir unless ``keep``/``keep_data``/``work_dir`` says otherwise."""
        with self._lock:
            self._kill_process(graceful=True, timeout=timeout)
            _LIVE.discard(self)
            if not keep_data:
                self._cleanup_dir()

    def kill(self) -> None:
        """SIGKILL the broker (simulate a crash); data is kept so that restart() works."""
        with self._lock:
            self._kill_process(graceful=False)

    def restart(self, *, hard: bool = False, downtime: float = 0.0) -> None:
        """Stop (SIGTERM, or SIGKILL with ``hard=True``) and start again on the same ports with
        the same data. ``downtime`` seconds are slept in between."""
        with self._lock:
            if self.work_dir is None:
                raise KafkaBrokerError("restart() before start()")
            if hard:
                self._kill_process(graceful=False)
            else:
                self._kill_process(graceful=True)
            if downtime:
                time.sleep(downtime)
            self.start()

    # ------------------------------------------------------------------ helpers for tests

    def admin(self, **overrides: Any) -> Any:
        """A KafkaAdminClient on the credential-free listener (caller closes it)."""
        from kafka import KafkaAdminClient

        cfg = self.internal_client_config(client_id="streamforge-test-admin", request_timeout_ms=15000)
        cfg.update(overrides)
        return KafkaAdminClient(**cfg)

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        replication_factor: int = 1,
        config: Mapping[str, Any] | None = None,
        exist_ok: bool = False,
        timeout: float = 30.0,
    ) -> None:
        """Create a topic and wait until every partition has a leader."""
        from kafka.errors import TopicAlreadyExistsError

        admin = self.admin()
        try:
            spec: dict[str, Any] = {
                "num_partitions": partitions,
                "replication_factor": replication_factor,
            }
            if config:
                spec["configs"] = {k: str(v) for k, v in config.items()}
            try:
                admin.create_topics({name: spec}, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                if not exist_ok:
                    raise
            admin.wait_for_topics([name], timeout_ms=int(timeout * 1000))
        finally:
            admin.close()

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        admin = self.admin()
        try:
            admin.delete_topics([name], timeout_ms=int(timeout * 1000))
        finally:
            admin.close()

    # ------------------------------------------------------------------ internals

    def _make_work_dir(self) -> None:
        if self._fixed_work_dir is not None:
            self.work_dir = self._fixed_work_dir.resolve()
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self._formatted = (self.work_dir / "data" / "meta.properties").exists()
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="sf-kafka-"))
            self._formatted = False
        (self.work_dir / "data").mkdir(exist_ok=True)

    def _pick_ports(self) -> None:
        taken: set[int] = set()

        def pick() -> int:
            while True:
                p = free_port(self.host)
                if p not in taken:
                    taken.add(p)
                    return p

        if self._requested_port is not None:
            taken.add(self._requested_port)
            self.port = self._requested_port
        else:
            self.port = pick()
        self.controller_port = pick()
        self.internal_port = pick() if self.sasl else None
        if self.cluster_id is None:
            self.cluster_id = _new_cluster_id()

    def _server_properties(self) -> dict[str, str]:
        assert self.work_dir is not None and self.port and self.controller_port
        h = self.host
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.work_dir / "data"),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": str(self.offsets_partitions),
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Small machine: fewer threads, no 128 MiB log-cleaner dedupe buffer in a 512m heap.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "log.cleaner.threads": "1",
            "metadata.log.max.record.bytes.between.snapshots": str(20 * 1024 * 1024),
            # After a SIGKILL (restart(hard=True)) the restarted broker gets
            # DUPLICATE_BROKER_REGISTRATION until its previous session expires: 9 s by default.
            # 5 s (heartbeat every 1 s) halves that and is still far above any pause seen here.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "5000",
        }
        if self.sasl:
            assert self.internal_port
            mech = self.sasl.lower()
            lst = self.security_protocol  # the client listener's name is its protocol
            props.update(
                {
                    "listeners": f"{lst}://{h}:{self.port},INTERNAL://{h}:{self.internal_port},"
                    f"CONTROLLER://{h}:{self.controller_port}",
                    "advertised.listeners": f"{lst}://{h}:{self.port},INTERNAL://{h}:{self.internal_port}",
                    "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,{lst}:{lst}",
                    "inter.broker.listener.name": "INTERNAL",
                    "sasl.enabled.mechanisms": self.sasl,
                    f"listener.name.{lst.lower()}.sasl.enabled.mechanisms": self.sasl,
                }
            )
            if self.sasl == "PLAIN":
                entries = " ".join(f'user_{u}="{p}"' for u, p in self.users.items())
                props[f"listener.name.{lst.lower()}.{mech}.sasl.jaas.config"] = (
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {entries};"
                )
            else:
                props[f"listener.name.{lst.lower()}.{mech}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
            if self.tls:
                from tests.infra.kafka_tls import make_certificates

                if self.ca_path is None:
                    self.ca_path, self._keystore = make_certificates(self.work_dir / "tls", h)
                props.update({"ssl.keystore.type": "PEM", "ssl.keystore.location": str(self._keystore)})
        else:
            props.update(
                {
                    "listeners": f"PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{self.controller_port}",
                    "advertised.listeners": f"PLAINTEXT://{h}:{self.port}",
                    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name": "PLAINTEXT",
                }
            )
        props.update(self.broker_config)
        return props

    def _write_properties(self) -> None:
        assert self.properties_path is not None
        lines = ["# generated by tests/infra/kafka_broker.py"]
        lines += [f"{k}={_props_escape(v)}" for k, v in self._server_properties().items()]
        self.properties_path.write_text("\n".join(lines) + "\n")

    def _java_cmd(self, java: str, libs: Path, opts: Iterable[str], main: str, cds: CdsArchive) -> list[str]:
        return [
            java,
            *opts,
            *cds.flags(),
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dstreamforge.kafka.loglevel={self.log_level}",
            f"-Dkafka.logs.dir={self.work_dir}",
            "-cp",
            f"{libs}/*",
            main,
        ]

    def _format_storage(self, java: str, libs: Path) -> None:
        assert self.work_dir is not None and self.cluster_id is not None
        cds = CdsArchive(java, libs, STORAGE_TOOL_JVM_OPTS, "kafka.tools.StorageTool")
        cmd = self._java_cmd(java, libs, STORAGE_TOOL_JVM_OPTS, "kafka.tools.StorageTool", cds)
        cmd += ["format", "-t", self.cluster_id, "-c", str(self.properties_path)]
        if self.sasl and self.sasl.startswith("SCRAM"):
            for name, password in self.users.items():
                cmd += ["--add-scram", f"{self.sasl}=[name={name},password={password}]"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)
        self.last_format_seconds = time.monotonic() - t0
        out = proc.stdout.decode("utf-8", "replace")
        (self.work_dir / "format.log").write_text(out)
        if proc.returncode != 0:
            cds.discard()
            raise KafkaBrokerError(f"kafka.tools.StorageTool format failed (exit {proc.returncode}):\n{out[-4000:]}")
        cds.collect()
        self._formatted = True

    def _launch(self, java: str, libs: Path) -> None:
        assert self.log_path is not None and self.properties_path is not None
        if self._cds is None:
            self._cds = CdsArchive(java, libs, self.jvm_opts, "kafka.Kafka")
        cmd = self._java_cmd(java, libs, self.jvm_opts, "kafka.Kafka", self._cds) + [str(self.properties_path)]
        if self._log_fh is not None:
            self._log_fh.close()
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the JVM
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        self._log_fh.write(f"\n==== {stamp} starting broker: {' '.join(cmd)}\n".encode())
        self._log_fh.flush()
        preexec = die_with_parent(signal.SIGTERM)
        self._launch_t0 = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd=str(self.work_dir),
            start_new_session=True,  # Ctrl-C in a terminal goes to us, not straight to the JVM
            preexec_fn=preexec,
        )

    def _wait_ready(self) -> None:
        """Until a kafka-python client gets metadata listing this broker (and, with SASL,
        until the SASL listener authenticates the first user)."""
        deadline = self._launch_t0 + self.start_timeout
        targets = [(self.internal_client_config(), "metadata")]
        if self.sasl:
            targets.append((self.client_config(), "sasl"))
        last_err: str = "no attempt yet"
        for cfg, what in targets:
            port = int(cfg["bootstrap_servers"].rsplit(":", 1)[1])
            while True:
                self._check_alive(f"waiting for {what}")
                if time.monotonic() > deadline:
                    raise KafkaBrokerError(
                        f"Kafka broker not ready after {self.start_timeout:.0f}s ({what}: {last_err})\n"
                        f"--- tail of {self.log_path} ---\n{self.log_tail()}"
                    )
                # Cheap raw check first: the listener accepts TCP before the broker serves
                # requests, and a kafka-python client whose constructor times out leaks its IO
                # thread and sockets (kafka-python 3.0.12), so only build one once Kafka answers.
                status = _api_versions_status(self.host, port, ca=cfg.get("ssl_cafile"))
                if status != "ok":
                    last_err = f"port {port}: {status}"
                    time.sleep(0.1)
                    continue
                try:
                    _probe_metadata(cfg)
                    break
                except Exception as e:  # noqa: BLE001 - any client error means "not yet"
                    last_err = f"{type(e).__name__}: {e}"
                    if what == "sasl" and "uthentication" in last_err:
                        raise KafkaBrokerError(
                            f"SASL listener rejects configured user: {last_err}\n"
                            f"--- tail of {self.log_path} ---\n{self.log_tail()}"
                        ) from e
                    time.sleep(0.2)
        self.last_start_seconds = time.monotonic() - self._launch_t0

    def _check_alive(self, doing: str) -> None:
        if self._proc is None:
            raise KafkaBrokerError("broker process not launched")
        rc = self._proc.poll()
        if rc is not None:
            if self._log_fh is not None:
                self._log_fh.flush()
            raise KafkaBrokerError(
                f"Kafka broker exited with code {rc} while {doing}\n--- tail of {self.log_path} ---\n{self.log_tail()}"
            )

    def _kill_process(self, *, graceful: bool, timeout: float | None = None) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            timeout = self.stop_timeout if timeout is None else timeout
            try:
                if graceful:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        if self._log_fh is not None:
                            self._log_fh.write(f"\n==== broker did not stop within {timeout:.0f}s: SIGKILL\n".encode())
                            self._log_fh.flush()
                        proc.kill()
                        proc.wait(timeout=30)
                else:
                    proc.kill()
                    proc.wait(timeout=30)
            except ProcessLookupError:
                pass
        if proc is not None and self._cds is not None:
            self._cds.collect()
        self._proc = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def _cleanup_dir(self, force: bool = False) -> None:
        if self.work_dir is None:
            return
        if force or not self.keep:
            if self._fixed_work_dir is None:
                shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
            self.port = self.controller_port = self.internal_port = None
            self._formatted = False
            self.cluster_id = None


def _api_versions_status(host: str, port: int, timeout: float = 1.0, ca: str | None = None) -> str:
    """Send a raw ApiVersions v0 request (allowed before SASL authentication); "ok" when the
    broker answers it, else a short reason. With ``ca``, over TLS trusting that CA."""
    client_id = b"streamforge-readiness"
    correlation_id = 0x5F5F
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if ca:
                tls = ssl.create_default_context(cafile=ca)
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=host))
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(header)) + header)
            data = b""
            while len(data) < 8:
                chunk = sock.recv(8 - len(data))
                if not chunk:
                    return "connection closed before ApiVersions response"
                data += chunk
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "no ApiVersions response yet"
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    size, corr = struct.unpack(">ii", data)
    if corr != correlation_id or size < 6:
        return f"unexpected ApiVersions response (size {size}, correlation id {corr})"
    return "ok"


def _probe_metadata(cfg: Mapping[str, Any]) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        **cfg,
        client_id="streamforge-readiness-probe",
        request_timeout_ms=3000,
        bootstrap_timeout_ms=3000,
        reconnect_backoff_max_ms=200,
    )
    try:
        info = admin.describe_cluster()
        if not info.get("brokers"):
            raise RuntimeError("metadata has no brokers yet")
    finally:
        admin.close()


# ---------------------------------------------------------------------- CLI


def _parse_user(value: str) -> tuple[str, str]:
    if ":" not in value:
        raise argparse.ArgumentTypeError("--user takes NAME:PASSWORD")
    name, password = value.split(":", 1)
    return name, password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.infra.kafka_broker",
        description=f"Run a real Apache Kafka {KAFKA_VERSION} broker (KRaft, single node) on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a broker in the foreground until Ctrl-C/SIGTERM")
    run.add_argument("--port", type=int, default=None, help="client port (default: random free port)")
    run.add_argument("--sasl", choices=SASL_MECHANISMS, default=None, help="SASL_PLAINTEXT with this mechanism")
    run.add_argument(
        "--user",
        action="append",
        type=_parse_user,
        default=[],
        metavar="NAME:PASSWORD",
        help="SASL user (repeatable; default admin:admin-secret)",
    )
    run.add_argument("--partitions", type=int, default=1, help="num.partitions for auto-created topics")
    run.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]", help="create topic(s)")
    run.add_argument("--work-dir", default=None, help="persistent data dir (reused across runs)")
    run.add_argument("--keep", action="store_true", help="keep the temp dir on exit")
    run.add_argument("--log-level", default=None, help="broker root log level (default INFO)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra server.properties entry")
    sub.add_parser("fetch", help="download/cache the Kafka jars and print their directory")
    sub.add_parser("version", help="print the Kafka version")
    args = parser.parse_args(argv)

    if args.command == "version":
        print(KAFKA_VERSION)
        return 0
    if args.command == "fetch":
        print(fetch_kafka_libs())
        return 0

    extra = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        extra[k.strip()] = v
    broker = KafkaBroker(
        sasl=args.sasl,
        users=dict(args.user) or None,
        port=args.port,
        num_partitions=args.partitions,
        broker_config=extra,
        work_dir=args.work_dir,
        keep=args.keep or None,
        log_level=args.log_level,
    )

    stop_event = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"starting Kafka {KAFKA_VERSION} (KRaft combined) ...", file=sys.stderr, flush=True)
        broker.start()
        for spec in args.topic:
            name, _, parts = spec.partition(":")
            broker.create_topic(name, int(parts or 1), exist_ok=True)
        print(
            f"ready in {broker.last_start_seconds:.1f}s, pid {broker.pid}, log {broker.log_path}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        print(f"bootstrap_servers={broker.bootstrap_servers}", flush=True)
        print(f"security_protocol={broker.security_protocol}", flush=True)
        if broker.sasl:
            print(f"sasl_mechanism={broker.sasl}", flush=True)
            for name, password in broker.users.items():
                print(f"user={name} password={password}", flush=True)
            print(f"internal_plaintext={broker.internal_bootstrap_servers}", flush=True)
        while not stop_event.wait(1.0):
            if not broker.is_running():
                print(f"broker exited unexpectedly\n{broker.log_tail()}", file=sys.stderr)
                return 1
        print("stopping ...", file=sys.stderr, flush=True)
        return 0
    except KafkaBrokerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
