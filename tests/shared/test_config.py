"""The environment variables the settings read: their names, what each sets, and refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

import pytest

from shared.core.config import Settings

# variable -> (value to set, path of the field it sets, parsed value)
VARIABLES: dict[str, tuple[str, str, object]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("k:9092", "kafka.bootstrap_servers", "k:9092"),
    "KAFKA_USER": ("ku", "kafka.user", "ku"),
    "KAFKA_PASSWORD": ("kp", "kafka.password", "kp"),
    "CA_PATH": ("/ca.crt", "kafka.ca_path", "/ca.crt"),
    "KAFKA_SASL_MECHANISM": ("SCRAM-SHA-256", "kafka.sasl_mechanism", "SCRAM-SHA-256"),
    "QUEUE_CONTROL_TOPIC": ("ctl", "kafka.control_topic", "ctl"),
    "QUEUE_EVENTS_TOPIC": ("evt", "kafka.events_topic", "evt"),
    "KAFKA_TIMEOUT_MS": ("1234", "kafka.timeout_ms", 1234),
    "ARANGO_URL": ("http://a:8529", "arango.url", "http://a:8529"),
    "ARANGO_DB": ("qdb", "arango.db", "qdb"),
    "ARANGO_USER": ("au", "arango.user", "au"),
    "ARANGO_PASSWORD": ("ap", "arango.password", "ap"),
    "KUBERNETES_SERVICE_HOST": ("10.0.0.1", "jobs.launcher", "kubernetes"),
    "JOB_LAUNCHER": ("kubernetes", "jobs.launcher", "kubernetes"),
    "JOB_NAMESPACE": ("ns", "jobs.namespace", "ns"),
    "KUBECONFIG": ("/kc", "jobs.kubeconfig", "/kc"),
    "JOB_IMAGES": ('{"visualizer": "v:2"}', "jobs.images.visualizer", "v:2"),
    "JOB_IMAGE_LOADER_PRODUCER": ("lp:1", "jobs.images.loader-producer", "lp:1"),
    "JOB_IMAGE_ARANGO_CONNECTOR": ("ac:1", "jobs.images.arango-connector", "ac:1"),
    "JOB_IMAGE_GRAPH_BUILDER": ("gb:1", "jobs.images.graph-builder", "gb:1"),
    "JOB_IMAGE_GNN_TRAINER": ("gt:1", "jobs.images.gnn-trainer", "gt:1"),
    "JOB_IMAGE_VISUALIZER": ("vi:1", "jobs.images.visualizer", "vi:1"),
    "JOB_IMAGE_PULL_POLICY": ("Always", "jobs.image_pull_policy", "Always"),
    "JOB_SERVICE_ACCOUNT": ("sa", "jobs.service_account", "sa"),
    "JOB_BACKOFF_LIMIT": ("7", "jobs.backoff_limit", 7),
    "JOB_ACTIVE_DEADLINE_SECONDS": ("60", "jobs.active_deadline_seconds", 60),
    "JOB_TTL_SECONDS_AFTER_FINISHED": ("61", "jobs.ttl_seconds_after_finished", 61),
    "JOB_CPU_REQUEST": ("250m", "jobs.cpu_request", "250m"),
    "JOB_MEMORY_REQUEST": ("1Gi", "jobs.memory_request", "1Gi"),
    "JOB_MEMORY_LIMIT": ("2Gi", "jobs.memory_limit", "2Gi"),
    "JOB_KAFKA_SECRET": ("ks", "jobs.kafka_secret", "ks"),
    "JOB_ARANGO_SECRET": ("as", "jobs.arango_secret", "as"),
    "JOB_MANIFESTS_DIR": ("/m", "jobs.manifests_dir", "/m"),
    "JOB_LIMITS": ('{"*": 3}', "jobs.limits", {"*": 3}),
    "JOB_PRIORITY_CLASSES": ('{"1-2": "low", "3": "mid"}', "jobs.priority_classes", {1: "low", 2: "low", 3: "mid"}),
    "JOB_POD_ANNOTATIONS": ('{"a": 1}', "jobs.pod_annotations", {"a": "1"}),
    "JOB_NODE_SELECTOR": ('{"zone": "b"}', "jobs.node_selector", {"zone": "b"}),
    "LEASE_TTL_SECONDS": ("30", "jobs.lease_ttl_seconds", 30),
    "STOP_GRACE_SECONDS": ("1.5", "jobs.stop_grace_seconds", 1.5),
    "RETENTION_DAYS": ("7.5", "jobs.retention_days", 7.5),
    "DRIFT_AFTER_SECONDS": ("9", "jobs.drift_after_seconds", 9.0),
    "DRIFT_CHECKS_PER_SWEEP": ("4", "jobs.drift_checks_per_sweep", 4),
    "QM_LOCAL_DIR": ("/data", "local_dir", "/data"),
    "MAX_BODY_BYTES": ("1024", "max_body_bytes", 1024),
    "QM_READ_TOKENS": ("r1, r2", "auth.read_tokens", (hashlib.sha256(b"r1").digest(), hashlib.sha256(b"r2").digest())),
    "QM_OPERATE_TOKENS": ("o1", "auth.operate_tokens", (hashlib.sha256(b"o1").digest(),)),
}


def field(settings: object, path: str) -> object:
    value = settings
    for part in path.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


class Recording(Mapping[str, str]):
    """An environment noting every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.asked = values, set[str]()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def get(self, name, default=None):  # type: ignore[no-untyped-def, override]
        self.asked.add(name)
        return self.values.get(name, default)

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the settings look variables up by name; they never list the environment")

    def __len__(self) -> int:
        return len(self.values)


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_each_variable_sets_its_field(name):
    raw, path, parsed = VARIABLES[name]
    default = field(Settings.from_env({}), path) if not path.startswith("jobs.images.") else None
    assert field(Settings.from_env({name: raw}), path) == parsed != default


