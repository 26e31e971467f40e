"""`all`: the four functions in one process, routed by path, for local runs.

In production each function runs alone (its own Knative Service); here a POST
to `/` is routed by CloudEvent type, or by the payload's shape.
"""

from __future__ import annotations

from functions_framework import aio
from starlette.requests import Request
from starlette.responses import Response

from functions import start as start_fn
from functions import status as status_fn
from functions import stop as stop_fn
from functions import telemetry as telemetry_fn
from shared.api import web
from shared.core import cluster, constants


async def _by_content(request: Request, params: web.Params) -> Response:
    # read_inbound caches the body, so the chosen handler reads it again for free.
    inbound = await web.read_inbound(request)
    ce_type = inbound.ce_type
    data = inbound.data if isinstance(inbound.data, dict) else {}
    if ce_type == constants.CE_STOP_QUEUE:
        return await stop_fn.stop_queue(request, params)
    if ce_type == constants.CE_PING:
        return await stop_fn.run_sweep(request, params)
    if ce_type == constants.CE_START_QUEUE or (ce_type is None and data.get("type") != "telemetry"):
        return await start_fn.start_queue(request, params)
    if (ce_type is not None and ce_type not in TELEMETRY_TYPES and not ce_type.startswith(cluster.EVENT_PREFIX)
            and ("symbol" in data or "symbols" in data)):
        return await start_fn.start_queue(request, params)  # e.g. `func invoke`'s default event type
    # Telemetry, Job events, and anything else on the topics (acknowledged and ignored there).
    return await telemetry_fn.ingest(request, params)


TELEMETRY_TYPES = (constants.CE_TELEMETRY, constants.CE_KAFKA_RECORD)


_ALL = web.table([
    *start_fn.ROUTES,
    *stop_fn.ROUTES,
    *telemetry_fn.ROUTES,
    *status_fn.ROUTES,
    web.route("POST", "/", _by_content, role=web.DELIVERY),
    *web.common_routes(launcher=True),
])


@aio.http
async def all(request: Request) -> Response:
    return await web.serve(request, function="all", routes=_ALL)
