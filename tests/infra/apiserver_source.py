"""Knative's ApiServerSource receive adapter (knative.dev/eventing v0.50.0) as a local process.

The binary is built by ``tests/infra/dataplane/build.sh adapter`` (part of ``make servers``) into
``${XDG_CACHE_HOME:-~/.cache}/streamforge-qm/dataplane/bin/apiserver_receive_adapter``.

Its environment is rendered from an ApiServerSource manifest the way the eventing controller
renders the adapter's Deployment: ``makeEnv`` in
pkg/reconciler/apiserversource/resources/receive_adapter.go, with the namespaces and the
fail-fast flag resolved as pkg/reconciler/apiserversource/apiserversource.go does. Two things
are swapped for local ones, and only those:

- ``K_SINK``: a local URL instead of the address the sink reference resolves to;
- the API server: a kubeconfig (``KUBECONFIG``) holding a token of the ServiceAccount the
  manifest names (``spec.serviceAccountName``), where a pod would use that account's mounted
  token and the in-cluster address.

Knative's own ConfigMaps are rendered as the controller renders them (``ToEnvVars`` in
pkg/reconciler/source/config_watcher.go) from upstream's defaults
(config/core/configmaps/logging.yaml, observability.yaml), with two operator settings of
config-logging changed so that a test can see what the adapter does: the zap level is ``debug``
(one log line per event delivered or refused) and ``klog-verbosity`` is 2 (client-go logs
"Caches populated" once a watch is established: the adapter sends nothing for objects that
exist before that, so ``start`` waits for it).

Ports the adapter binds: its probe server is hard-coded to ``:8080`` on every interface; only
one process on the machine gets it, the others log the failure and carry on (nothing here uses
the probes). pprof moves with ``PROFILING_PORT``: each instance gets a free port of its own.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.infra.adapter_process import AdapterError, AdapterProcess
from tests.infra.children import free_port

INFRA_DIR = Path(__file__).resolve().parent
BUILD_SCRIPT = INFRA_DIR / "dataplane" / "build.sh"
BINARY = "apiserver_receive_adapter"

SYSTEM_NAMESPACE = "knative-eventing"  # system.Namespace() of the eventing controller
METRICS_DOMAIN = "knative.dev/eventing"
SKIP_PERMISSIONS = "features.knative.dev/apiserversource-skip-permissions-check"

# config-logging's zap-logger-config as upstream ships it, level raised to debug (see above).
ZAP_CONFIG = {
    "level": "debug",
    "development": False,
    "outputPaths": ["stdout"],
    "errorOutputPaths": ["stderr"],
    "encoding": "json",
    "encoderConfig": {
        "timeKey": "ts", "levelKey": "level", "nameKey": "logger", "callerKey": "caller",
        "messageKey": "msg", "stacktraceKey": "stacktrace", "lineEnding": "", "levelEncoder": "",
        "timeEncoder": "iso8601", "durationEncoder": "", "callerEncoder": "",
    },
}
KLOG_VERBOSITY = "2"
# config-observability as upstream ships it (only an _example): observability.DefaultConfig().
OBSERVABILITY = {
    "tracing": {"protocol": "none"},
    "metrics": {"protocol": "none"},
    "runtime": {"profiling": "disabled", "exportInterval": 15_000_000_000},
    "enableSinkEventErrorReporting": False,
}




@functools.lru_cache(maxsize=1)
def binary() -> Path:
    """The adapter binary, built first if it is missing or outdated (build.sh is a no-op then).

    :raises AdapterError: the build failed.
    """
    res = subprocess.run(["bash", str(BUILD_SCRIPT), "adapter"], capture_output=True, text=True)
    if res.returncode != 0:
        raise AdapterError(f"{BUILD_SCRIPT} adapter failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip()) / "bin" / BINARY
    if not os.access(path, os.X_OK):
        raise AdapterError(f"{path} missing after {BUILD_SCRIPT} adapter")
    return path


# -------------------------------------------------------------------------------------------
# What the controller renders from the manifest.
# -------------------------------------------------------------------------------------------


def load_source(path: Path, name: str | None = None) -> dict[str, Any]:
    """The ApiServerSource document of a manifest file (the one called ``name``, if given)."""
    import yaml

    with open(path) as f:
        found = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "ApiServerSource"
                 and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise AdapterError(f"{path}: expected one ApiServerSource{f' {name}' if name else ''}, found {len(found)}")
    return found[0]


def service_account(source: dict[str, Any]) -> str:
    """The account the adapter runs as (``SetDefaults``: "default" when unset)."""
    return str((source.get("spec") or {}).get("serviceAccountName") or "default")


def guess_resource(kind: str) -> str:
    """``meta.UnsafeGuessKindToResource``: the plural resource name of a kind."""
    singular = kind.lower()
    if not singular or singular.endswith("endpoints"):
        return singular
    if singular.endswith("s"):
        return singular + "es"
    if singular.endswith("y"):
        return singular[:-1] + "ies"
    return singular + "s"


def label_selector(selector: dict[str, Any] | None) -> str:
    """``metav1.LabelSelectorAsSelector(selector).String()``: requirements sorted by key."""
    if not selector:
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], sorted(expr.get("values") or [])
        text = {"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op)
        if text is None:
            raise AdapterError(f"{op!r} is not a valid label selector operator")
        requirements.append((key, text))
    return ",".join(text for _, text in sorted(requirements, key=lambda r: r[0]))


def namespaces_of(source: dict[str, Any], namespace: str, list_namespaces: Any = None) -> tuple[list[str], bool]:
    """(namespaces, allNamespaces) as ``namespacesFromSelector`` and ``isEmptySelector`` give them.

    ``list_namespaces(label_selector)`` lists the cluster's namespaces; only needed when the
    source has a ``namespaceSelector``."""
    selector = (source.get("spec") or {}).get("namespaceSelector")
    if selector is None:
        return [namespace], False
    if list_namespaces is None:
        raise AdapterError("the source has a namespaceSelector: pass list_namespaces")
    every = not (selector.get("matchLabels") or selector.get("matchExpressions"))
    return sorted(list_namespaces(label_selector(selector))), every


def source_config(source: dict[str, Any], namespaces: list[str], all_namespaces: bool = False) -> str:
    """``K_SOURCE_CONFIG``: the adapter's ``apiserver.Config`` as ``makeEnv`` marshals it."""
    spec = source.get("spec") or {}
    resources = []
    for r in spec.get("resources") or []:
        group, _, version = r["apiVersion"].rpartition("/")
        watch: dict[str, Any] = {"gvr": {"Group": group, "Version": version, "Resource": guess_resource(r["kind"])}}
        selector = label_selector(r.get("selector"))
        if selector:
            watch["selector"] = selector
        resources.append(watch)
    config: dict[str, Any] = {"namespaces": list(namespaces), "allNamespaces": all_namespaces,
                              "resources": resources}
    if spec.get("owner"):
        config["owner"] = {"apiVersion": spec["owner"]["apiVersion"], "kind": spec["owner"]["kind"]}
    config["mode"] = spec.get("mode") or "Reference"  # SetDefaults
    if spec.get("filters"):
        config["filters"] = spec["filters"]
    if ((source.get("metadata") or {}).get("annotations") or {}).get(SKIP_PERMISSIONS) == "true":
        config["failFast"] = True
    return json.dumps(config, separators=(",", ":"))


