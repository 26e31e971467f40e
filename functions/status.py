"""`status`: queries (GET /queues, /queues/{id}, /coverage), the OpenAPI document and its Swagger UI (/docs),
the live dashboard (/ui), local events."""

from __future__ import annotations

from typing import Any

from functions_framework import aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared import runtime
from shared.adapters.bus import LocalBus
from shared.api import groups, live, openapi, query, schedules, ui, web
from shared.core import fields, lifecycle, progress
from shared.core.errors import ClientError
from shared.core.models import QueueState, QueueStatus


async def list_queues(request: Request, params: web.Params) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in {s.value for s in QueueStatus}:
        raise ClientError(f"unknown status {status!r}; one of {', '.join(s.value for s in QueueStatus)}")
    symbol = request.query_params.get("symbol")
    limit = query.int_param(request, "limit", 50, 1, query.MAX_LIMIT)
    offset = query.int_param(request, "offset", 0, 0, query.MAX_OFFSET)
    after = query.cursor(request)
    if after is not None and offset:
        raise ClientError("pass cursor or offset, not both")
    archived = query.flag(request, "archived")
    queues, total = await web.blocking(
        runtime.get().service.list, status=status, symbol=symbol.upper() if symbol else None,
        limit=limit, offset=offset, after=after, archived=archived)
    more = query.next_cursor(queues[-1].started_at or "", queues[-1].id) if len(queues) == limit else None
    return web.FastJSON({"status": "success", "message": "Queues fetched",
                         "data": [progress.view(q) for q in queues],
                         "page": {"total": total, "limit": limit, "offset": offset, "next": more}},
                        headers={"X-Total-Count": str(total)})


async def _view(state: QueueState) -> dict[str, Any]:
    """The queue as the API shows it; while it runs, with its ETA (shared/core/eta.py)."""
    shown = progress.view(state)
    if not lifecycle.closing(state.status):
        shown["eta"] = await web.blocking(runtime.get().service.eta, state)
    return shown


async def get_queue(request: Request, params: web.Params) -> Response:
    state = await web.blocking(runtime.get().service.get, params["queue_id"])
    return web.envelope(200, "Queue status", await _view(state))


async def watch_queue(request: Request, params: web.Params) -> Response:
    service = runtime.get().service
    queue_id = params["queue_id"]
    await web.blocking(service.get, queue_id)  # 404 before the stream starts
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is not None and not query.digits(raw):
        raise ClientError("Last-Event-ID must be a change number from an earlier event")

    async def load():  # type: ignore[no-untyped-def]
        return await web.blocking(service.get, queue_id)

    return StreamingResponse(live.stream(load, last_id=int(raw) if raw else None, view=_view),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def drift_report(request: Request, params: web.Params) -> Response:
    from shared.services import drift  # the launcher (kube client) only when asked

    repair = request.method == "POST"
    report = await web.blocking(drift.check, runtime.get().service, params["queue_id"], repair=repair)
    message = "In sync with the cluster" if report["in_sync"] else (
        "Drift repaired" if repair else "Drift found: POST to repair")
    return web.envelope(200, message, report)


async def queue_events(request: Request, params: web.Params) -> Response:
    bus = runtime.get().bus
    if not isinstance(bus, LocalBus):
        raise ClientError("events are on Kafka topic queue-events; this endpoint serves the local bus")
    await web.blocking(runtime.get().service.get, params["queue_id"])
    rows = await web.blocking(bus.read, params["queue_id"])
    return web.envelope(200, "Queue events", [r | {"event": r["event"]} for r in rows])


async def get_coverage(request: Request, params: web.Params) -> Response:
    symbol = query.required(request, "symbol")
    if not fields.SYMBOL_RE.fullmatch(symbol):
        raise ClientError("symbol must be 2-20 letters or digits, e.g. BTCUSDT",
                          details=[{"loc": ["query", "symbol"], "msg": f"got {symbol!r}"}])
    type_ = query.required(request, "type")
    if not fields.NAME_RE.fullmatch(type_):
        raise ClientError(f"type must match {fields.NAME_RE.pattern}, e.g. api_candles_5m",
                          details=[{"loc": ["query", "type"], "msg": f"got {type_!r}"}])
    partition = request.query_params.get("partition", "month")
    if partition not in query.PARTITIONS:
        raise ClientError(f"partition must be one of {', '.join(query.PARTITIONS)}",
                          details=[{"loc": ["query", "partition"], "msg": f"got {partition!r}"}])
    start, end = query.date_range(request, partition)
    data = await web.blocking(runtime.get().service.coverage, symbol.strip(" ").upper(), type_, start, end,
                              partition)
    return web.envelope(200, "Coverage", data)


async def openapi_json(request: Request, params: web.Params) -> Response:
    return JSONResponse(openapi.document(auth=runtime.get().settings.auth.enabled))


ROUTES = [
    web.route("GET", "/queues", list_queues),
    web.route("GET", "/queues/{queue_id}", get_queue),
    web.route("GET", "/queues/{queue_id}/events", queue_events),
    web.route("GET", "/queues/{queue_id}/watch", watch_queue),
    web.route("GET", "/queues/{queue_id}/drift", drift_report),
    web.route("POST", "/queues/{queue_id}/drift", drift_report),
    web.route("GET", "/coverage", get_coverage),
    *groups.STATUS_ROUTES,
    *schedules.STATUS_ROUTES,
    web.route("GET", "/openapi.json", openapi_json, role=web.OPEN),
    *ui.ROUTES,  # /docs (Swagger UI), /ui (live dashboard)
]
_ALL = web.table([*ROUTES, *web.common_routes(launcher=False)])


@aio.http
async def status(request: Request) -> Response:
    return await web.serve(request, function="status", routes=_ALL)
