"""Knative's PingSource adapter (``mtping``, knative.dev/eventing v0.50.0 ./cmd/mtping) as a local
process against the tests' kube-apiserver, and the parts of the eventing controller it relies on.

The binary is built by ``tests/infra/dataplane/build.sh mtping`` into
``${XDG_CACHE_HOME:-~/.cache}/streamforge-qm/dataplane/bin/mtping``. Everything it reads from the
cluster is installed from the same module's config/ as upstream ships it:

- the PingSource CRD (config/core/resources/pingsource.yaml), unchanged. It names a conversion
  webhook (eventing-webhook), which the API server calls only to convert between v1 and v1beta2;
  v1 is the storage version and the only one the adapter and the tests use, so no webhook runs;
- the ``knative-eventing`` namespace, the adapter's ServiceAccount, ClusterRole and binding
  (config/core/100-namespace.yaml, 200-pingsource-mt-adapter-serviceaccount.yaml,
  roles/pingsource-mt-adapter-clusterrole.yaml): the adapter runs with a token of that account;
- config-logging, config-observability and config-leader-election (config/core/configmaps).
  The adapter watches the first two in its namespace (the config watcher fails to start without
  them). One operator setting differs: ``loglevel.pingsource-mt-adapter: debug`` in
  config-logging, so that each delivery is logged ("sending cloudevent id: ...").

What the eventing controller would do is done here by hand (pkg/reconciler/pingsource):

- the adapter's environment is ``resources.MakeReceiveAdapterEnvVar`` (which replaces the
  Deployment's whole env): NAMESPACE and SYSTEM_NAMESPACE, K_LEADER_ELECTION_CONFIG (the
  component "pingsource" of config-leader-election, as JSON), K_NO_SHUTDOWN_AFTER (55),
  K_SINK_TIMEOUT (-1), then ``ToEnvVars`` of config-logging and config-observability;
- once the sink resolves, the PingSource's status (status subresource): ``sinkUri`` (a local URL
  where the controller would put the sink's address, plus the spec's ``uri``), SinkProvided,
  Deployed and OIDCIdentityCreated True (the OIDC feature is off by default), hence Ready, the
  ``ceAttributes`` and ``observedGeneration``. The adapter schedules only a source whose status
  ``IsReady()``. There is no Deployment: the process stands for its one replica.

HA is on, as in the cluster (``adapter.WithHAEnabled``): the process takes the Lease of its one
bucket in knative-eventing before it schedules anything. Ports: the probe server is hard-coded to
``:8080`` (a second process on the machine fails to bind it, logs that and carries on); pprof
moves with ``PROFILING_PORT`` (a free port each); no metrics server runs (protocol "none").
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.infra.adapter_process import AdapterError, AdapterProcess
from tests.infra.apiserver_source import write_kubeconfig
from tests.infra.children import free_port
from tests.infra.ping_source_controller import (  # noqa: F401 - the module's API
    ACCOUNT,
    COMPONENT,
    EVENT_TYPE,
    GROUP,
    PLURAL,
    SYSTEM_NAMESPACE,
    VERSION,
    adapter_env,
    configmaps,
    install,
    mark_ready,
    module_dir,
)

BUILD_SCRIPT = Path(__file__).resolve().parent / "dataplane" / "build.sh"
SENDING = "sending cloudevent id: "  # runner.go cronTick, debug, before each delivery
FINISHED = "Finished sending cloudevent id: "  # and after it, acknowledged or not
FAILED = "failed to send cloudevent result: "  # not acknowledged after the retries


@functools.lru_cache(maxsize=1)
def binary() -> Path:
    """mtping, built first if missing or outdated. :raises AdapterError: the build failed."""
    res = subprocess.run(["bash", str(BUILD_SCRIPT), "mtping"], capture_output=True, text=True)
    if res.returncode != 0:
        raise AdapterError(f"{BUILD_SCRIPT} mtping failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip()) / "bin" / "mtping"
    if not os.access(path, os.X_OK):
        raise AdapterError(f"{path} missing after {BUILD_SCRIPT} mtping")
    return path




class PingSourceAdapter(AdapterProcess):
    """One mtping process, as the ServiceAccount ``pingsource-mt-adapter`` (``token``).

    ``start(key)`` returns once the adapter has scheduled the PingSource ``key``
    ("namespace/name"): it holds the lease and has seen the source Ready. ``sent()``,
    ``finished()`` and ``failed()`` read what it logged about each tick."""

    name = "mtping"

    def __init__(self, *, server: str, ca_path: Path, token: str, workdir: Path) -> None:
        self.profiling_port = free_port()
        super().__init__(workdir, f"mtping-{self.profiling_port}.log")
        self.env = adapter_env(configmaps())
        self.kubeconfig = write_kubeconfig(self.workdir / f"mtping-{self.profiling_port}.kubeconfig",
                                           server=server, ca_path=ca_path, token=token, user=ACCOUNT)

    def start(self, key: str, timeout: float = 60.0) -> PingSourceAdapter:
        env = {**self.env, "KUBECONFIG": str(self.kubeconfig), "PROFILING_PORT": str(self.profiling_port)}
        self.spawn(binary(), env, lambda: key in self.scheduled(), timeout, f"schedule {key}")
        return self

    # -- what it logged ---------------------------------------------------------------------

    def scheduled(self) -> list[str]:
        """The keys of the sources it (re)scheduled (``Update``: "Synchronizing schedule")."""
        return [str(r.get("knative.dev/key")) for r in self.records() if r.get("msg") == "Synchronizing schedule"]

    def sent(self) -> list[dict[str, str]]:
        """Every tick it began to deliver: {ts, id, source, target}, in order."""
        out = []
        for r in self.records():
            msg = str(r.get("msg", ""))
            if msg.startswith(SENDING):
                event_id, source, target = (p.split(": ", 1)[-1] for p in msg[len("sending cloudevent "):].split(", "))
                out.append({"ts": str(r.get("ts")), "id": event_id, "source": source, "target": target})
        return out

    def finished(self) -> list[str]:
        return [str(r["msg"])[len(FINISHED):] for r in self.records() if str(r.get("msg", "")).startswith(FINISHED)]

    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if str(r.get("msg", "")).startswith(FAILED)]

