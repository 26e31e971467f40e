"""Knative Serving's real queue-proxy in front of a function, configured from eventing/services.yaml.

The binary is knative.dev/serving v0.50.0 `cmd/queue`, built by tests/infra/dataplane/build.sh
into ``${XDG_CACHE_HOME:-~/.cache}/streamforge-qm/dataplane/bin/queue``.

What a Knative cluster would do with a Service of services.yaml, rendered here from the file as
parsed (nothing copied): the webhook's Revision defaults (pkg/apis/serving/v1/revision_defaults.go,
config-defaults), then the revision reconciler's pod (pkg/reconciler/revision/resources/queue.go
`makeQueueContainer`, deploy.go `makeServingContainer`):

- queue-proxy's env: CONTAINER_CONCURRENCY from ``containerConcurrency`` (default 0),
  REVISION_TIMEOUT_SECONDS from ``timeoutSeconds`` (default 300), the response-start and idle
  timeouts, SERVING_READINESS_PROBE = the user container's readinessProbe (host 127.0.0.1, the
  user port, scheme HTTP, k8s defaults), the SERVING_* names, USER_PORT = ``containerPort``.
- the function's env: the container's literal ``env`` values, PORT = the user port, K_SERVICE,
  K_CONFIGURATION, K_REVISION. Values from Secrets and the ``envFrom`` ConfigMap (Kafka, ArangoDB,
  the Kubernetes launcher) are left out: the function runs on its embedded default (SQLite, local
  events, local launcher).

Addresses are the only thing swapped: the user port (8080 in the manifest) and queue-proxy's
serving ports are free loopback ports. OBSERVABILITY_CONFIG is not set (queue-proxy's defaults:
no metrics exporter, no tracing, no request log); no serving certificates are mounted (no TLS).

queue-proxy's admin port 8022 and autoscaler-metrics port 9090 are compiled in
(knative.dev/serving/pkg/networking): one queue-proxy per network namespace. Every QueueProxy
here holds an exclusive file lock (``LOCK_PATH``, shared by all processes on the machine) from
start to exit, waits for it up to ``lock_timeout`` seconds, and then checks that both ports can
be bound; if not, it fails saying which port is taken and by what.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tests.infra.children import die_with_parent, free_port
from tests.infra.dataplane import CACHE
from tests.servers import FF, ROOT, FunctionServer, http_call

EVENTING = ROOT / "eventing"
SERVICES_YAML = EVENTING / "services.yaml"
BUILD_SCRIPT = ROOT / "tests" / "infra" / "dataplane" / "build.sh"

ADMIN_PORT = 8022  # networking.QueueAdminPort: /wait-for-drain, the user container's preStop hook
METRICS_PORT = 9090  # networking.AutoscalingQueueMetricsPort: the autoscaler's scrape
DRAIN_SECONDS = 30  # sharedmain drainSleepDuration: quiet period after SIGTERM before shutdown
KUBELET_USER_AGENT = "kube-probe/1.37"
PROBE_HEADERS = {"User-Agent": KUBELET_USER_AGENT, "K-Network-Probe": "queue"}
"""What the kubelet sends for the queue-proxy container's readinessProbe (queue.go)."""

LOCK_PATH = Path(tempfile.gettempdir()) / "streamforge-queue-proxy.lock"

# config-defaults (knative.dev/serving pkg/apis/config/defaults.go) when the manifest says nothing.
DEFAULT_TIMEOUT_SECONDS = 300
DEFAULT_CONTAINER_CONCURRENCY = 0
DEFAULT_USER_PORT = 8080  # v1.DefaultUserPort
# config-logging's default zap-logger-config (knative.dev/pkg logging), queue-proxy writes JSON.
LOGGING_CONFIG = json.dumps({
    "level": "info", "development": False, "outputPaths": ["stdout"], "errorOutputPaths": ["stderr"],
    "encoding": "json",
    "encoderConfig": {"timeKey": "timestamp", "levelKey": "severity", "nameKey": "logger", "callerKey": "caller",
                      "messageKey": "message", "stacktraceKey": "stacktrace", "lineEnding": "",
                      "levelEncoder": "", "timeEncoder": "iso8601", "durationEncoder": "", "callerEncoder": ""},
})


class QueueProxyError(RuntimeError):
    """queue-proxy cannot run here (no binary, ports taken, did not start)."""


def cache_dir() -> Path:
    return CACHE


def queue_binary() -> Path:
    return cache_dir() / "bin" / "queue"


