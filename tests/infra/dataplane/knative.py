"""Knative's Kafka data plane (eventing-kafka-broker v0.50.0, the Java ``dispatcher-loom``
and ``receiver-loom`` jars that tests/infra/dataplane/build.sh builds) as local processes.

API::

    d = Dispatcher("source" | "broker", contract, kafka, work_dir, kubeconfig=None,
                   properties=None, jvm_opts=None, start_timeout=90).start()
    d.update(contract)      # rewrite the watched contract file: the dispatcher hot-reloads it
    d.wait_egress(group)    # until that consumer group's consumer was assigned partitions
    d.log_text()            # its log (work_dir/dispatcher-<kind>-<n>-<hex>.log; files in the dir of that name)
    d.stop()                # SIGTERM, then SIGKILL after `timeout`; d.kill() for SIGKILL at once

    r = Receiver("sink" | "broker", contract, kafka, work_dir, kubeconfig=None).start()
    r.url                   # http://127.0.0.1:<port>; r.url + ingress.path is where to POST
    r.update(contract), r.log_text(), r.stop(), r.kill()

    both are context managers; ``available()`` says whether the jars and the Java runtime are
    built, ``build()`` runs build.sh (it holds a lock: waits for a running build or reuses it).

    dep = KafkaSourceDeployment(kafka, work_dir, sink_url).start()   # all of it from eventing/
    dep.dispatcher, dep.dead_letter, dep.stop()   # KafkaSource + its dead-letter KafkaSink receiver

``contract`` is the data-plane contract as a dict (protobuf JSON of ``DataPlaneContract``;
tests/infra/dataplane/contract.py renders it from eventing/). ``generation`` is set for you:
the data plane ignores a file whose generation did not change. ``kafka`` is a running
tests.infra.kafka_broker.KafkaBroker: only used to check that the contract's bootstrap
servers are that broker's. ``kubeconfig``: where the data plane reads the Secrets a contract's
``multiAuthSecret``/``authSecret`` names (SASL); without one, only ``absentAuth`` works.

The processes are configured as upstream's data-plane/config/{source,broker,sink}/ ships
them (the env of 500-dispatcher.yaml / 500-receiver.yaml and the .properties of the
config-kafka-*-data-plane ConfigMaps, copied below), with local paths and free ports, metrics
and tracing off (an empty observability directory) and a plain-text log. They die with the
test process (PR_SET_PDEATHSIG).

Readiness: the dispatcher's own readiness file is hard-coded to ``/tmp/healthy`` (Main.java),
shared by every dispatcher on the machine, so it cannot tell two instances apart; ``start()``
waits instead for the log lines the dispatcher writes at the same point ("Consumer deployer
started", then the contract file watched). The receiver is ready when its HTTP readiness
probe (READINESS_PROBE_PATH) answers 200.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.infra.children import die_with_parent, free_port
from tests.infra.dataplane import CACHE

HERE = Path(__file__).resolve().parent
JAVA = CACHE / "java" / "bin" / "java"
JARS = {"dispatcher": CACHE / "jars" / "dispatcher-loom.jar", "receiver": CACHE / "jars" / "receiver-loom.jar"}
TRUSTSTORE = Path("/etc/ssl/certs/java/cacerts")
# For tests: quick start and little CPU on a shared 2-core machine (C1 only, serial GC, small
# heap). A benchmark should pass jvm_opts=THROUGHPUT_JVM_OPTS (upstream runs the default JIT).
JVM_OPTS = ["-XX:+CrashOnOutOfMemoryError", "-XX:+UseSerialGC", "-Xms64m", "-Xmx384m", "-Xss512k",
            "-XX:TieredStopAtLevel=1"]
THROUGHPUT_JVM_OPTS = ["-XX:+CrashOnOutOfMemoryError", "-Xms256m", "-Xmx512m"]


class DataPlaneError(RuntimeError):
    """A data-plane process failed to start or died."""


class DataPlaneUnavailable(DataPlaneError):
    """The jars or the Java runtime are not built (run tests/infra/dataplane/build.sh)."""


def available() -> bool:
    return JAVA.is_file() and all(j.is_file() for j in JARS.values())


def build() -> None:
    """build.sh's Java part (waits for a build already running; reuses a finished one)."""
    subprocess.run(["bash", str(HERE / "build.sh"), "java"], check=True)


