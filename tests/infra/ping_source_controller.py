"""What the eventing controller (knative.dev/eventing v0.50.0 pkg/reconciler/pingsource) and an
operator installing eventing do for the PingSource adapter, done here by hand: the CRD and the
adapter's namespace, account, RBAC and ConfigMaps from the module's config/, the adapter's
environment, and a ready status. See tests/infra/ping_source.py for what each part stands for."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.infra.apiserver_source import AdapterError

MODULE = "knative.dev/eventing@v0.50.0"
SYSTEM_NAMESPACE = "knative-eventing"
ACCOUNT = "pingsource-mt-adapter"  # the Deployment's serviceAccountName
COMPONENT = "pingsource-mt-adapter"  # cmd/mtping: its logger's name, its leases' prefix
CONTROLLER_COMPONENT = "pingsource"  # the controller's: leader-election component, log-level key
GROUP, VERSION, PLURAL = "sources.knative.dev", "v1", "pingsources"
EVENT_TYPE = "dev.knative.sources.ping"
DEBUG = {f"loglevel.{COMPONENT}": "debug"}
SYSTEM_FILES = ["config/core/100-namespace.yaml", "config/core/200-pingsource-mt-adapter-serviceaccount.yaml",
                "config/core/roles/pingsource-mt-adapter-clusterrole.yaml"]
CONFIGMAPS = {"config-logging": "logging.yaml", "config-observability": "observability.yaml",
              "config-leader-election": "leader-election.yaml"}


@functools.lru_cache(maxsize=1)
def module_dir() -> Path:
    """The eventing module's source (``go mod download``: a no-op when it is in the cache)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"}
    try:
        res = subprocess.run(["go", "mod", "download", "-json", MODULE], capture_output=True, text=True, env=env)
    except OSError as e:
        raise AdapterError(f"go mod download {MODULE}: {e}") from e
    if res.returncode != 0:
        raise AdapterError(f"go mod download {MODULE} failed:\n{res.stdout[-1000:]}{res.stderr[-1000:]}")
    return Path(json.loads(res.stdout)["Dir"])


def upstream(relpath: str) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all((module_dir() / relpath).read_text()) if d]


def configmaps() -> dict[str, dict[str, str]]:
    """The data of the three ConfigMaps, as installed here (upstream's, plus DEBUG)."""
    data = {name: dict(upstream(f"config/core/configmaps/{file}")[0].get("data") or {})
            for name, file in CONFIGMAPS.items()}
    data["config-logging"].update(DEBUG)
    return data


# -------------------------------------------------------------------------------------------
# What the controller renders.
# -------------------------------------------------------------------------------------------

_UNITS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def go_duration(text: str) -> int:
    """``time.ParseDuration`` (the forms config maps use): nanoseconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise AdapterError(f"not a Go duration: {text!r}")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))


def leader_election_json(data: dict[str, str]) -> str:
    """``LeaderElectionComponentConfigToJSON(GetComponentConfig("pingsource"))`` of the map
    (leaderelection.NewConfigFromMap: 60s/40s/10s and one bucket unless the map says otherwise)."""
    durations = {"LeaseDuration": 60_000_000_000, "RenewDeadline": 40_000_000_000, "RetryPeriod": 10_000_000_000}
    for field, legacy, key in (("LeaseDuration", "leaseDuration", "lease-duration"),
                               ("RenewDeadline", "renewDeadline", "renew-deadline"),
                               ("RetryPeriod", "retryPeriod", "retry-period")):
        for k in (legacy, key):
            if k in data:
                durations[field] = go_duration(data[k])
    prefixes = {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("map-lease-prefix.")}
    config = {"Component": CONTROLLER_COMPONENT, "Buckets": int(data.get("buckets", "1")), **durations,
              "Identity": "", "LeaseNamesPrefixMapping": prefixes or None}
    return json.dumps(config, separators=(",", ":"))


def adapter_env(data: dict[str, dict[str, str]]) -> dict[str, str]:
    """``MakeReceiveAdapterEnvVar`` with the ConfigMaps' ``ToEnvVars``."""
    logging_cm = data["config-logging"]
    zap = logging_cm["zap-logger-config"]
    if f"loglevel.{CONTROLLER_COMPONENT}" in logging_cm:  # overrideLoggingLevel
        zap = json.dumps({**json.loads(zap), "level": logging_cm[f"loglevel.{CONTROLLER_COMPONENT}"]})
    observability = {k: v for k, v in data["config-observability"].items() if k != "_example"}
    if observability:
        raise AdapterError(f"config-observability sets {sorted(observability)}: not rendered here")
    return {
        "NAMESPACE": SYSTEM_NAMESPACE,  # fieldRef metadata.namespace: the adapter's own
        "SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
        "K_LEADER_ELECTION_CONFIG": leader_election_json(
            {k: v for k, v in data["config-leader-election"].items() if k != "_example"}),
        "K_NO_SHUTDOWN_AFTER": "55",  # mtping.GetNoShutDownAfterValue() of the controller
        "K_SINK_TIMEOUT": "-1",  # adapter.GetSinkTimeout() of the controller
        "K_LOGGING_CONFIG": json.dumps({"zap-logger-config": zap}),
        "K_KLOG_VERBOSITY": logging_cm.get("klog-verbosity") or "0",
        # observability.DefaultConfig() as json.Marshal writes it (upstream ships only _example)
        "K_OBSERVABILITY_CONFIG": json.dumps({
            "tracing": {"protocol": "none"}, "metrics": {"protocol": "none"},
            "runtime": {"profiling": "disabled", "exportInterval": 15_000_000_000},
            "enableSinkEventErrorReporting": False}, separators=(",", ":")),
    }