def adapter_env(source: dict[str, Any], *, namespace: str, sink: str, namespaces: list[str] | None = None,
                all_namespaces: bool = False) -> dict[str, str]:
    """The receive adapter's environment as the controller renders it (``makeEnv``)."""
    env = {
        "K_SINK": sink,
        "K_SOURCE_CONFIG": source_config(source, namespaces or [namespace], all_namespaces),
        "SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
        "NAMESPACE": namespace,  # fieldRef metadata.namespace
        "NAME": source["metadata"]["name"],
        "METRICS_DOMAIN": METRICS_DOMAIN,
        # ToEnvVars: config-logging and config-observability
        "K_LOGGING_CONFIG": json.dumps({"zap-logger-config": json.dumps(ZAP_CONFIG, indent=2)}),
        "K_KLOG_VERBOSITY": KLOG_VERBOSITY,
        "K_OBSERVABILITY_CONFIG": json.dumps(OBSERVABILITY, separators=(",", ":")),
    }
    overrides = (source.get("spec") or {}).get("ceOverrides")
    if overrides is not None:
        env["K_CE_OVERRIDES"] = json.dumps(overrides, separators=(",", ":"))
    return env


def reflector_names(source_config_json: str) -> list[str]:
    """The name of each watch the adapter starts (``buildReflectorName``; namespaced resources)."""
    config = json.loads(source_config_json)
    names = []
    for r in config["resources"]:
        gvr = r["gvr"]
        base = f"{gvr['Group']}/{gvr['Version']}, Resource={gvr['Resource']}"
        if config["allNamespaces"]:
            names.append(base)
        else:
            names.extend(f"{base}/{ns}" for ns in config["namespaces"])
    return names