# -- upstream configuration (data-plane/config at v0.50.0) -------------------------------------

# config/source/100-config-kafka-source-data-plane.yaml: config-kafka-source-producer.properties
# (the broker and sink ConfigMaps carry the same producer properties).
PRODUCER = {
    "key.serializer": "org.apache.kafka.common.serialization.StringSerializer",
    "value.serializer": "io.cloudevents.kafka.CloudEventSerializer",
    "acks": "all", "buffer.memory": "33554432", "retries": "2147483647", "batch.size": "16384",
    "client.dns.lookup": "use_all_dns_ips", "connections.max.idle.ms": "600000",
    "delivery.timeout.ms": "120000", "linger.ms": "0", "max.block.ms": "60000",
    "max.request.size": "1048576", "receive.buffer.bytes": "-1", "request.timeout.ms": "2000",
    "enable.idempotence": "false", "max.in.flight.requests.per.connection": "5",
    "metadata.max.age.ms": "300000", "metrics.num.samples": "2", "metrics.recording.level": "INFO",
    "metrics.sample.window.ms": "30000", "reconnect.backoff.max.ms": "1000", "reconnect.backoff.ms": "50",
    "retry.backoff.ms": "100",
}
# config-kafka-broker-consumer.properties (config/broker/100-config-kafka-broker-data-plane.yaml)
BROKER_CONSUMER = {
    "key.deserializer": "org.apache.kafka.common.serialization.StringDeserializer",
    "value.deserializer": "io.cloudevents.kafka.CloudEventDeserializer",
    "fetch.min.bytes": "1", "heartbeat.interval.ms": "3000", "max.partition.fetch.bytes": "65536",
    "session.timeout.ms": "10000", "allow.auto.create.topics": "true", "auto.offset.reset": "latest",
    "client.dns.lookup": "use_all_dns_ips", "connections.max.idle.ms": "540000",
    "default.api.timeout.ms": "2000", "enable.auto.commit": "false", "exclude.internal.topics": "true",
    "fetch.max.bytes": "52428800", "isolation.level": "read_uncommitted", "max.poll.interval.ms": "300000",
    "max.poll.records": "50",
    "partition.assignment.strategy": "org.apache.kafka.clients.consumer.StickyAssignor",
    "receive.buffer.bytes": "65536", "request.timeout.ms": "2000", "security.protocol": "PLAINTEXT",
    "send.buffer.bytes": "131072", "auto.commit.interval.ms": "5000", "check.crcs": "true",
    "fetch.max.wait.ms": "500", "metadata.max.age.ms": "600000", "reconnect.backoff.max.ms": "1000",
    "retry.backoff.ms": "100",
}
# config-kafka-source-consumer.properties: the broker's, plus the two lines that make the
# dispatcher wrap a record that is not a CloudEvent (InvalidCloudEventInterceptor), and
# earliest / read_committed.
SOURCE_CONSUMER = {
    **BROKER_CONSUMER,
    "cloudevent.invalid.transformer.enabled": "true", "cloudevent.invalid.kind.plural": "kafkasources",
    "auto.offset.reset": "earliest", "isolation.level": "read_committed",
}
WEBCLIENT = {"idleTimeout": "10000", "maxPoolSize": "100"}  # config-kafka-{source,broker}-webclient
HTTPSERVER = {"idleTimeout": "0"}  # config-kafka-{broker,sink}-httpserver.properties

LOGBACK = """<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} [%thread] %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.kafka" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <logger name="io.fabric8" level="WARN"/>
  <root level="INFO"><appender-ref ref="OUT"/></root>
</configuration>
"""

_counter = itertools.count(1)


