import json

from shared.core import constants, jobs, lifecycle
from shared.core.config import Settings
from shared.core.models import QueueStart


def _render_all(payload, env=None):
    settings = Settings.from_env(env or {})
    state = lifecycle.new_queue(queue_id="b927fa13-3b22-4d44-bc81-1f902a222eee",
                                command=QueueStart.parse(payload), now="2024-01-01T00:00:00Z")
    return state, [jobs.render(queue=state, job=j, jobs=settings.jobs, kafka=settings.kafka,
                               arango_url="http://arango:8529", arango_db="streamforge")
                   for j in state.jobs]


def test_every_job_has_identity_labels_limits_and_no_literal_secrets(historical):
    state, manifests = _render_all(historical)
    for job, m in zip(state.jobs, manifests, strict=True):
        assert m["apiVersion"] == "batch/v1" and m["kind"] == "Job"
        labels = m["metadata"]["labels"]
        assert labels[constants.LABEL_QUEUE_ID] == state.id
        assert labels[constants.LABEL_NAME] == job.target
        assert labels[constants.LABEL_MANAGED_BY] == constants.MANAGED_BY
        assert m["spec"]["template"]["metadata"]["labels"] == labels
        spec = m["spec"]
        assert spec["backoffLimit"] == 2 and spec["ttlSecondsAfterFinished"] == 3600
        container = spec["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        for secret in ("KAFKA_USER", "KAFKA_PASSWORD", "ARANGO_USER", "ARANGO_PASSWORD"):
            assert "value" not in env[secret]
            assert env[secret]["valueFrom"]["secretKeyRef"]["key"] in ("user", "password")
        assert env["JOB_ID"]["value"] == job.id == labels[constants.LABEL_JOB_ID]
        assert labels[constants.LABEL_JOB_INDEX] == str(job.index)
        assert container["resources"]["limits"]["memory"]
        assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_images_and_deadlines_come_from_configuration(historical):
    env = {"JOB_IMAGES": json.dumps({"gnn-trainer": "reg/gnn:1.2"}),
           "JOB_IMAGE_LOADER_PRODUCER": "reg/loader:9", "JOB_ACTIVE_DEADLINE_SECONDS": "600",
           "JOB_NAMESPACE": "pipelines"}
    _, manifests = _render_all(historical, env)
    images = {m["metadata"]["labels"][constants.LABEL_TARGET]:
              m["spec"]["template"]["spec"]["containers"][0]["image"] for m in manifests}
    assert images["gnn-trainer"] == "reg/gnn:1.2" and images["loader-producer"] == "reg/loader:9"
    assert images["graph-builder"] == "streamforge/graph-builder:latest"
    assert {m["spec"]["activeDeadlineSeconds"] for m in manifests} == {600}
    assert {m["metadata"]["namespace"] for m in manifests} == {"pipelines"}


def test_data_topics_follow_the_naming_convention(historical):
    _, manifests = _render_all(historical)
    topics = [{e["name"]: e.get("value") for e in m["spec"]["template"]["spec"]["containers"][0]["env"]}
              ["KAFKA_TOPIC"] for m in manifests]
    assert topics[:4] == ["btc_candles_5m_2024_06", "btc_trades_2024_06",
                          "btc_candles_5m_2024_06", "btc_trades_2024_06"]


def test_pod_annotations_and_node_selector_come_from_configuration(historical):
    _, manifests = _render_all(historical, {"JOB_POD_ANNOTATIONS": json.dumps({"sidecar.istio.io/inject": "false"}),
                                            "JOB_NODE_SELECTOR": json.dumps({"pool": "batch"})})
    template = manifests[0]["spec"]["template"]
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["spec"]["nodeSelector"] == {"pool": "batch"}
    _, plain = _render_all(historical)
    assert "annotations" not in plain[0]["spec"]["template"]["metadata"]
