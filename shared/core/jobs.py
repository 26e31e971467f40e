"""Job templating: pure functions, dict in, `batch/v1` Job manifest out.

Each Job is told who it is (QUEUE_ID, JOB_ID) so its telemetry can name it,
gets every request parameter as env (upper-cased; lists as JSON) and all of
them at once in REQUEST_PARAMS, and reads credentials only from Secrets.
"""

from __future__ import annotations

import json
from typing import Any

from shared.core import constants, naming
from shared.core.config import JobSettings, KafkaSettings
from shared.core.models import JobState, QueueState

CA_MOUNT = "/etc/streamforge/kafka-ca"


def _param_env(params: dict[str, Any]) -> list[dict[str, str]]:
    env = []
    for key, value in sorted(params.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        env.append({"name": key.upper(), "value": text})
    return env


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}


def labels(queue: QueueState, job: JobState) -> dict[str, str]:
    period = {constants.LABEL_PERIOD: job.period} if job.period else {}
    return {
        **period,
        constants.LABEL_NAME: job.target,
        constants.LABEL_INSTANCE: job.job_name,
        constants.LABEL_COMPONENT: naming.label_value(job.type),
        constants.LABEL_PART_OF: constants.PART_OF,
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        constants.LABEL_QUEUE_ID: naming.label_value(queue.id),
        constants.LABEL_TARGET: job.target,
        constants.LABEL_JOB_ID: naming.label_value(job.id),
        constants.LABEL_JOB_INDEX: str(job.index),
    }


def queue_selector(queue_id: str) -> str:
    return f"{constants.LABEL_QUEUE_ID}={naming.label_value(queue_id)}"


def render(
    *, queue: QueueState, job: JobState, jobs: JobSettings, kafka: KafkaSettings, arango_url: str,
    arango_db: str,
) -> dict[str, Any]:
    time_range = queue.range_of(job)
    start, end = time_range.split(":")
    env = [
        {"name": "QUEUE_ID", "value": queue.id},
        {"name": "JOB_ID", "value": job.id},
        {"name": "TARGET", "value": job.target},
        {"name": "SYMBOL", "value": queue.symbol},
        {"name": "TYPE", "value": job.type},
        {"name": "TIME_RANGE", "value": time_range},
        *([{"name": "PERIOD", "value": job.period}] if job.period else []),
        {"name": "START_DATE", "value": start},
        {"name": "END_DATE", "value": end},
        {"name": "KAFKA_TOPIC", "value": job.kafka_topic or ""},
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": kafka.bootstrap_servers},
        {"name": "QUEUE_CONTROL_TOPIC", "value": kafka.control_topic},
        {"name": "QUEUE_EVENTS_TOPIC", "value": kafka.events_topic},
        {"name": "ARANGO_URL", "value": arango_url},
        {"name": "ARANGO_DB", "value": arango_db},
        {"name": "REQUEST_PARAMS", "value": json.dumps(job.params, sort_keys=True)},
        *_param_env(job.params),
        _secret_env("KAFKA_USER", jobs.kafka_secret, "user"),
        _secret_env("KAFKA_PASSWORD", jobs.kafka_secret, "password"),
        _secret_env("KAFKA_SASL_MECHANISM", jobs.kafka_secret, "sasl.mechanism"),
        {"name": "CA_PATH", "value": f"{CA_MOUNT}/ca.crt"},
        _secret_env("ARANGO_USER", jobs.arango_secret, "user"),
        _secret_env("ARANGO_PASSWORD", jobs.arango_secret, "password"),
    ]
    job_labels = labels(queue, job)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": job.target,
                "image": jobs.images[job.target],
                "imagePullPolicy": jobs.image_pull_policy,
                "env": env,
                "resources": {
                    "requests": {"cpu": jobs.cpu_request, "memory": jobs.memory_request},
                    "limits": {"memory": jobs.memory_limit},
                },
                "volumeMounts": [{"name": "kafka-ca", "mountPath": CA_MOUNT, "readOnly": True}],
            }
        ],
        "volumes": [
            {
                "name": "kafka-ca",
                "secret": {
                    "secretName": jobs.kafka_secret,
                    "optional": True,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                },
            }
        ],
    }
    if jobs.service_account:
        pod_spec["serviceAccountName"] = jobs.service_account
    if jobs.node_selector:
        pod_spec["nodeSelector"] = dict(jobs.node_selector)
    if queue.priority in jobs.priority_classes:
        pod_spec["priorityClassName"] = jobs.priority_classes[queue.priority]
    spec: dict[str, Any] = {
        "backoffLimit": jobs.backoff_limit,
        "ttlSecondsAfterFinished": jobs.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": job_labels, **({"annotations": dict(jobs.pod_annotations)}
                                                           if jobs.pod_annotations else {})},
                     "spec": pod_spec},
    }
    deadline = job.params.get("active_deadline_seconds") or jobs.active_deadline_seconds
    if isinstance(deadline, int) and deadline > 0:
        spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.job_name,
            "namespace": jobs.namespace,
            "labels": job_labels,
            "annotations": {
                "streamforge.dev/queue-id": queue.id,
                "streamforge.dev/symbol": queue.symbol,
                "streamforge.dev/time-range": time_range,
                **({"streamforge.dev/period": job.period} if job.period else {}),
            },
        },
        "spec": spec,
    }