def _properties(values: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


class _Process:
    """What the dispatcher and the receiver have in common: files, the JVM, the contract."""

    role = ""  # "dispatcher" | "receiver"
    kinds: tuple[str, ...] = ()

    def __init__(self, kind: str, contract: dict[str, Any], kafka: Any, work_dir: Path, *,
                 kubeconfig: Path | None = None, start_timeout: float = 90.0,
                 properties: dict[str, dict[str, str]] | None = None, jvm_opts: list[str] | None = None) -> None:
        """`properties`: overrides of the upstream .properties, by env var name (e.g.
        {"CONSUMER_CONFIG_FILE_PATH": {"max.poll.records": "500"}}); `jvm_opts` replaces
        JVM_OPTS."""
        if kind not in self.kinds:
            raise ValueError(f"{self.role} kind must be one of {self.kinds}, got {kind!r}")
        if not available():
            raise DataPlaneUnavailable(f"{JAVA} or {', '.join(map(str, JARS.values()))} missing: "
                                       "run tests/infra/dataplane/build.sh")
        self.kind = kind
        self.kafka = kafka
        self.kubeconfig = kubeconfig
        self.start_timeout = start_timeout
        self.name = f"{self.role}-{kind}-{next(_counter)}-{uuid.uuid4().hex[:4]}"
        self.dir = Path(work_dir) / self.name
        self.dir.mkdir(parents=True)
        (self.dir / "observability").mkdir()
        (self.dir / "features").mkdir()
        (self.dir / "contract").mkdir()  # alone in its directory: the watcher reacts to the whole dir
        self.contract_path = self.dir / "contract" / "data"
        self.log_path = Path(work_dir) / f"{self.name}.log"
        (self.dir / "logback.xml").write_text(LOGBACK)
        self._overrides = properties or {}
        self.jvm_opts = list(JVM_OPTS if jvm_opts is None else jvm_opts)
        self._generation = 0
        self._contract = self._stamp(contract)
        self._write_contract(self._contract)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # -- contract ---------------------------------------------------------------------------

    def _stamp(self, contract: dict[str, Any]) -> dict[str, Any]:
        contract = json.loads(json.dumps(contract))
        if self.kafka is not None:
            ours = {self.kafka.bootstrap_servers, self.kafka.internal_bootstrap_servers}
            for r in contract.get("resources", []):
                if r.get("bootstrapServers") not in ours:
                    raise ValueError(f"resource {r.get('uid')}: bootstrapServers {r.get('bootstrapServers')!r} "
                                     f"is not the local broker's ({sorted(ours)})")
        given = int(contract.get("generation") or 0)
        self._generation = max(given, self._generation + 1)
        contract["generation"] = str(self._generation)
        return contract

    def _write_contract(self, contract: dict[str, Any]) -> None:
        tmp = self.dir / "contract.tmp"
        tmp.write_text(json.dumps(contract, indent=1))
        os.replace(tmp, self.contract_path)

    @property
    def contract(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._contract))

    def update(self, contract: dict[str, Any]) -> None:
        """Write a new contract; the process picks it up by itself (its file watcher)."""
        self._contract = self._stamp(contract)
        self._write_contract(self._contract)

    # -- process ----------------------------------------------------------------------------

    def _files(self, values: dict[str, dict[str, str]]) -> dict[str, str]:
        env = {}
        for var, props in values.items():
            path = self.dir / f"{var.lower()}.properties"
            path.write_text(_properties({**props, **self._overrides.get(var, {})}))
            env[var] = str(path)
        return env

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir), "LANG": "C.UTF-8",
            "SERVICE_NAMESPACE": "knative-eventing",
            "DATA_PLANE_CONFIG_FILE_PATH": str(self.contract_path),
            "CONFIG_OBSERVABILITY_PATH": str(self.dir / "observability"),
            "CONFIG_FEATURES_PATH": str(self.dir / "features"),
            "METRICS_PUBLISH_QUANTILES": "false", "METRICS_JVM_ENABLED": "false",
            "HTTP2_DISABLE": "true", "WAIT_STARTUP_SECONDS": "8",
        }
        # Without a kubeconfig the fabric8 client would look for a cluster itself (~/.kube,
        # in-cluster): point it at nothing instead, so only absentAuth contracts work.
        env["KUBECONFIG"] = str(self.kubeconfig) if self.kubeconfig else str(self.dir / "no-kubeconfig")
        return env

    def _command(self) -> list[str]:
        opts = [*self.jvm_opts, f"-Dlogback.configurationFile={self.dir / 'logback.xml'}",
                f"-Djava.io.tmpdir={self.dir}"]
        if TRUSTSTORE.is_file():
            opts += [f"-Djavax.net.ssl.trustStore={TRUSTSTORE}", "-Djavax.net.ssl.trustStorePassword=changeit"]
        return [str(JAVA), *opts, "-jar", str(JARS[self.role])]

    def start(self) -> _Process:
        env = self._env()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the JVM
        preexec = die_with_parent(signal.SIGKILL)
        self.proc = subprocess.Popen(self._command(), env=env, cwd=self.dir, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=preexec)
        try:
            self._wait_ready(time.monotonic() + self.start_timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        raise NotImplementedError

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise DataPlaneError(f"{self.name} exited ({code}):\n{self.log_tail()}")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_log(self, pattern: str, timeout: float = 60.0, count: int = 1) -> re.Match[str]:
        """Until the log has `count` matches of the regex `pattern`; returns the last."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            matches = list(rx.finditer(self.log_text()))
            if len(matches) >= count:
                return matches[count - 1]
            self._check_alive()
            if time.monotonic() > deadline:
                raise DataPlaneError(f"{self.name}: no {count}x /{pattern}/ in its log after {timeout}s:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (the data plane's shutdown hook closes consumers, committing what was
        handled), SIGKILL after `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> _Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {'running' if self.is_running() else 'stopped'}>"


class Dispatcher(_Process):
    """``dispatcher-loom``: kind "source" (KafkaSource: records that are not CloudEvents are
    wrapped as dev.knative.kafka.event) or "broker" (Kafka Broker Triggers)."""

    role = "dispatcher"
    kinds = ("source", "broker")

    def _env(self) -> dict[str, str]:
        consumer = SOURCE_CONSUMER if self.kind == "source" else BROKER_CONSUMER
        env = super()._env()
        env.update(self._files({"PRODUCER_CONFIG_FILE_PATH": PRODUCER, "CONSUMER_CONFIG_FILE_PATH": consumer,
                                "WEBCLIENT_CONFIG_FILE_PATH": WEBCLIENT}))
        env.update(SERVICE_NAME=f"kafka-{self.kind}-dispatcher", EGRESSES_INITIAL_CAPACITY="20",
                   INSTANCE_ID=str(uuid.uuid4()))
        return env

    def _wait_ready(self, deadline: float) -> None:
        self.wait_log(r"Consumer deployer started", max(1.0, deadline - time.monotonic()))
        self.wait_log(r"Started watching", max(1.0, deadline - time.monotonic()))

    def wait_egress(self, consumer_group: str | None = None, timeout: float = 60.0, count: int = 1) -> None:
        """Until an egress' consumer (of `consumer_group`, or any) was assigned partitions
        (`count` times: each rebalance logs it again). A group without committed offsets
        starts at the consumer properties' auto.offset.reset (earliest for a source)."""
        group = r"[^}]*" if consumer_group is None else rf"[^}}]*consumerGroup='{re.escape(consumer_group)}'"
        self.wait_log(r"Received assign partitions for consumer context=\{" + group, timeout, count)


class Receiver(_Process):
    """``receiver-loom``: kind "sink" (KafkaSink) or "broker" (Kafka Broker ingress)."""

    role = "receiver"
    kinds = ("sink", "broker")

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.port = free_port()
        self.tls_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(self._files({"PRODUCER_CONFIG_FILE_PATH": PRODUCER, "HTTPSERVER_CONFIG_FILE_PATH": HTTPSERVER}))
        env.update(SERVICE_NAME=f"kafka-{self.kind}-receiver", INGRESS_PORT=str(self.port),
                   INGRESS_TLS_PORT=str(self.tls_port), LIVENESS_PROBE_PATH="/healthz",
                   READINESS_PROBE_PATH="/readyz")
        return env

    def _wait_ready(self, deadline: float) -> None:
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise DataPlaneError(f"{self.name}: /readyz not 200 after {self.start_timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def wait_ingress(self, path: str, timeout: float = 60.0) -> None:
        """Until `path` (a resource's ingress.path) is served: a GET there stops being 404."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                req = urllib.request.Request(self.url + path, method="GET")
                with urllib.request.urlopen(req, timeout=2):
                    return
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DataPlaneError(f"{self.name}: {path} still 404 after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)


class KafkaSourceDeployment:
    """eventing/kafka-source.yaml's KafkaSource (or `manifest`, a parsed and possibly changed
    copy) deployed as the controllers would, on a local broker: the dead-letter KafkaSink's
    topic created with its manifest's numPartitions and its receiver started (if the
    source's delivery names one), the group's offsets initialised when ``initialOffset`` is
    ``latest``, then the dispatcher started and waited for until its consumer has partitions.

        dep = KafkaSourceDeployment(kafka, work_dir, sink_url).start()
        dep.dispatcher, dep.dead_letter (a Receiver or None), dep.contract; dep.stop()

    `sink_url` is where ``Service/queue-telemetry`` is (the telemetry function, or ``all``'s
    /telemetry); `auth`/`kubeconfig` as for Dispatcher (contract.LocalAuth for a SASL broker).
    """

    def __init__(self, kafka: Any, work_dir: Path, sink_url: str, *, manifest: dict[str, Any] | None = None,
                 namespace: str | None = None, auth: Any = None, kubeconfig: Path | None = None,
                 **dispatcher_kw: Any) -> None:
        from tests.infra.dataplane import contract as dpc

        self.dispatcher_kw = dispatcher_kw  # properties=, jvm_opts=, start_timeout= of the Dispatcher
        self._dpc = dpc
        self.kafka = kafka
        self.work_dir = Path(work_dir)
        self.sink_url = sink_url
        self.manifest = manifest or dpc.manifest("kafka-source.yaml", "KafkaSource")
        self.namespace = namespace or dpc.NAMESPACE
        self.auth = auth
        self.kubeconfig = kubeconfig
        self.dispatcher: Dispatcher | None = None
        self.dead_letter: Receiver | None = None
        self.contract: dict[str, Any] = {}

    def start(self) -> KafkaSourceDeployment:
        dpc, spec = self._dpc, self.manifest["spec"]
        urls = {"Service/queue-telemetry": self.sink_url}
        dls = ((spec.get("delivery") or {}).get("deadLetterSink") or {}).get("ref")
        try:
            if dls is not None and dls["kind"] == "KafkaSink":
                sink = dpc.manifest("kafka-sinks.yaml", "KafkaSink", dls["name"])
                self.kafka.create_topic(sink["spec"]["topic"], int(sink["spec"].get("numPartitions", 1)),
                                        exist_ok=True)
                self.dead_letter = Receiver("sink", dpc.sink_contract(
                    [sink], bootstrap_servers=self.kafka.bootstrap_servers, namespace=self.namespace,
                    auth=self.auth), self.kafka, self.work_dir, kubeconfig=self.kubeconfig).start()
                path = dpc.ingress_path(sink, self.namespace)
                self.dead_letter.wait_ingress(path)
                urls[f"KafkaSink/{dls['name']}"] = self.dead_letter.url + path
            self.contract = dpc.source_contract(self.manifest, bootstrap_servers=self.kafka.bootstrap_servers,
                                                urls=urls, namespace=self.namespace, auth=self.auth)
            if spec.get("initialOffset", "latest") == "latest":
                dpc.init_offsets_latest(self.kafka.internal_client_config(), spec["topics"], spec["consumerGroup"])
            self.dispatcher = Dispatcher("source", self.contract, self.kafka, self.work_dir,
                                         kubeconfig=self.kubeconfig, **self.dispatcher_kw).start()
            self.dispatcher.wait_egress(spec["consumerGroup"])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for part in (self.dispatcher, self.dead_letter):
            if part is not None:
                part.stop()

    def __enter__(self) -> KafkaSourceDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