def ensure_binary(build: bool = True, timeout: float = 1800) -> Path:
    """The queue binary; with ``build``, run build.sh (which waits for a running build) if missing."""
    binary = queue_binary()
    if not binary.is_file() and build:
        proc = subprocess.run(["bash", str(BUILD_SCRIPT), "queue"], capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise QueueProxyError(f"{BUILD_SCRIPT} queue failed (rc={proc.returncode}): {proc.stderr[-4000:]}")
    if not binary.is_file():
        raise QueueProxyError(f"{binary} missing: run bash {BUILD_SCRIPT.relative_to(ROOT)} queue")
    return binary


# -- the manifests, as Knative reads them --------------------------------------------------------

def namespace() -> str:
    """The namespace the Services land in: kustomization.yaml's `namespace` (kubectl apply -k)."""
    kustomization = yaml.safe_load((EVENTING / "kustomization.yaml").read_text())
    return str(kustomization.get("namespace") or "default")


def services(path: Path = SERVICES_YAML) -> dict[str, dict[str, Any]]:
    """The Knative Services of ``path`` by name."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {d["metadata"]["name"]: d for d in docs
            if d.get("kind") == "Service" and str(d.get("apiVersion", "")).startswith("serving.knative.dev/")}


@dataclass(frozen=True)
class Revision:
    """The first Revision of one Service, after the webhook's defaults."""

    service: str
    namespace: str
    container_concurrency: int
    timeout_seconds: int
    response_start_timeout_seconds: int
    idle_timeout_seconds: int
    annotations: dict[str, str]
    container: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.service}-00001"

    @property
    def user_port(self) -> int:
        """The manifest's containerPort (what the addresses are swapped from)."""
        ports = self.container.get("ports") or []
        return int(ports[0].get("containerPort") or DEFAULT_USER_PORT) if ports else DEFAULT_USER_PORT

    @property
    def autoscaling_target(self) -> float | None:
        raw = self.annotations.get("autoscaling.knative.dev/target")
        return float(raw) if raw is not None else None

    @classmethod
    def of(cls, service: dict[str, Any], ns: str | None = None) -> Revision:
        template = service["spec"]["template"]
        spec = template["spec"]
        containers = spec["containers"]
        serving = [c for c in containers if c.get("ports")] or containers[:1]
        return cls(
            service=service["metadata"]["name"],
            namespace=service["metadata"].get("namespace") or ns or namespace(),
            container_concurrency=int(spec.get("containerConcurrency", DEFAULT_CONTAINER_CONCURRENCY)),
            timeout_seconds=int(spec.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)),
            response_start_timeout_seconds=int(spec.get("responseStartTimeoutSeconds", 0)),
            idle_timeout_seconds=int(spec.get("idleTimeoutSeconds", 0)),
            annotations={str(k): str(v) for k, v in (template.get("metadata", {}).get("annotations") or {}).items()},
            container=copy.deepcopy(serving[0]),
        )


def revision(name: str) -> Revision:
    """The Revision of Service ``name`` in eventing/services.yaml."""
    found = services()
    if name not in found:
        raise KeyError(f"no Service {name!r} in {SERVICES_YAML}; there are {sorted(found)}")
    return Revision.of(found[name])


def readiness_probe(rev: Revision, user_port: int) -> dict[str, Any]:
    """SERVING_READINESS_PROBE: the container's readinessProbe as queue-proxy gets it.

    revision_defaults.go (a TCP probe when there is none; successThreshold 1; with a period,
    failureThreshold 3 and timeoutSeconds 1 when unset), then queue.go applyReadinessProbeDefaults
    (host 127.0.0.1, the probe's own port or the user port, scheme HTTP). A port equal to the
    manifest's containerPort is the user port, swapped like it.
    """
    probe = copy.deepcopy(rev.container.get("readinessProbe") or {})
    if not any(k in probe for k in ("httpGet", "tcpSocket", "exec", "grpc")):
        probe["tcpSocket"] = {}
    if not probe.get("successThreshold"):
        probe["successThreshold"] = 1
    if probe.get("periodSeconds"):
        probe["failureThreshold"] = probe.get("failureThreshold") or 3
        probe["timeoutSeconds"] = probe.get("timeoutSeconds") or 1

    def port_of(action: dict[str, Any]) -> int:
        own = action.get("port")
        if own in (None, 0, rev.user_port, "user-port", "http1", "h2c"):  # named ports are the user port's
            return user_port
        raise ValueError(f"{rev.service}: readiness probe on port {own!r}, not the user port {rev.user_port}")

    if "httpGet" in probe:
        action = probe["httpGet"]
        action["host"] = "127.0.0.1"
        action["port"] = port_of(action)
        action["scheme"] = action.get("scheme") or "HTTP"
    elif "tcpSocket" in probe:
        probe["tcpSocket"] = {"host": "127.0.0.1", "port": port_of(probe["tcpSocket"])}
    elif "exec" in probe:  # still run by the kubelet; queue-proxy checks the port
        probe.pop("exec")
        probe["tcpSocket"] = {"host": "127.0.0.1", "port": user_port}
    elif "grpc" in probe:
        probe["grpc"]["port"] = user_port
    if probe.get("periodSeconds", 0) > 0 and probe.get("timeoutSeconds", 0) < 1:
        probe["timeoutSeconds"] = 1
    return probe


