"""`stop`: POST /queues/stop?queue_id=... (or /queues/{id}/stop, or a CloudEvent)."""

from __future__ import annotations

from functions_framework import aio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from shared import runtime
from shared.api import groups, stops, web
from shared.core import constants
from shared.core.errors import ClientError
from shared.core.models import QueueStop
from shared.services import sweep

_OTHERS = {constants.CE_START_QUEUE, constants.CE_TELEMETRY, constants.CE_KAFKA_RECORD}


async def stop_queue(request: Request, params: web.Params) -> Response:
    inbound = await web.read_inbound(request)
    if inbound.ce_type == constants.CE_PING:
        return await run_sweep(request, params)
    if inbound.ce_type in _OTHERS:
        raise ClientError(f"the stop function takes {constants.CE_STOP_QUEUE}, not {inbound.ce_type}")
    body = inbound.data if isinstance(inbound.data, dict) else {}
    if inbound.data is not None and not isinstance(inbound.data, dict):
        raise ClientError("body must be a JSON object such as {\"queue_id\": \"...\"}")
    if body.get("queue_id") is not None:
        QueueStop.model_validate(body)  # as the document says it, even where the path names the queue
    queue_id = params.get("queue_id") or request.query_params.get("queue_id") or body.get("queue_id")
    if not queue_id:
        raise ClientError("queue_id is required (query parameter, path or body)")
    command = QueueStop.model_validate({**body, "queue_id": queue_id})
    state, changed = await web.blocking(runtime.get().service.stop, command.queue_id,
                                        reason=command.reason)
    status = state.status.value
    if status == "stopping":
        message = "Queue stopping: Jobs told to stop; stopped once none is left"
    elif changed:
        message = "Queue stopped"
    elif status == "stopped":
        message = "Queue already stopped"
    else:
        message = f"Queue already {status}; nothing to stop"
    data = {"queue_id": state.id, "status": status, "reason": state.stop_reason}
    response = web.reply(inbound, 200, message, data, event_type=constants.CE_QUEUE_STOPPED,
                         event_id=f"{state.id}/stopped")
    if status == "stopping":
        response.background = BackgroundTask(stops.finish_after_grace, state.id)
    return response


async def run_sweep(request: Request, params: web.Params) -> Response:
    report = await web.blocking(sweep.sweep, runtime.get().service)
    return web.envelope(200, "Sweep done", report)


ROUTES = [
    web.route("POST", "/sweep", run_sweep, role=web.DELIVERY),
    web.route("POST", "/queues/stop", stop_queue),
    web.route("POST", "/queues/{queue_id}/stop", stop_queue),
    *groups.STOP_ROUTES,
]
_ALL = web.table([*ROUTES, web.route("POST", "/", stop_queue, role=web.DELIVERY), *web.common_routes(launcher=True)])


@aio.http
async def stop(request: Request) -> Response:
    return await web.serve(request, function="stop", routes=_ALL)
