"""HTTP of schedules (shared/services/schedules.py): set up, paused, resumed and deleted by the
start function, read by the status function, and ticked by the PingSource of
eventing/schedules.yaml (POST /schedules/tick on the start function)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shared.api import query, web
from shared.core import constants, schedules
from shared.core.errors import ClientError, NotFound
from shared.services import schedules as service_schedules
from shared.services import ticking


def _name(params: web.Params) -> str:
    name = params["name"]
    if not schedules.NAME.fullmatch(name):
        raise NotFound(f"schedule {name!r} not found (names are DNS labels)")
    return name


async def create_schedule(request: Request, params: web.Params) -> Response:
    inbound = await web.read_inbound(request)
    if not isinstance(inbound.data, dict):
        raise ClientError("send a schedule: {name, cron, timezone, queue: {...}, concurrency, catch_up}")
    spec = schedules.ScheduleSpec.model_validate(inbound.data)
    svc = web._runtime().service
    schedule, created = await web.blocking(service_schedules.create, svc, spec)
    data = await web.blocking(service_schedules.view, svc, schedule)
    return web.envelope(201 if created else 200, "Schedule created" if created else
                        "Schedule already exists (same spec)", data)


async def list_schedules(request: Request, params: web.Params) -> Response:
    limit = query.int_param(request, "limit", 100, 1, query.MAX_LIMIT)
    after = request.query_params.get("after")
    if after is not None and not schedules.NAME.fullmatch(after):
        raise ClientError("after: a schedule name (a DNS label)")
    page = await web.blocking(service_schedules.listing, web._runtime().service, limit=limit, after=after)
    return web.envelope(200, f"{len(page['items'])} of {page['total']} schedules", page)


async def get_schedule(request: Request, params: web.Params) -> Response:
    svc = web._runtime().service
    schedule, _ = await web.blocking(service_schedules.load, svc, _name(params))
    return web.envelope(200, "Schedule", await web.blocking(service_schedules.view, svc, schedule))


def _pausing(paused: bool) -> Any:
    async def handler(request: Request, params: web.Params) -> Response:
        svc = web._runtime().service
        schedule = await web.blocking(service_schedules.set_paused, svc, _name(params), paused)
        data = await web.blocking(service_schedules.view, svc, schedule, runs=0)
        return web.envelope(200, "Schedule paused" if paused else "Schedule resumed", data)
    return handler


async def delete_schedule(request: Request, params: web.Params) -> Response:
    name = _name(params)
    if not await web.blocking(service_schedules.delete, web._runtime().service, name):
        raise NotFound(f"schedule {name!r} not found")
    return web.envelope(200, "Schedule deleted (its queues stay)", {"name": name})


async def tick(request: Request, params: web.Params) -> Response:
    """The PingSource's event (any body), or a plain POST: start what is due now."""
    inbound = await web.read_inbound(request)
    if inbound.ce_type not in (None, constants.CE_PING):
        raise ClientError(f"the schedule tick takes {constants.CE_PING} events, not {inbound.ce_type}")
    result = await web.blocking(ticking.tick, web._runtime().service)
    return web.envelope(200, f"{len(result['runs'])} runs from {result['evaluated']} due schedules", result)


START_ROUTES = [
    web.route("POST", "/schedules/tick", tick, role=web.DELIVERY),
    web.route("POST", "/schedules", create_schedule),
    web.route("POST", "/schedules/{name}/pause", _pausing(True)),
    web.route("POST", "/schedules/{name}/resume", _pausing(False)),
    web.route("DELETE", "/schedules/{name}", delete_schedule),
]
STATUS_ROUTES = [
    web.route("GET", "/schedules", list_schedules),
    web.route("GET", "/schedules/{name}", get_schedule),
]