def queue_proxy_env(rev: Revision, *, user_port: int, serving_port: int, tls_port: int,
                    container_concurrency: int | None = None) -> dict[str, str]:
    """queue-proxy's environment as makeQueueContainer renders it; ``container_concurrency``
    overrides the manifest's (for measurements at another setting)."""
    cc = rev.container_concurrency if container_concurrency is None else container_concurrency
    pod = f"{rev.name}-deployment-local"
    return {
        "SERVING_NAMESPACE": rev.namespace,
        "SERVING_SERVICE": rev.service,
        "SERVING_CONFIGURATION": rev.service,
        "SERVING_REVISION": rev.name,
        "QUEUE_SERVING_PORT": str(serving_port),
        "QUEUE_SERVING_TLS_PORT": str(tls_port),
        "CONTAINER_CONCURRENCY": str(cc),
        "REVISION_TIMEOUT_SECONDS": str(rev.timeout_seconds),
        "REVISION_RESPONSE_START_TIMEOUT_SECONDS": str(rev.response_start_timeout_seconds),
        "REVISION_IDLE_TIMEOUT_SECONDS": str(rev.idle_timeout_seconds),
        "SERVING_POD": pod,
        "SERVING_POD_IP": "127.0.0.1",
        "SERVING_LOGGING_CONFIG": LOGGING_CONFIG,
        "SERVING_LOGGING_LEVEL": "",  # config-logging sets no loglevel.queueproxy
        "USER_PORT": str(user_port),
        "SYSTEM_NAMESPACE": "knative-serving",
        "SERVING_READINESS_PROBE": json.dumps(readiness_probe(rev, user_port), separators=(",", ":")),
        "HOST_IP": "127.0.0.1",
        "ENABLE_HTTP2_AUTO_DETECTION": "false",
        "ENABLE_HTTP_FULL_DUPLEX": "false",
        "ROOT_CA": "",
        "QUEUE_PROXY_TLS_MIN_VERSION": "",
        "QUEUE_PROXY_TLS_MAX_VERSION": "",
        "QUEUE_PROXY_TLS_CIPHER_SUITES": "",
        "QUEUE_PROXY_TLS_CURVE_PREFERENCES": "",
        "ENABLE_MULTI_CONTAINER_PROBES": "false",
    }


def function_env(rev: Revision, *, port: int) -> dict[str, str]:
    """What the Service gives the function container: its literal env values, PORT, K_*."""
    env = {str(e["name"]): str(e["value"]) for e in rev.container.get("env") or []
           if "value" in e and "valueFrom" not in e}
    env.update(PORT=str(port), K_REVISION=rev.name, K_CONFIGURATION=rev.service, K_SERVICE=rev.service)
    return env


# -- the function, as the Service's container runs it -------------------------------------------

class ServiceFunction(FunctionServer):
    """`functions-framework` with no flags and the Service's env (FUNCTION_TARGET, FUNCTION_SOURCE,
    FUNCTION_USE_ASGI, QM_FUNCTION, PORT...), as the image runs it; ``env`` is the base
    environment (e.g. tests.servers.base_env). HOST=127.0.0.1 keeps it on loopback."""

    def __init__(self, rev: Revision, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(rev.service, env, log_dir)
        self.revision = rev
        self.env = {**env, **function_env(rev, port=self.port), "HOST": "127.0.0.1"}

    def start(self, timeout: float = 30) -> ServiceFunction:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([FF], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                         preexec_fn=die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target} exited: {self.log_path.read_text()[-2000:]}")
            try:
                self.call("GET", "/health/live", timeout=2)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.target} not live after {timeout}s")



# -- the fixed ports -----------------------------------------------------------------------------

