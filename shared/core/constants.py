"""Names used on the wire, in the cluster and in the state store, defined once."""

from typing import Final

# CloudEvent types the functions accept (Triggers filter on these exact strings).
CE_START_QUEUE: Final = "dev.streamforge.queue.start"
CE_STOP_QUEUE: Final = "dev.streamforge.queue.stop"
CE_TELEMETRY: Final = "dev.streamforge.queue.telemetry"
# What KafkaSource makes of a Kafka record that is not already a CloudEvent.
CE_KAFKA_RECORD: Final = "dev.knative.kafka.event"

# CloudEvent types the functions emit on the events topic.
CE_QUEUE_STARTED: Final = "dev.streamforge.queue.started"
CE_QUEUE_COVERED: Final = "dev.streamforge.queue.covered"  # a start with nothing to load
CE_QUEUE_STOPPED: Final = "dev.streamforge.queue.stopped"
CE_QUEUE_STATUS_CHANGED: Final = "dev.streamforge.queue.status.changed"
CE_JOB_STATUS_CHANGED: Final = "dev.streamforge.job.status.changed"
# Command the manager puts on queue-control for the running Jobs.
CE_STOP_COMMAND: Final = "dev.streamforge.queue.command.stop"

EVENT_SOURCE: Final = "/streamforge/queue-manager"

# Kubernetes label keys on every Job the manager launches.
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_QUEUE_ID: Final = "streamforge.dev/queue-id"
LABEL_TARGET: Final = "streamforge.dev/target"
LABEL_JOB_ID: Final = "streamforge.dev/job-id"  # the job's id, as its JOB_ID env
# its place among the queue's jobs (unpartitioned: its request's)
LABEL_JOB_INDEX: Final = "streamforge.dev/job-index"
LABEL_PERIOD: Final = "streamforge.dev/period"  # the period a partitioned job loads
PART_OF: Final = "streamforge"
MANAGED_BY: Final = "streamforge-queue-manager"

TARGETS: Final = (
    "loader-producer",
    "arango-connector",
    "graph-builder",
    "gnn-trainer",
    "visualizer",
)

QUEUE_COLLECTION: Final = "queue_state"
LEASE_COLLECTION: Final = "queue_leases"
CE_PING: Final = "dev.knative.sources.ping"
