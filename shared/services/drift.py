"""Drift check: the stored state against the cluster's Jobs, and optionally a repair.

Events keep the state current; this answers "is it?" on demand (and the
repair feeds what it finds through the same path as ApiServerSource events).
"""

from __future__ import annotations

from typing import Any

from shared.core import cluster, lifecycle
from shared.services.service import QueueService


def check(service: QueueService, queue_id: str, *, repair: bool = False) -> dict[str, Any]:
    """:raises NotFound: :raises BackendUnavailable:"""
    state = service.get(queue_id)
    objects = {o["metadata"]["name"]: o for o in service.launcher.observe(queue_id)}
    settled = lifecycle.closing(state.status)
    differences: list[dict[str, Any]] = []
    fixes: list[cluster.JobObserved] = []
    for job in state.jobs:
        obj = objects.pop(job.job_name, None)
        if obj is None:
            if job.created and job.status not in lifecycle.TERMINAL_JOB and not settled:
                differences.append({"job": job.id, "stored": job.status.value, "cluster": "missing"})
                fixes.append(cluster.JobObserved(queue_id, job.job_name, None, deleted=True))
            continue
        seen = cluster.observe(cluster.UPDATE, obj)
        if seen is None or seen.status is None:
            continue
        observed = lifecycle.TELEMETRY_STATUS[seen.status]
        if job.status not in lifecycle.TERMINAL_JOB and lifecycle.rank(observed) > lifecycle.rank(job.status):
            differences.append({"job": job.id, "stored": job.status.value, "cluster": seen.status,
                                "reason": seen.error_message})
            fixes.append(seen)
    for name in sorted(objects):
        differences.append({"job": name, "stored": None, "cluster": "not in the queue's state"})
    if repair:
        for fix in fixes:
            service.cluster_event(fix)
    return {"queue_id": queue_id, "status": state.status.value, "in_sync": not differences,
            "differences": differences, "repaired": len(fixes) if repair else 0}