def _port_user(port: int) -> str:
    """Who listens on ``port`` (ss), for the error message."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if out:
            return out
    return "unknown process"


def check_ports_free(ports: tuple[int, ...] = (ADMIN_PORT, METRICS_PORT)) -> None:
    """Bind each port as queue-proxy will (all addresses, SO_REUSEADDR like Go's listeners)."""
    for port in ports:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            address: tuple[Any, ...] = ("::", port)
        except OSError:  # no IPv6 here
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = ("", port)
        with s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(address)
            except OSError as e:
                raise QueueProxyError(
                    f"port {port} is taken ({e.strerror}); queue-proxy's admin ({ADMIN_PORT}) and metrics "
                    f"({METRICS_PORT}) ports are fixed, one queue-proxy per host here. Listener: "
                    f"{_port_user(port)}") from None


class PortLock:
    """The machine-wide right to run queue-proxy (its fixed ports): an flock on LOCK_PATH."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = open(LOCK_PATH, "a+")  # noqa: SIM115 - held until release()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    f.seek(0)
                    holder = f.read().strip() or "unknown"
                    f.close()
                    raise QueueProxyError(f"another queue-proxy still holds {LOCK_PATH} after "
                                          f"{self.timeout:.0f}s (holder: {holder})") from None
                time.sleep(0.2)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


# -- queue-proxy ---------------------------------------------------------------------------------

_BREAKER = re.compile(r"BreakerParams\{QueueDepth:(\d+), MaxConcurrency:(\d+), InitialCapacity:(\d+)\}")


@dataclass
class QueueProxy:
    """queue-proxy for ``rev``, proxying to 127.0.0.1:``user_port`` (the function need not be up)."""

    rev: Revision
    user_port: int
    log_dir: Path
    container_concurrency: int | None = None
    lock_timeout: float = 120.0
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    exited_at: float | None = None
    _lock: PortLock | None = None

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.log_dir / f"queue-proxy-{self.rev.service}-{self.port}.log"
        self.env = queue_proxy_env(self.rev, user_port=self.user_port, serving_port=self.port,
                                   tls_port=self.tls_port, container_concurrency=self.container_concurrency)

    def start(self, timeout: float = 15) -> QueueProxy:
        binary = ensure_binary(build=False)
        self._lock = PortLock(self.lock_timeout)
        self._lock.acquire()
        try:
            check_ports_free()
            with open(self.log_path, "ab") as log:  # the env is the whole environment, as in its container
                self.proc = subprocess.Popen([str(binary)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                             preexec_fn=die_with_parent(signal.SIGKILL))
            self.started_at = time.monotonic()
            self.exited_at = None
            deadline = time.monotonic() + timeout
            while not (self._accepts(self.port) and self._accepts(ADMIN_PORT)):
                if self.proc.poll() is not None:
                    raise QueueProxyError(f"queue-proxy exited (rc={self.proc.returncode}): {self.log()[-3000:]}")
                if time.monotonic() > deadline:
                    raise QueueProxyError(f"queue-proxy not listening after {timeout}s: {self.log()[-3000:]}")
                time.sleep(0.02)
        except BaseException:
            self.kill()
            raise
        return self

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def breaker(self) -> dict[str, int] | None:
        """The BreakerParams queue-proxy logged at start (None: no breaker, concurrency unlimited)."""
        m = _BREAKER.search(self.log())
        if m is None:
            return None
        return {"queue_depth": int(m[1]), "max_concurrency": int(m[2]), "initial_capacity": int(m[3])}

    def probe(self, headers: dict[str, str] | None = None, timeout: float = 15) -> tuple[int, Any]:
        """The kubelet's readinessProbe of the queue-proxy container: (status, body)."""
        return self.call("GET", "/", headers=PROBE_HEADERS if headers is None else headers, timeout=timeout)

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 30) -> tuple[int, Any]:
        return http_call(self.url + path, method, body, headers, timeout=timeout)

    def wait_for_drain(self, timeout: float = DRAIN_SECONDS + 30) -> int:
        """GET :8022/wait-for-drain, the user container's preStop hook (deploy.go userLifecycle):
        returns once queue-proxy has drained."""
        with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_PORT}/wait-for-drain", timeout=timeout) as r:
            return int(r.status)

    def terminate(self) -> None:
        """SIGTERM, as the kubelet ends the pod: queue-proxy drains (DRAIN_SECONDS quiet) and exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        self._release()
        return rc

    def kill(self) -> None:
        """SIGKILL (no drain) and release the ports: the teardown of tests that don't test the drain."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> QueueProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill()


@contextlib.contextmanager
def service_behind_queue_proxy(name: str, env: dict[str, str], log_dir: Path,
                               container_concurrency: int | None = None):  # type: ignore[no-untyped-def]
    """Service ``name``'s function and its queue-proxy, both started; yields (function, proxy)."""
    rev = revision(name)
    fn = ServiceFunction(rev, env, log_dir)
    with fn, QueueProxy(rev, fn.port, log_dir, container_concurrency=container_concurrency) as qp:
        yield fn, qp
