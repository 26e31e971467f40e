"""The manifests agree with the code (types, paths, names, env)."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared.core import constants
from shared.core.config import Settings
from tests.conftest import ROOT

EVENTING = ROOT / "eventing"


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((EVENTING / name).read_text()) if d]


def _all() -> list[dict]:
    return [d for p in sorted(EVENTING.glob("*.yaml")) if p.name != "kustomization.yaml" for d in _docs(p.name)]


def test_kustomization_lists_existing_files_and_no_secrets():
    kustomization = yaml.safe_load((EVENTING / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (EVENTING / resource).is_file(), resource
    applied = [d for r in kustomization["resources"] for d in _docs(r)]
    assert not [d for d in applied if d["kind"] == "Secret"], "secrets must not be applied from the repo"


def test_trigger_filters_are_the_types_the_code_accepts():
    triggers = {d["spec"]["subscriber"]["ref"]["name"]: d["spec"]["filter"]["attributes"]["type"]
                for d in _docs("triggers.yaml")}
    assert triggers == {"queue-start": constants.CE_START_QUEUE, "queue-stop": constants.CE_STOP_QUEUE}


def test_each_function_has_a_service_with_probes_on_the_seed_paths():
    services = {d["metadata"]["name"]: d for d in _docs("services.yaml")}
    assert set(services) == {"queue-start", "queue-stop", "queue-telemetry", "queue-status"}
    for name, svc in services.items():
        template = svc["spec"]["template"]
        assert template["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "0"
        container = template["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["QM_FUNCTION"]["value"] == name.removeprefix("queue-")
        assert (ROOT / env["FUNCTION_SOURCE"]["value"]).is_file()
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["startupProbe"]["httpGet"]["path"] == "/health/startup"
        for secret_env in ("KAFKA_PASSWORD", "ARANGO_PASSWORD"):
            assert "secretKeyRef" in env[secret_env]["valueFrom"]
    for private in ("queue-start", "queue-stop", "queue-telemetry"):
        assert services[private]["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"


def test_config_map_keys_are_settings_the_code_reads():
    data = _docs("config.yaml")[0]["data"]
    settings = Settings.from_env(data)
    assert settings.jobs.launcher == "kubernetes"
    assert settings.kafka.control_topic == "queue-control"
    assert settings.jobs.images["gnn-trainer"] == "streamforge/gnn-trainer:latest"
    read = set(Path(ROOT / "shared" / "core" / "config.py").read_text().split('"'))
    assert set(data) <= read, set(data) - read


def test_sources_sink_into_the_right_function():
    for doc in _docs("kafka-source.yaml") + _docs("apiserver-source.yaml"):
        if doc["kind"] == "PingSource":
            assert (doc["spec"]["sink"]["ref"]["name"], doc["spec"]["sink"]["uri"]) == ("queue-stop", "/sweep")
        else:
            assert doc["spec"]["sink"]["ref"]["name"] == "queue-telemetry"
    [ticks] = _docs("schedules.yaml")
    assert (ticks["spec"]["sink"]["ref"]["name"], ticks["spec"]["sink"]["uri"]) == ("queue-start", "/schedules/tick")
    [source] = _docs("kafka-source.yaml")
    assert source["spec"]["topics"] == [Settings.from_env({}).kafka.control_topic]
    assert source["spec"]["delivery"]["backoffPolicy"] == "exponential"


def test_every_object_is_labelled_part_of_streamforge():
    for doc in _all():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "streamforge", doc["metadata"]["name"]
