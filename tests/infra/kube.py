"""A real Kubernetes control plane for tests: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (one fake node), all on
127.0.0.1 with random free ports and a throw-away data directory.

The binaries are built from source by ``tests/infra/k8s/build.sh`` into
``${XDG_CACHE_HOME:-~/.cache}/streamforge-qm/k8s/<version>/bin``.

Usage::

    from tests.infra.kube import ControlPlane

    with ControlPlane() as cp:
        api = kubernetes.client.BatchV1Api(cp.api_client())
        ...

Jobs run "for real" as far as the API is concerned: the Job controller
creates pods, the scheduler binds them to the kwok node and kwok moves them
Pending -> Running -> Succeeded (see ``tests/infra/k8s/kwok-stages.yaml`` for
the per-pod annotations that keep a pod Running or make it fail).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from tests.infra.children import die_with_parent, free_port
from tests.waiting import TimedOut, wait_until

T = TypeVar("T")

INFRA_DIR = Path(__file__).resolve().parent
K8S_DIR = INFRA_DIR / "k8s"
BUILD_SCRIPT = K8S_DIR / "build.sh"
KWOK_STAGES = K8S_DIR / "kwok-stages.yaml"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

KWOK_NODE_NAME = "kwok-node-0"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"

# Controllers run by kube-controller-manager. Not "*": the cloud, volume, node
# IPAM, CSR... controllers have nothing to do here and only add noise.
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    "resourcequota-controller",
    "replicaset-controller",
    "deployment-controller",
    # fills the aggregated admin/edit/view ClusterRoles, so tests can bind them
    "clusterrole-aggregation-controller",
    # removes the node.kubernetes.io/not-ready taint (added by the
    # TaintNodesByCondition admission plugin) once kwok reports the node Ready
    "node-lifecycle-controller",
)


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started."""


def bin_dir() -> Path:
    """Directory build.sh puts the binaries in (nothing is built)."""
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-bin-dir"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def missing_binaries(directory: Path | None = None) -> list[str]:
    directory = directory or bin_dir()
    return [b for b in BINARIES if not os.access(directory / b, os.X_OK)]


def binaries_up_to_date() -> tuple[bool, str]:
    """(ok, message) from ``build.sh --check``: every binary present and built
    from the versions pinned in the go.mod files (nothing is built)."""
    res = subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], capture_output=True, text=True)
    lines = (res.stdout + res.stderr).strip().splitlines()
    return res.returncode == 0, lines[-1] if lines else f"build.sh --check exited {res.returncode}"


