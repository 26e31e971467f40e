"""`telemetry`: the Jobs' reports from queue-control, as KafkaSource delivers them.

Accepted: a KafkaSource-wrapped record (`dev.knative.kafka.event`, data =
the plain JSON a Job wrote), a native `dev.streamforge.queue.telemetry`
CloudEvent (binary or structured mode; a structured one written to Kafka
without the `application/cloudevents+json` content-type header arrives
wrapped and is unwrapped here), or the plain JSON posted directly. Anything
else on the topic (e.g. the manager's own stop commands) is acknowledged and
ignored.
"""

from __future__ import annotations

from functions_framework import aio
from starlette.requests import Request
from starlette.responses import Response

from shared import runtime
from shared.adapters import events, metrics
from shared.api import web
from shared.core import cluster, constants
from shared.core.errors import ClientError
from shared.core.models import Outcome, Telemetry

MESSAGES = {
    Outcome.APPLIED: "Telemetry applied",
    Outcome.DUPLICATE: "Telemetry already applied (duplicate or out of date)",
    Outcome.UNKNOWN_QUEUE: "Telemetry ignored: unknown queue",
    Outcome.UNKNOWN_JOB: "Telemetry ignored: unknown job in this queue",
    Outcome.NO_NEWS: "Nothing new about the job",
}


def _is_telemetry(ce_type: str | None, data: object) -> bool:
    if ce_type == constants.CE_TELEMETRY:
        return True
    if ce_type not in (None, constants.CE_KAFKA_RECORD):
        return False
    return isinstance(data, dict) and data.get("type") == "telemetry"


async def ingest(request: Request, params: web.Params) -> Response:
    inbound = events.unwrap_kafka_record(await web.read_inbound(request))
    if inbound.ce is None and not isinstance(inbound.data, dict):
        raise ClientError("send a Job's telemetry as a JSON object, e.g. {type: telemetry, queue_id, job_id, status}")
    if inbound.ce_type and inbound.ce_type.startswith(cluster.EVENT_PREFIX):
        return await _job_event(inbound.ce_type, inbound.data)
    if not _is_telemetry(inbound.ce_type, inbound.data):
        metrics.TELEMETRY.labels("ignored").inc()
        kind = inbound.data.get("type") if isinstance(inbound.data, dict) else None
        return web.envelope(200, f"Ignored: not telemetry (type={kind or inbound.ce_type})")
    try:
        telemetry = Telemetry.model_validate(inbound.data)
    except ValueError:
        metrics.TELEMETRY.labels("invalid").inc()
        raise
    # Merged with whatever else arrives in this turn of the loop: one write per queue.
    outcome = await runtime.get().intake.submit(telemetry)
    return web.envelope(200, MESSAGES[outcome], {"queue_id": telemetry.queue_id, "outcome": outcome})


async def _job_event(ce_type: str, job: object) -> Response:
    observed = cluster.observe(ce_type, job)
    if observed is None:
        metrics.TELEMETRY.labels("ignored").inc()
        return web.envelope(200, "Ignored: not a Job of the queue manager")
    outcome = await web.blocking(runtime.get().service.cluster_event, observed)
    return web.envelope(200, f"Job event: {outcome}", {"queue_id": observed.queue_id,
                                                      "job": observed.job_name, "outcome": outcome})


ROUTES = [web.route("POST", "/telemetry", ingest, role=web.DELIVERY)]
_ALL = web.table([*ROUTES, web.route("POST", "/", ingest, role=web.DELIVERY), *web.common_routes(launcher=False)])


@aio.http
async def telemetry(request: Request) -> Response:
    return await web.serve(request, function="telemetry", routes=_ALL)
