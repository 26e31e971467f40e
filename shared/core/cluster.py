"""Job status from the cluster itself, as Knative's ApiServerSource delivers it.

Telemetry comes from the Jobs' own code; a Job that crashes before reporting,
exhausts its `backoffLimit`, hits its deadline or is deleted by hand says
nothing. The ApiServerSource in eventing/ watches the manager's Jobs and
posts each change to the `telemetry` function as
`dev.knative.apiserver.resource.{add,update,delete}` (mode Resource: the data
is the whole Job); this module turns one into a job update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core import constants
from shared.core.errors import InvalidInput

EVENT_PREFIX = "dev.knative.apiserver.resource."
ADD, UPDATE, DELETE = (EVENT_PREFIX + k for k in ("add", "update", "delete"))


@dataclass(frozen=True)
class JobObserved:
    queue_id: str
    job_name: str
    status: str | None
    """A telemetry status word (running, finished, error), or None for no news."""
    error_message: str | None = None
    deleted: bool = False
    pod: bool = False
    """A pod of the Job went away: only a stop waiting for it cares."""


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object (None: an empty one). :raises InvalidInput:"""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"malformed Kubernetes object: {what} is not an object")
    return value


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = _object(job.get("status"), "status").get("conditions") or []
    if not isinstance(conditions, list):
        raise InvalidInput("malformed Kubernetes object: status.conditions is not a list")
    for cond in conditions:
        cond = _object(cond, "a status condition")
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def observe(event_type: str, job: Any) -> JobObserved | None:
    """The update an ApiServerSource event carries; None if it is not one of our Jobs.

    :raises InvalidInput: the object is not shaped like a Kubernetes object.
    """
    if not isinstance(job, dict) or job.get("kind") not in ("Job", "Pod"):
        return None
    meta = _object(job.get("metadata"), "metadata")
    labels = _object(meta.get("labels"), "metadata.labels")
    queue_id = (_object(meta.get("annotations"), "metadata.annotations").get(constants.LABEL_QUEUE_ID)
                or labels.get(constants.LABEL_QUEUE_ID))
    if labels.get(constants.LABEL_MANAGED_BY) != constants.MANAGED_BY or not queue_id or not meta.get("name"):
        return None
    name = meta["name"]
    if not isinstance(name, str) or not isinstance(queue_id, str):
        raise InvalidInput("malformed Kubernetes object: metadata.name and the queue id must be strings")
    if job["kind"] == "Pod":
        if event_type != DELETE:
            return None
        return JobObserved(queue_id, labels.get("job-name", name), None, deleted=True, pod=True)
    if event_type == DELETE:
        return JobObserved(queue_id, name, None, deleted=True)
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return JobObserved(queue_id, name, "finished")
    failed = _condition(job, "Failed") or _condition(job, "FailureTarget")
    if failed:
        reason = failed.get("reason") or "Failed"
        message = failed.get("message") or "the Job failed"
        return JobObserved(queue_id, name, "error", error_message=f"Job failed ({reason}): {message}")
    status = _object(job.get("status"), "status")
    ready = status.get("ready") or 0
    if not isinstance(ready, int):
        raise InvalidInput("malformed Kubernetes object: status.ready is not a number")
    if ready > 0:  # `active` counts Pending pods too: not running yet
        return JobObserved(queue_id, name, "running")
    return JobObserved(queue_id, name, None)