def ensure_binaries(*, build: bool = True, stream: IO[str] | None = None) -> Path:
    """Return the bin directory, running build.sh first if a binary is missing
    or outdated.

    With ``build=False`` that raises ControlPlaneError instead.
    build.sh output goes to ``stream`` (default: this process's stderr).
    A cold build takes 15-30 minutes on 2 cores: run ``tests/infra/k8s/build.sh``
    before the test session (CI should) rather than inside a timed test.
    """
    directory = bin_dir()
    ok, message = binaries_up_to_date()
    if ok:
        return directory
    if not build:
        raise ControlPlaneError(f"{message}; build them with: bash {BUILD_SCRIPT}")
    out = stream if stream is not None else sys.stderr
    proc = subprocess.Popen(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    tail: list[str] = []
    with proc.stdout:
        for line in proc.stdout:
            out.write(line)
            out.flush()
            tail = (tail + [line])[-40:]
    if proc.wait() != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed (exit {proc.returncode}):\n" + "".join(tail))
    missing = missing_binaries(directory)
    if missing:
        raise ControlPlaneError(f"{BUILD_SCRIPT} succeeded but {missing} are missing")
    return directory


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise ControlPlaneError("openssl is needed to generate the test certificates")
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{res.stderr}")


def _tail(path: Path, lines: int = 60) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(data[-lines:])


@dataclass
class _Proc:
    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok.

    Attributes once started: ``server`` (https://127.0.0.1:PORT),
    ``kubeconfig_path`` (admin kubeconfig), ``admin_token``, ``ca_path``,
    ``workdir`` (temp dir holding data, certs and ``logs/<component>.log``).
    """

    def __init__(
        self,
        *,
        build: bool = True,
        workdir: str | os.PathLike[str] | None = None,
        keep_workdir: bool | None = None,
        start_timeout: float = 120.0,
        log_verbosity: int = 1,
    ) -> None:
        self._build = build
        self._workdir_arg = Path(workdir) if workdir is not None else None
        if keep_workdir is None:  # STREAMFORGE_KUBE_KEEP_WORKDIR=1 keeps data and logs for debugging
            keep_workdir = os.environ.get("STREAMFORGE_KUBE_KEEP_WORKDIR", "") not in ("", "0")
        self._keep_workdir = keep_workdir
        self.start_timeout = start_timeout
        self.log_verbosity = log_verbosity
        self.workdir: Path | None = None
        self.bin: Path | None = None
        self._procs: list[_Proc] = []
        self.server = ""
        self.kubeconfig_path = Path()
        self.ca_path = Path()
        self.admin_token = ""
        self.node_name = KWOK_NODE_NAME
        self.startup_seconds: dict[str, float] = {}
        self._tokens: dict[str, str] = {}
        self._api_clients: list[Any] = []

    # ------------------------------------------------------------------ setup

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        if self._procs:
            raise ControlPlaneError("already started")
        self.bin = ensure_binaries(build=self._build)
        t0 = time.monotonic()
        for attempt in (1, 2):
            if self._workdir_arg is not None:
                self._workdir_arg.mkdir(parents=True, exist_ok=True)
                self.workdir = Path(tempfile.mkdtemp(prefix="kube-", dir=self._workdir_arg))
            else:
                self.workdir = Path(tempfile.mkdtemp(prefix="streamforge-kube-"))
            (self.workdir / "logs").mkdir()
            try:
                self._start_all(t0)
                break
            except ControlPlaneError:
                # A free port picked by free_port() may be taken by someone else
                # before the component binds it: start over once in that case.
                port_clash = any(
                    "address already in use" in p.log_path.read_text(errors="replace")
                    for p in self._procs
                    if p.log_path.exists()
                )
                self.stop()
                if attempt == 2 or not port_clash:
                    raise
            except BaseException:
                self.stop()
                raise
        self.startup_seconds["total"] = round(time.monotonic() - t0, 2)
        return self

    def _start_all(self, t0: float) -> None:
        assert self.workdir is not None
        w = self.workdir
        self._gen_pki()

        # --- etcd
        etcd_port = free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                "--name=test",
                f"--data-dir={w / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                "--listen-peer-urls=http://127.0.0.1:0",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=test=http://127.0.0.1:2380",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: self._http_ok(f"{etcd_url}/health", expect=b'"true"'))
        self.startup_seconds["etcd"] = round(time.monotonic() - t0, 2)

        # --- kube-apiserver (flags modelled on controller-runtime's envtest)
        api_port = free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={w / 'pki' / 'apiserver-generated'}",
                f"--tls-cert-file={w / 'pki' / 'serving.crt'}",
                f"--tls-private-key-file={w / 'pki' / 'serving.key'}",
                f"--client-ca-file={w / 'pki' / 'ca.crt'}",
                f"--token-auth-file={w / 'pki' / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={w / 'pki' / 'sa.pub'}",
                f"--service-account-signing-key-file={w / 'pki' / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # The lease reconciler of the "kubernetes" Service endpoints refuses a
                # loopback advertise address (1.37); nothing in-cluster needs them.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
                f"--v={self.log_verbosity}",
            ],
        )
        self._wait("kube-apiserver", lambda: self._api_get_ok("/readyz"))
        self.startup_seconds["kube-apiserver"] = round(time.monotonic() - t0, 2)

        # kubeconfigs: admin (for tests) and one per component identity.
        self.kubeconfig_path = w / "admin.kubeconfig"
        self._write_kubeconfig(self.kubeconfig_path, "admin", self.admin_token)
        for comp in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self._write_kubeconfig(w / f"{comp}.kubeconfig", comp, self._tokens[comp])

        # --- kube-controller-manager
        # No --authentication/authorization-kubeconfig for kcm and scheduler: their own
        # HTTPS port only serves /healthz here (always allowed).
        kcm_port = free_port()
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={w / 'kube-controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={w / 'pki' / 'kcm-generated'}",
                "--leader-elect=false",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={w / 'pki' / 'sa.key'}",
                f"--root-ca-file={w / 'pki' / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--concurrent-job-syncs=5",
                "--concurrent-gc-syncs=10",
                f"--v={self.log_verbosity}",
            ],
        )

        # --- kube-scheduler
        sched_port = free_port()
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={w / 'kube-scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={w / 'pki' / 'scheduler-generated'}",
                "--leader-elect=false",
                f"--v={self.log_verbosity}",
            ],
        )

        # --- kwok, managing the one node created below
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={w / 'kwok.kubeconfig'}",
                f"--config={KWOK_STAGES}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-lease-duration-seconds=40",
                "--node-ip=127.0.0.1",
                "--cidr=10.244.0.0/16",
            ],
        )

        self._wait(
            "kube-controller-manager",
            lambda: self._http_ok(f"https://127.0.0.1:{kcm_port}/healthz", expect=b"ok"),
        )
        self._wait(
            "kube-scheduler",
            lambda: self._http_ok(f"https://127.0.0.1:{sched_port}/healthz", expect=b"ok"),
        )
        self._create_kwok_node()
        self._wait("kwok", self._node_ready, what=f"node {self.node_name} Ready, untainted")
        self.startup_seconds["kwok-node-ready"] = round(time.monotonic() - t0, 2)
        self._wait("kube-apiserver", lambda: self._api_get_ok("/api/v1/namespaces/default"))
        self._wait(
            "kube-controller-manager",
            lambda: self._api_get_ok("/api/v1/namespaces/default/serviceaccounts/default"),
            what="ServiceAccount default/default",
        )

    def _gen_pki(self) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        pki.mkdir()
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "7",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=streamforge-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=pki,
        )  # fmt: skip
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-keyout", "serving.key", "-out", "serving.csr", "-subj", "/CN=kube-apiserver",
            cwd=pki,
        )  # fmt: skip
        (pki / "serving.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local\n"
        )
        _openssl(
            "x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "7", "-sha256", "-extfile", "serving.ext",
            "-out", "serving.crt",
            cwd=pki,
        )  # fmt: skip
        # Service-account token signing key pair (TokenRequest, SA tokens).
        _openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "sa.key",
            cwd=pki,
        )  # fmt: skip
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
        self.ca_path = pki / "ca.crt"

        # Static tokens: token,user,uid,"groups"
        self._tokens = {
            "admin": os.urandom(24).hex(),
            "kube-controller-manager": os.urandom(24).hex(),
            "kube-scheduler": os.urandom(24).hex(),
            "kwok": os.urandom(24).hex(),
        }
        self.admin_token = self._tokens["admin"]
        (pki / "tokens.csv").write_text(
            f'{self._tokens["admin"]},admin,admin-uid,"system:masters"\n'
            f"{self._tokens['kube-controller-manager']},system:kube-controller-manager,"
            "kcm-uid\n"
            f"{self._tokens['kube-scheduler']},system:kube-scheduler,scheduler-uid\n"
            # kwok plays every kubelet (node status, leases, pod status, deletes).
            f'{self._tokens["kwok"]},kwok,kwok-uid,"system:masters"\n'
        )

    def _write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "streamforge-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.ca_path),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": f"{user}@streamforge-test",
                    "context": {"cluster": "streamforge-test", "user": user},
                }
            ],
            "current-context": f"{user}@streamforge-test",
        }
        path.write_text(json.dumps(cfg, indent=2) + "\n")
        path.chmod(0o600)

    def _create_kwok_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "annotations": {
                    "kwok.x-k8s.io/node": "fake",
                    "node.alpha.kubernetes.io/ttl": "0",
                },
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node-role.kubernetes.io/agent": "",
                },
            },
            "spec": {},
        }
        status, body = self._api_request("POST", "/api/v1/nodes", node)
        if status not in (200, 201, 409):
            raise ControlPlaneError(f"creating node {self.node_name}: HTTP {status}: {body!r}")

    # --------------------------------------------------------------- process

    def _spawn(self, name: str, args: list[str]) -> None:
        assert self.bin is not None and self.workdir is not None
        log_path = self.workdir / "logs" / f"{name}.log"
        proc = _Proc(name=name, args=[str(self.bin / name), *args], log_path=log_path)
        proc.log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        proc.log_file.write(("$ " + " ".join(proc.args) + "\n").encode())
        proc.log_file.flush()
        proc.popen = subprocess.Popen(
            proc.args,
            stdin=subprocess.DEVNULL,
            stdout=proc.log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        self._procs.append(proc)

    def _wait(self, name: str, check: Callable[[], bool], what: str = "ready") -> None:
        deadline = time.monotonic() + self.start_timeout
        last_exc: BaseException | None = None
        while time.monotonic() < deadline:
            for p in self._procs:
                if not p.alive():
                    code = p.popen.returncode if p.popen else None
                    raise ControlPlaneError(
                        f"{p.name} exited with code {code} while waiting for {name} "
                        f"({what}); last lines of {p.log_path}:\n{_tail(p.log_path)}"
                    )
            try:
                if check():
                    return
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last_exc = e
            time.sleep(0.2)
        log = self.workdir / "logs" / f"{name}.log" if self.workdir else None
        detail = f"last error: {last_exc!r}\n" if last_exc else ""
        raise ControlPlaneError(
            f"timed out after {self.start_timeout:.0f}s waiting for {name} ({what}); {detail}"
            + (f"last lines of {log}:\n{_tail(log)}" if log else "")
        )

    def stop(self) -> None:
        """Terminate all processes (reverse start order) and remove the workdir."""
        for client in self._api_clients:
            with contextlib.suppress(Exception):
                client.close()
        self._api_clients.clear()
        # One at a time, in reverse start order: the apiserver shuts down cleanly
        # only while etcd is still up.
        for p in reversed(self._procs):
            if p.popen is not None:
                if p.alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.popen.pid, signal.SIGTERM)
                try:
                    p.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.popen.pid, signal.SIGKILL)
                    p.popen.wait(timeout=10)
            if p.log_file is not None:
                p.log_file.close()
        self._procs.clear()
        if self.workdir is not None and not self._keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if not self._keep_workdir:
            self.workdir = None

    def log_path(self, component: str) -> Path:
        assert self.workdir is not None
        return self.workdir / "logs" / f"{component}.log"

    def logs_tail(self, lines: int = 40) -> str:
        """Last lines of every component log (for assertion messages)."""
        parts = []
        for p in self._procs:
            parts.append(f"===== {p.name} ({p.log_path}) =====\n{_tail(p.log_path, lines)}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        for p in self._procs:
            if not p.alive():
                code = p.popen.returncode if p.popen else None
                raise ControlPlaneError(
                    f"{p.name} is not running (exit {code}); last lines of {p.log_path}:\n{_tail(p.log_path)}"
                )

    # ------------------------------------------------------------------ HTTP

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def _api_request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._ssl_context()) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read()

    def _api_get_ok(self, path: str) -> bool:
        status, _ = self._api_request("GET", path)
        return status == 200

    @staticmethod
    def _http_ok(url: str, expect: bytes) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # components' own self-signed serving certs
        try:
            with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                return r.status == 200 and expect in r.read()
        except (urllib.error.URLError, OSError):
            return False

    def _node_ready(self) -> bool:
        status, body = self._api_request("GET", f"/api/v1/nodes/{self.node_name}")
        if status != 200:
            return False
        node = json.loads(body)
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions", []) or []
        )
        # Schedulable too: the not-ready taint is gone (node-lifecycle-controller).
        return ready and not node.get("spec", {}).get("taints")

    # ------------------------------------------------------------ for tests

    def api_client(self, token: str | None = None) -> Any:
        """A kubernetes.client.ApiClient for this cluster, authenticated with
        ``token`` (default: the admin token, group system:masters).
        The client is closed by stop()."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.server
        cfg.ssl_ca_cert = str(self.ca_path)
        cfg.verify_ssl = True
        cfg.api_key = {"BearerToken": token or self.admin_token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        api = client.ApiClient(configuration=cfg)
        self._api_clients.append(api)
        return api

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        expiration_seconds: int = 3600,
        create: bool = True,
    ) -> str:
        """A bound token for ServiceAccount ``namespace/name`` (TokenRequest
        API). With ``create`` (default) the ServiceAccount is created if it
        does not exist. Use it with ``api_client(token=...)`` to act as that
        ServiceAccount, e.g. to prove RBAC rules."""
        path_sa = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        if create:
            status, body = self._api_request(
                "POST",
                path_sa,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            )
            if status not in (201, 409):
                raise ControlPlaneError(f"creating ServiceAccount {namespace}/{name}: {body!r}")
        status, body = self._api_request(
            "POST",
            f"{path_sa}/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        if status != 201:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name} failed: HTTP {status}: {body!r}")
        return str(json.loads(body)["status"]["token"])


def main() -> None:
    """Start a control plane and keep it running: python -m tests.infra.kube"""
    with ControlPlane() as cp:
        print(f"server:     {cp.server}")
        print(f"kubeconfig: {cp.kubeconfig_path}")
        print(f"logs:       {cp.workdir / 'logs' if cp.workdir else '?'}")
        print(f"started in: {cp.startup_seconds}")
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
                cp.check_alive()


def wait_for(cp: ControlPlane, what: str, fn: Callable[[], T | None], timeout: float = 60.0,
             interval: float = 0.2, log_lines: int = 40) -> T:
    """Poll ``fn`` until it returns something truthy; fail with the component logs."""
    import pytest

    try:
        return wait_until(what, fn, timeout, interval)
    except TimedOut as e:
        cp.check_alive()
        pytest.fail(f"{e}\n{cp.logs_tail(log_lines)}")


if __name__ == "__main__":
    main()