def test_the_settings_read_these_variables_and_no_others():
    env = Recording({})
    Settings.from_env(env)
    assert env.asked == set(VARIABLES)


def test_local_dir_moves_the_manifests_unless_they_are_placed():
    assert Settings.from_env({"QM_LOCAL_DIR": "/data"}).jobs.manifests_dir == "/data/jobs"
    assert Settings.from_env({"QM_LOCAL_DIR": "/data", "JOB_MANIFESTS_DIR": "/m"}).jobs.manifests_dir == "/m"
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "JOB_LAUNCHER": "local"}
    assert Settings.from_env(in_cluster).jobs.launcher == "local"


@pytest.mark.parametrize(("env", "message"), [
    ({"DRIFT_CHECKS_PER_SWEEP": "-1"}, "DRIFT_CHECKS_PER_SWEEP must be 0 or more, got -1"),
    ({"KAFKA_TIMEOUT_MS": "soon"}, "KAFKA_TIMEOUT_MS must be an integer, got 'soon'"),
    ({"STOP_GRACE_SECONDS": "five"}, "STOP_GRACE_SECONDS must be a number of seconds, got 'five'"),
    ({"RETENTION_DAYS": "1e6"}, "RETENTION_DAYS must be at most 36500 (0 keeps every queue hot)"),
    ({"RETENTION_DAYS": "-1"}, "RETENTION_DAYS must be 0 or more days, got '-1'"),
    ({"DRIFT_AFTER_SECONDS": "-2"}, "DRIFT_AFTER_SECONDS must be 0 or more seconds, got '-2'"),
    ({"JOB_NODE_SELECTOR": "[1]"}, "JOB_NODE_SELECTOR must be a JSON object"),
    ({"JOB_POD_ANNOTATIONS": "{"}, "JOB_POD_ANNOTATIONS must be a JSON object"),
    ({"JOB_IMAGES": '"x"'}, "JOB_IMAGES must be a JSON object {target: image}"),
])
def test_bad_values_are_refused_naming_their_variable(env, message):
    with pytest.raises(ValueError) as refused:
        Settings.from_env(env)
    assert str(refused.value).startswith(message), str(refused.value)


def test_passwords_stay_out_of_reprs():
    settings = Settings.from_env({"KAFKA_PASSWORD": "kafka-pw-1", "ARANGO_PASSWORD": "arango-pw-2",
                                  "KAFKA_USER": "u"})
    assert (settings.kafka.password, settings.arango.password) == ("kafka-pw-1", "arango-pw-2")
    for shown in (repr(settings), str(settings), repr(settings.kafka), repr(settings.arango)):
        assert "kafka-pw-1" not in shown and "arango-pw-2" not in shown
        assert "password" not in shown
