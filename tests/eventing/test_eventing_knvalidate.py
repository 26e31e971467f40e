"""knvalidate over eventing/, the manifests users apply, as they are in the repo.

knvalidate (tests/infra/knative) runs the upstream Knative Serving, Eventing and
eventing-kafka-broker defaulting and validation, i.e. what their admission webhooks do on
create, and decodes every other document strictly (ConfigMap, Secret, Namespace, RBAC,
PrometheusRule); the kustomization's references must exist. Every YAML document of
eventing/ must come out OK: one that knvalidate cannot check is an error there, so a new
object can't land unvalidated. The one file that is not YAML, the Grafana dashboard, is
checked by test_grafana_dashboard.py.

A copy of eventing/, broken on purpose in one place, must fail with a message that names
the file, the object and the field.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.infra.test_knative_tools import BUILD_TIMEOUT, KN_DIR, _build

EVENTING = ROOT / "eventing"
NOT_YAML = {"grafana-dashboard.json": "tests/eventing/test_grafana_dashboard.py"}
KNATIVE_KINDS = {"Service", "Broker", "Trigger", "KafkaSource", "KafkaSink", "ApiServerSource", "PingSource"}
# The Knative objects eventing/ defines (what the functions are reached through).
EXPECTED_KNATIVE = {
    "Service/queue-start", "Service/queue-stop", "Service/queue-telemetry", "Service/queue-status",
    "KafkaSource/queue-control-telemetry",
    "Broker/queue-manager",
    "Trigger/queue-start", "Trigger/queue-stop",
    "KafkaSink/queue-events", "KafkaSink/queue-control-dlq",
    "ApiServerSource/queue-manager-jobs",
    "PingSource/queue-manager-sweep", "PingSource/queue-manager-schedules",
}

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 300)

_OK = re.compile(r"OK (\S+)/(\S+) (\S+)#(\d+)$")
_ERROR = re.compile(r"ERROR (\S+?)(?:#(\d+))?: (.*)$")
_SUMMARY = re.compile(r"knvalidate: (\d+) object\(s\), (\d+) error\(s\), (\d+) warning\(s\)$")


@pytest.fixture(scope="module")
def knvalidate() -> Path:
    return _build(KN_DIR / "build.sh", ["knvalidate"]) / "knvalidate"


def _run(binary: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), str(path)], capture_output=True, text=True, timeout=120)


def _documents(root: Path) -> Counter[tuple[str, str, str]]:
    """(file, kind, name) of every object in the YAML files under root, kustomization aside."""
    found: Counter[tuple[str, str, str]] = Counter()
    for f in sorted(root.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                found[(f.name, doc["kind"], doc["metadata"]["name"])] += 1
    return found


def _summary(stdout: str) -> tuple[int, int, int]:
    [line] = [x for x in stdout.splitlines() if _SUMMARY.match(x)]
    m = _SUMMARY.match(line)
    assert m
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def test_eventing_holds_only_yaml_and_the_dashboard() -> None:
    others = {p.name for p in EVENTING.iterdir() if p.suffix not in (".yaml", ".yml")}
    assert others == set(NOT_YAML), f"files knvalidate does not read: {others - set(NOT_YAML)}"
    assert not [p for p in EVENTING.iterdir() if p.is_dir()], "knvalidate reads subdirectories; list them here"


def test_eventing_manifests_pass_knvalidate(knvalidate: Path) -> None:
    proc = _run(knvalidate, EVENTING)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert not [line for line in out.splitlines() if line.startswith(("ERROR", "WARN", "SKIP"))], out
    ok = Counter()
    for line in out.splitlines():
        m = _OK.match(line)
        if m:
            kind, name, path, _ = m.groups()
            ok[(Path(path).name, kind, name)] += 1
    documents = _documents(EVENTING)
    # every document of every file validated, each once, and nothing else
    assert ok == documents, f"validated {sorted(ok)}\nin eventing/: {sorted(documents)}"
    assert _summary(out) == (sum(documents.values()), 0, 0), out
    assert f"OK kustomization {EVENTING / 'kustomization.yaml'}" in out, out

    knative = {f"{kind}/{name}" for (_, kind, name) in documents if kind in KNATIVE_KINDS}
    assert knative == EXPECTED_KNATIVE
    # Kinds outside the Knative groups are the plain Kubernetes / prometheus-operator ones.
    others = {kind for (_, kind, _) in documents} - KNATIVE_KINDS
    assert others == {"ConfigMap", "Secret", "Namespace", "ServiceAccount", "Role", "RoleBinding",
                      "ClusterRole", "ClusterRoleBinding", "PrometheusRule"}, others


def test_every_knative_document_is_a_kind_listed_here() -> None:
    # A new Knative kind in eventing/ must be added to KNATIVE_KINDS (and knvalidate must
    # know it, or test_eventing_manifests_pass_knvalidate fails with "unsupported kind").
    for f in sorted(EVENTING.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and ".knative.dev/" in doc.get("apiVersion", ""):
                assert doc["kind"] in KNATIVE_KINDS, f"{f.name}: {doc['kind']}"


# --------------------------------------------------------------------------------------------
# A broken copy fails
# --------------------------------------------------------------------------------------------

Mutate = Callable[[dict], None]


def _set(path: str, value: object) -> Mutate:
    def mutate(doc: dict) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        assert last in node, path  # the field is there in the real file
        node[last] = value
    return mutate


def _delete(path: str) -> Mutate:
    def mutate(doc: dict) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[last]
    return mutate


def _rename(path: str, new_key: str) -> Mutate:
    def mutate(doc: dict) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[new_key] = node.pop(last)
    return mutate


# file, object, mutation, the message knvalidate must report for that object
BROKEN = {
    "kafka-source-backoff-not-iso8601": (
        "kafka-source.yaml", "KafkaSource/queue-control-telemetry", _set("spec.delivery.backoffDelay", "200ms"),
        "invalid value: 200ms: spec.delivery.backoffDelay"),
    "kafka-source-bad-initial-offset": (
        "kafka-source.yaml", "KafkaSource/queue-control-telemetry", _set("spec.initialOffset", "oldest"),
        "invalid value: oldest: spec.initialOffset"),
    "trigger-without-broker": (
        "triggers.yaml", "Trigger/queue-stop", _delete("spec.broker"),
        "missing field(s): spec.broker"),
    "service-concurrency-over-the-limit": (
        "services.yaml", "Service/queue-telemetry", _set("spec.template.spec.containerConcurrency", 5000),
        "expected 0 <= 5000 <= 1000: spec.template.spec.containerConcurrency"),
    "service-misspelt-probe": (
        "services.yaml", "Service/queue-start", _rename("spec.template.spec.containers.0.readinessProbe",
                                                        "readinesProbe"),
        'unknown field "spec.template.spec.containers[0].readinesProbe"'),
    "broker-config-not-a-configmap": (
        "broker.yaml", "Broker/queue-manager", _set("spec.config.kind", "Secret"),
        "invalid value: Secret: spec.config.kind"),
    "apiserversource-bad-mode": (
        "apiserver-source.yaml", "ApiServerSource/queue-manager-jobs", _set("spec.mode", "Everything"),
        "invalid value: Everything: spec.mode"),
    "pingsource-bad-schedule": (
        "apiserver-source.yaml", "PingSource/queue-manager-sweep", _set("spec.schedule", "every minute"),
        "invalid value: expected 5 to 6 fields, found 2: [every minute]: spec.schedule"),
    "kafkasink-bad-content-mode": (
        "kafka-sinks.yaml", "KafkaSink/queue-control-dlq", _set("spec.contentMode", "avro"),
        "invalid value: avro: spec.contentMode"),
    "rolebinding-bad-roleref-kind": (
        "rbac.yaml", "RoleBinding/queue-manager-jobs", _set("roleRef.kind", "Roles"),
        "invalid value: Roles: roleRef.kind"),
    "prometheusrule-misspelt-expr": (
        "prometheus-rule.yaml", "PrometheusRule/queue-manager", _rename("spec.groups.0.rules.0.expr", "expression"),
        'unknown field "spec.groups[0].rules[0].expression"'),
}


def _broken_copy(tmp_path: Path, file: str, obj: str, mutate: Mutate) -> tuple[Path, int]:
    """A copy of eventing/ with obj in file mutated; the copy and obj's document number there."""
    copy = tmp_path / "eventing"
    shutil.copytree(EVENTING, copy)
    docs = [d for d in yaml.safe_load_all((copy / file).read_text()) if d]
    targets = [i for i, d in enumerate(docs) if f"{d['kind']}/{d['metadata']['name']}" == obj]
    assert len(targets) == 1, f"{obj} not once in {file}"
    mutate(docs[targets[0]])
    (copy / file).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return copy, targets[0] + 1


