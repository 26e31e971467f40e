"""`start`: POST /queues/start (plain JSON, or a CloudEvent from the broker)."""

from __future__ import annotations

import uuid

from functions_framework import aio
from starlette.requests import Request
from starlette.responses import Response

from shared import runtime
from shared.api import groups, query, schedules, web
from shared.core import constants
from shared.core.errors import ClientError
from shared.core.models import QueueStart

_OTHERS = {constants.CE_STOP_QUEUE, constants.CE_TELEMETRY, constants.CE_KAFKA_RECORD}


async def start_queue(request: Request, params: web.Params) -> Response:
    inbound = await web.read_inbound(request)
    if inbound.ce_type in _OTHERS:
        raise ClientError(f"the start function takes {constants.CE_START_QUEUE}, not {inbound.ce_type}")
    if inbound.data is None:
        raise ClientError("empty body: send a queue, e.g. {symbol, time_range, requests: [...]}")
    if groups.is_group(inbound.data):
        return await groups.start_group(request, inbound)
    command = QueueStart.parse(inbound.data)
    key = query.idempotency_key(request, inbound.ce_identity)
    if request.query_params.get("dry_run") in ("1", "true"):
        plan = await web.blocking(runtime.get().service.plan, command)
        return web.envelope(200, "Queue plan (nothing launched)", plan)
    service = runtime.get().service
    result = await web.blocking(service.start, command, idempotency_key=key)
    state = result.state
    if state is None:
        covered = {"queue_id": None, "status": "covered", "skipped": result.skipped, "covering": result.covering}
        return web.reply(inbound, 200, "Nothing to load: other queues cover every period (force: true reloads)",
                         covered, event_type=constants.CE_QUEUE_COVERED, event_id=f"covered/{uuid.uuid4()}")
    data = {
        "queue_id": state.id,
        "status": state.status.value,
        "jobs": [{"id": j.id, "target": j.target, "type": j.type, "status": j.status.value,
                  **({"period": j.period} if j.period else {})} for j in state.jobs],
        "launcher": service.launcher.note,
    }
    if result.skipped:
        data.update(skipped=result.skipped, covering=result.covering)
    message = "Queue started" if result.created else "Queue already started (same idempotency key)"
    return web.reply(inbound, 200, message, data, event_type=constants.CE_QUEUE_STARTED,
                     event_id=f"{state.id}/started")


async def plan_queue(request: Request, params: web.Params) -> Response:
    inbound = await web.read_inbound(request)
    if inbound.data is None:
        raise ClientError("empty body: send the queue you would start")
    plan = await web.blocking(runtime.get().service.plan, QueueStart.parse(inbound.data))
    return web.envelope(200, "Queue plan (nothing launched)", plan)


async def retry_queue(request: Request, params: web.Params) -> Response:
    state = await web.blocking(runtime.get().service.retry, params["queue_id"])
    retried = [j.id for j in state.jobs if j.attempt > 0 and j.status.value != "finished"]
    return web.envelope(200, "Queue retried", {"queue_id": state.id, "status": state.status.value,
                                               "retried": retried})


async def repair_queue(request: Request, params: web.Params) -> Response:
    state, rerun = await web.blocking(runtime.get().service.repair, params["queue_id"])
    return web.envelope(200, "Queue repairing", {"queue_id": state.id, "status": state.status.value,
                                                 "repaired": rerun})


ROUTES = [
    web.route("POST", "/queues/plan", plan_queue),
    web.route("POST", "/queues/{queue_id}/retry", retry_queue),
    web.route("POST", "/queues/{queue_id}/repair", repair_queue),
    web.route("POST", "/queues/start", start_queue),
    web.route("POST", "/queues", start_queue),
    *groups.START_ROUTES,
    *schedules.START_ROUTES,
]
_ALL = web.table([*ROUTES, web.route("POST", "/", start_queue, role=web.DELIVERY), *web.common_routes(launcher=True)])


@aio.http
async def start(request: Request) -> Response:
    return await web.serve(request, function="start", routes=_ALL)