def ready_status(source: dict[str, Any], sink_uri: str) -> dict[str, Any]:
    """The status ReconcileKind leaves on a source whose sink resolved to ``sink_uri``."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = source["metadata"]

    def cond(kind: str, reason: str | None = None) -> dict[str, Any]:
        return {"type": kind, "status": "True", "lastTransitionTime": now, **({"reason": reason} if reason else {})}

    return {
        "observedGeneration": meta["generation"],
        "conditions": [cond("Deployed"), cond("OIDCIdentityCreated", "authentication-oidc feature disabled"),
                       cond("Ready"), cond("SinkProvided")],
        "sinkUri": sink_uri,
        "ceAttributes": [{"type": EVENT_TYPE,
                          "source": f"/apis/v1/namespaces/{meta['namespace']}/pingsources/{meta['name']}"}],
    }


# -------------------------------------------------------------------------------------------
# The cluster side.
# -------------------------------------------------------------------------------------------


def _create(api: Any, doc: dict[str, Any], namespace: str | None = None) -> None:
    """Create ``doc``; one that exists already is left as it is."""
    from kubernetes import utils

    try:
        utils.create_from_dict(api, doc, namespace=namespace)
    except utils.FailToCreateError as e:
        if any(getattr(x, "status", None) != 409 for x in e.api_exceptions):
            raise


def install(api: Any, timeout: float = 30.0) -> None:
    """The CRD (Established), and the adapter's namespace, account, RBAC and ConfigMaps."""
    from kubernetes import client

    [crd] = upstream("config/core/resources/pingsource.yaml")
    _create(api, crd)
    for relpath in SYSTEM_FILES:
        for doc in upstream(relpath):
            _create(api, doc)
    core = client.CoreV1Api(api)
    for name, data in configmaps().items():
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, namespace=SYSTEM_NAMESPACE), data=data)
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_config_map(name, SYSTEM_NAMESPACE)
        core.create_namespaced_config_map(SYSTEM_NAMESPACE, body)
    ext = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: Any = ext.read_custom_resource_definition(crd["metadata"]["name"])
        conds = (found.status and found.status.conditions) or []
        if any(c.type == "Established" and c.status == "True" for c in conds):
            return
        time.sleep(0.1)
    raise AdapterError(f"CRD {crd['metadata']['name']} not Established after {timeout}s")


def mark_ready(api: Any, namespace: str, name: str, sink_uri: str) -> dict[str, Any]:
    """Write the controller's status through the status subresource; the object as stored."""
    from kubernetes import client

    objs = client.CustomObjectsApi(api)
    source: Any = objs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    source["status"] = ready_status(source, sink_uri)
    stored: Any = objs.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, source)
    return dict(stored)