def _errors(stdout: str) -> list[tuple[str, str]]:
    """(file[#document], message) of each ERROR line."""
    out = []
    for line in stdout.splitlines():
        m = _ERROR.match(line)
        if m:
            out.append((m.group(1) + (f"#{m.group(2)}" if m.group(2) else ""), m.group(3)))
    return out


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_copy_of_eventing_fails(knvalidate: Path, tmp_path: Path, case: str) -> None:
    file, obj, mutate, message = BROKEN[case]
    copy, number = _broken_copy(tmp_path, file, obj, mutate)
    proc = _run(knvalidate, copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert errors, proc.stdout
    # every error is about the broken object (nothing else in the copy changed), one names the field
    for where, text in errors:
        assert where == f"{copy / file}#{number}" and text.startswith(f"{obj}: "), proc.stdout
    assert any(message in text for _, text in errors), f"{message!r} not in:\n{proc.stdout}"
    assert _summary(proc.stdout)[1] == len(errors)


def test_unchanged_round_trip_of_eventing_passes(knvalidate: Path, tmp_path: Path) -> None:
    # The broken copies are rewritten by PyYAML; without a mutation that alone is clean.
    copy, _ = _broken_copy(tmp_path, "services.yaml", "Service/queue-start", lambda doc: None)
    proc = _run(knvalidate, copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_knative_kind_knvalidate_does_not_know_fails(knvalidate: Path, tmp_path: Path) -> None:
    copy = tmp_path / "eventing"
    shutil.copytree(EVENTING, copy)
    binding = {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
               "metadata": {"name": "queue-manager-binding"},
               "spec": {"subject": {"apiVersion": "batch/v1", "kind": "Job", "selector": {"matchLabels": {"a": "b"}}},
                        "sink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                         "name": "queue-telemetry"}}}}
    with (copy / "apiserver-source.yaml").open("a") as f:
        f.write("---\n" + yaml.safe_dump(binding, sort_keys=False))
    proc = _run(knvalidate, copy)
    assert proc.returncode == 1, proc.stdout
    [(where, text)] = _errors(proc.stdout)
    assert where == f"{copy / 'apiserver-source.yaml'}#3"
    assert text == "SinkBinding/queue-manager-binding: unsupported kind sources.knative.dev/v1 SinkBinding"


def test_kustomization_naming_a_missing_file_fails(knvalidate: Path, tmp_path: Path) -> None:
    copy = tmp_path / "eventing"
    shutil.copytree(EVENTING, copy)
    (copy / "kafka-sinks.yaml").unlink()
    proc = _run(knvalidate, copy)
    assert proc.returncode == 1, proc.stdout
    [(where, text)] = _errors(proc.stdout)
    assert where == str(copy / "kustomization.yaml")
    assert text == 'kustomization resources entry "kafka-sinks.yaml" does not exist'