def write_kubeconfig(path: Path, *, server: str, ca_path: Path, token: str, user: str) -> Path:
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": {"server": server, "certificate-authority": str(ca_path)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "cluster", "user": user}}],
        "current-context": user,
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(cfg))
    return path


# -------------------------------------------------------------------------------------------
# The process.
# -------------------------------------------------------------------------------------------


class ApiServerSourceAdapter(AdapterProcess):
    """One receive adapter for ``source`` (an ApiServerSource document) in ``namespace``,
    delivering to ``sink`` and talking to the API server as the token's account.

    After ``start()`` every watch is established: a change made from then on is delivered.
    ``sent()`` and ``refused()`` read what the adapter logged about each event."""

    def __init__(self, source: dict[str, Any], *, namespace: str, sink: str, server: str, ca_path: Path,
                 token: str, workdir: Path, namespaces: list[str] | None = None,
                 all_namespaces: bool = False) -> None:
        self.source = source
        self.namespace = namespace
        self.sink = sink
        self.profiling_port = free_port()
        tag = f"{source['metadata']['name']}-{namespace}-{self.profiling_port}"
        super().__init__(workdir, f"apiserver-adapter-{tag}.log")
        self.env = adapter_env(source, namespace=namespace, sink=sink, namespaces=namespaces,
                               all_namespaces=all_namespaces)
        self.kubeconfig = write_kubeconfig(self.workdir / f"{tag}.kubeconfig", server=server, ca_path=ca_path,
                                           token=token, user=service_account(source))

    def start(self, timeout: float = 60.0) -> ApiServerSourceAdapter:
        env = {**self.env, "KUBECONFIG": str(self.kubeconfig), "PROFILING_PORT": str(self.profiling_port)}
        want = set(reflector_names(self.env["K_SOURCE_CONFIG"]))
        self.spawn(binary(), env, lambda: want <= set(self.watching()), timeout,
                   f"establish its watches {sorted(want)}")
        return self

    def watching(self) -> list[str]:
        """The watches established so far (client-go's "Caches populated", klog text format)."""
        names = []
        for line in self.lines():
            if "Caches populated" in line and 'reflector="' in line:
                names.append(line.split('reflector="', 1)[1].split('"', 1)[0])
        return names

    def sent(self) -> list[str]:
        """The subject of every event the sink acknowledged, in order."""
        return [r["msg"].rsplit("subject: ", 1)[-1] for r in self.records()
                if str(r.get("msg", "")).startswith("cloudevent sent id: ")]

    def refused(self) -> list[dict[str, Any]]:
        """Events the adapter gave up on (the sink's answer or transport error in ``error``)."""
        return [r for r in self.records() if r.get("msg") == "failed to send cloudevent"]

