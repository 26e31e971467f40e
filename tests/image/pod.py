"""The image run by podman the way the kubelet runs a revision of a Knative Service.

Everything comes from the manifests users apply: the container's securityContext, env,
envFrom (the ConfigMap of eventing/config.yaml), volumeMounts, probes and memory limit from
eventing/services.yaml, the ServiceAccount token mounted as automountServiceAccountToken does.
What a cluster provides and a test must supply: Secret values, the addresses of Kafka, ArangoDB
and the API server (ConfigMap keys a site edits anyway), and PORT (Knative sets it to the
containerPort; here every container shares the host's network, so each gets a free port).

A securityContext key this module does not know fails the run: a new setting in
services.yaml must be mapped here, not silently dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tests.infra.children import free_port
from tests.servers import ROOT, http_call

EVENTING = ROOT / "eventing"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# This sandbox only: podman's default rlimits are above what the container may set.
SANDBOX_FLAGS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"]


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EVENTING / name).read_text()) if d]


def service(component: str) -> dict[str, Any]:
    """The Knative Service of services.yaml that runs ``component`` (start, stop, ...)."""
    for doc in documents("services.yaml"):
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") == component:
            return doc
    raise KeyError(f"no Service for {component} in eventing/services.yaml")


def config_map(name: str) -> dict[str, str]:
    for doc in documents("config.yaml"):
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == name:
            return dict(doc["data"])
    raise KeyError(f"no ConfigMap {name} in eventing/config.yaml")


def security_flags(ctx: dict[str, Any]) -> list[str]:
    """podman flags for a container securityContext (pod defaults are not used here)."""
    flags: list[str] = []
    known = {"allowPrivilegeEscalation", "runAsNonRoot", "readOnlyRootFilesystem", "capabilities",
             "seccompProfile", "runAsUser", "runAsGroup"}
    unknown = set(ctx) - known
    assert not unknown, f"securityContext keys not mapped to podman: {sorted(unknown)}"
    if ctx.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if ctx.get("readOnlyRootFilesystem"):
        # --read-only alone would mount a tmpfs on /tmp, /var/tmp and /run: Kubernetes doesn't
        flags += ["--read-only", "--read-only-tmpfs=false"]
    for cap in ctx.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    for cap in ctx.get("capabilities", {}).get("add", []):
        flags += ["--cap-add", cap]
    seccomp = ctx.get("seccompProfile", {}).get("type", "RuntimeDefault")
    assert seccomp == "RuntimeDefault", f"seccompProfile {seccomp} not mapped"  # podman's default profile
    if "runAsUser" in ctx:
        flags += ["--user", f"{ctx['runAsUser']}:{ctx.get('runAsGroup', ctx['runAsUser'])}"]
    return flags


def image_user(image: str) -> str:
    out = subprocess.run(["podman", "image", "inspect", "--format", "{{.Config.User}}", image],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


@dataclass
class Cluster:
    """What the cluster would provide: Secret values, the API server, site addresses."""

    secrets: dict[str, dict[str, str]]
    config_overrides: dict[str, str]
    work: Path
    api_server: tuple[str, int] | None = None  # (host, port) for KUBERNETES_SERVICE_*
    tokens: dict[str, str] = field(default_factory=dict)  # ServiceAccount name -> token
    api_ca: Path | None = None
    namespace: str = "streamforge"


class Pod:
    """One container of a Knative Service's template, run with podman."""

    def __init__(self, image: str, component: str, cluster: Cluster, *, read_only: bool = True,
                 function: str | None = None) -> None:
        """``component``'s Service from services.yaml; ``function`` sets QM_FUNCTION instead of
        the Service's own (``all``: the all-in-one that func.yaml deploys, in that template)."""
        self.svc = service(component)
        spec = self.svc["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        self.spec = spec
        self.image, self.cluster, self.component = image, cluster, component
        self.read_only = read_only
        self.function = function
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = f"qm-{function or component}-{uuid.uuid4().hex[:8]}"
        self.dir = cluster.work / self.name
        self.dir.mkdir(parents=True)
        self.volume_dirs: dict[str, Path] = {}  # mountPath -> host directory
        self.started_at = 0.0

    # -- what the kubelet would do -----------------------------------------------------------
    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for src in self.container.get("envFrom", []):
            ref = src["configMapRef"]["name"]
            env.update(config_map(ref))
            env.update(self.cluster.config_overrides)
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                value = self.cluster.secrets.get(ref["name"], {}).get(ref["key"])
                assert value is not None or ref.get("optional"), f"missing Secret key {ref}"
                if value is not None:
                    env[var["name"]] = value
        if self.cluster.api_server:
            host, port = self.cluster.api_server
            env.update(KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=str(port))
        env["PORT"] = str(self.port)
        if self.function:
            env["QM_FUNCTION"] = self.function
        return env

    def _volume_flags(self) -> list[str]:
        flags: list[str] = []
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        for mount in self.container.get("volumeMounts", []):
            vol = volumes[mount["name"]]
            host = self.dir / "volumes" / mount["name"]
            host.mkdir(parents=True)
            if "emptyDir" in vol:
                host.chmod(0o1777)  # an emptyDir is world-writable
                self.volume_dirs[mount["mountPath"]] = host
            elif "secret" in vol:
                values = self.cluster.secrets.get(vol["secret"]["secretName"], {})
                for item in vol["secret"].get("items", [{"key": k, "path": k} for k in values]):
                    if item["key"] in values:
                        (host / item["path"]).write_text(values[item["key"]])
                    else:
                        assert vol["secret"].get("optional"), f"Secret key {item['key']} missing"
            else:
                raise AssertionError(f"volume kind not mapped: {vol}")
            ro = ":ro" if mount.get("readOnly") else ""
            flags += ["-v", f"{host}:{mount['mountPath']}{ro}"]
        account = self.spec.get("serviceAccountName")
        if self.spec.get("automountServiceAccountToken", True) and account in self.cluster.tokens:
            sa = self.dir / "serviceaccount"
            sa.mkdir()
            (sa / "token").write_text(self.cluster.tokens[account])
            (sa / "namespace").write_text(self.cluster.namespace)
            if self.cluster.api_ca:
                shutil.copy(self.cluster.api_ca, sa / "ca.crt")
            flags += ["-v", f"{sa}:{SA_DIR}:ro"]
        return flags

    def command(self) -> list[str]:
        ctx = dict(self.container.get("securityContext", {}))
        if not self.read_only:
            ctx.pop("readOnlyRootFilesystem", None)
        if ctx.get("runAsNonRoot") and "runAsUser" not in ctx:
            # the kubelet refuses a non-numeric or root USER when it must verify runAsNonRoot
            user = image_user(self.image).split(":")[0]
            assert user.isdigit() and int(user) != 0, f"runAsNonRoot, but the image's USER is {user!r}"
        ctx.pop("runAsNonRoot", None)
        flags = ["podman", "run", "-d", "--name", self.name, "--network", "host", "--image-volume", "ignore",
                 *SANDBOX_FLAGS, *security_flags(ctx), *self._volume_flags()]
        limit = self.container.get("resources", {}).get("limits", {}).get("memory")
        if limit:
            flags += ["--memory", limit.replace("Mi", "m").replace("Gi", "g")]
        env, env_file = self.env(), self.dir / "env"  # secrets in a file, not on a command line
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items() if "\n" not in v))
        # a multi-line value (JOB_IMAGES) can't be written to an env file
        flags += [arg for k, v in env.items() if "\n" in v for arg in ("-e", f"{k}={v}")]
        return [*flags, "--env-file", str(env_file), self.image]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Pod:
        self.started_at = time.monotonic()
        subprocess.run(self.command(), check=True, capture_output=True, text=True)
        return self

    def probe(self, kind: str) -> dict[str, Any]:
        return self.container[kind]

    def wait_probe(self, kind: str) -> float:
        """Poll the probe as the kubelet does (its path, period and failure threshold, at least
        30 s for slow machines); seconds since start when it first answered 200."""
        probe = self.probe(kind)
        path = probe["httpGet"]["path"]
        budget = max(30.0, probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))
        deadline, last = self.started_at + budget, None
        while time.monotonic() < deadline:
            assert self.running(), f"{self.name} exited:\n{self.logs()}"
            try:
                status, last = http_call(self.url + path, "GET", timeout=probe.get("timeoutSeconds", 1))
                if status == 200:
                    return time.monotonic() - self.started_at
            except OSError as e:
                last = e
            time.sleep(0.05)
        with contextlib.suppress(OSError):  # what it answers given all the time it wants
            last = http_call(self.url + path, "GET", timeout=60)
        raise AssertionError(f"{self.name}: {kind} {path} not 200 within {budget}s ({last}):\n{self.logs()}")

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = "", **kw: Any
             ) -> tuple[int, Any]:
        """A request with the operate token of the tokens Secret (`token=None`: with none)."""
        if token == "":
            token = self.cluster.secrets.get("queue-manager-tokens", {}).get("operate", "").split(",")[0]
        if token:
            kw["headers"] = {"Authorization": f"Bearer {token}", **(kw.get("headers") or {})}
        return http_call(self.url + path, method, body, **kw)

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def inspect(self, fmt: str) -> str:
        out = subprocess.run(["podman", "inspect", "--format", fmt, self.name], capture_output=True, text=True)
        return out.stdout.strip()

    def logs(self, tail: int | None = 4000) -> str:
        """The container's output (stdout and stderr), its last ``tail`` characters or all."""
        out = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True)
        text = out.stdout + out.stderr
        return text if tail is None else text[-tail:]

    def signal(self, sig: str = "TERM") -> None:
        subprocess.run(["podman", "kill", "--signal", sig, self.name], check=True, capture_output=True)

    def wait(self, timeout: float = 60) -> int:
        out = subprocess.run(["podman", "wait", self.name], capture_output=True, text=True, timeout=timeout)
        return int(out.stdout.strip())

    def diff(self) -> list[str]:
        out = subprocess.run(["podman", "diff", self.name], check=True, capture_output=True, text=True)
        return out.stdout.split("\n")

    def runtime_paths(self) -> set[str]:
        """What the runtime itself adds to a container's filesystem: its own files and every
        mount point with its parents (/var/run is /run in a merged-/usr image)."""
        paths = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv"}
        mounts = [*self.volume_dirs, *(m["mountPath"] for m in self.container.get("volumeMounts", [])), SA_DIR]
        for mount in mounts:
            path = PurePosixPath(mount.replace("/var/run/", "/run/", 1))
            paths.update(str(p) for p in (path, *path.parents) if str(p) != "/")
        return paths

    def remove(self) -> None:
        subprocess.run(["podman", "rm", "-f", "-t", "0", self.name], capture_output=True)

    def __enter__(self) -> Pod:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if os.environ.get("STREAMFORGE_KEEP_CONTAINERS"):
            return
        self.remove()


def job_env(job: Any, cluster: Cluster, files: Path) -> dict[str, str]:
    """A Job's container env as the kubelet resolves it: Secret keys looked up, and paths under
    its Secret volume mounts moved to ``files``, where those keys are written."""
    pod = job.spec.template.spec
    (container,) = pod.containers
    volumes = {v.name: v for v in pod.volumes or []}
    moved: dict[str, str] = {}
    for mount in container.volume_mounts or []:
        secret = volumes[mount.name].secret
        target = files / mount.name
        target.mkdir(parents=True)
        for item in secret.items or []:
            if item.key in cluster.secrets.get(secret.secret_name, {}):
                (target / item.path).write_text(cluster.secrets[secret.secret_name][item.key])
        moved[mount.mount_path] = str(target)
    env: dict[str, str] = {}
    for var in container.env:
        if var.value_from is not None:
            ref = var.value_from.secret_key_ref
            env[var.name] = cluster.secrets[ref.name][ref.key]
        else:
            env[var.name] = var.value or ""
        for mount_path, local in moved.items():
            env[var.name] = env[var.name].replace(mount_path, local)
    return env
