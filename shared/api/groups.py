"""The HTTP side of groups (shared/services/groups.py): a start with `symbols`, and
`/groups` to follow, stop and retry them. Each function adds its list of routes."""

from __future__ import annotations

import re
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from shared.adapters import events
from shared.api import query, stops, web
from shared.core import fields
from shared.core.errors import ClientError
from shared.services import groups

CE_GROUP_STARTED = "dev.streamforge.group.started"
CE_GROUP_STOPPED = "dev.streamforge.group.stopped"
_CURSOR = re.compile(r"^[0-9a-f-]{36}$")

is_group = groups.is_group


def _runtime() -> Any:
    return web._runtime()  # bound by the composition root, as for every handler of the edge


async def start_group(request: Request, inbound: events.Inbound) -> Response:
    """A start payload with `symbols` (called by the start function's start handler)."""
    if request.query_params.get("dry_run") in ("1", "true"):
        raise ClientError("dry_run plans one queue: send `symbol`, not `symbols`")
    commands = groups.parse(inbound.data)
    key = query.idempotency_key(request, inbound.ce_identity)
    data = await web.blocking(groups.start, _runtime().service, commands, idempotency_key=key)
    message = (f"Group started: {len(data['queues'])} queue(s)" if data["created"]
               else "Group already started (same idempotency key)")
    return web.reply(inbound, 200, message, data, event_type=CE_GROUP_STARTED,
                     event_id=f"group/{data['group_id']}/started")


async def get_group(request: Request, params: web.Params) -> Response:
    data = await web.blocking(groups.status, _runtime().service, params["group_id"])
    return web.envelope(200, "Group status", data)


async def list_groups(request: Request, params: web.Params) -> Response:
    limit = query.int_param(request, "limit", 50, 1, query.MAX_LIMIT)
    after = request.query_params.get("after")
    if after is not None and not _CURSOR.fullmatch(after):
        raise ClientError("after must be a group id (`page.next` of the page before)",
                          details=[{"loc": ["query", "after"], "msg": "not a group id"}])
    rows, more = await web.blocking(groups.listing, _runtime().service, limit=limit, after=after)
    return web.FastJSON({"status": "success", "message": "Groups fetched", "data": rows,
                         "page": {"limit": limit, "next": more}})


async def stop_group(request: Request, params: web.Params) -> Response:
    inbound = await web.read_inbound(request)
    body = inbound.data if inbound.data is not None else {}
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise ClientError('body must be empty or a JSON object such as {"reason": "..."}')
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > fields.MAX_STRING):
        raise ClientError(f"reason must be a string of at most {fields.MAX_STRING} characters")
    queues = await web.blocking(groups.stop, _runtime().service, params["group_id"], reason=reason)
    changed = sum(q["changed"] for q in queues)
    data = {"group_id": params["group_id"], "queues": queues}
    stopping = [q["queue_id"] for q in queues if q["status"] == "stopping"]
    if stopping:
        message = f"Group stopping: {changed} queue(s) told to stop; stopped once their Jobs are gone"
    else:
        message = f"Group stopped: {changed} queue(s) stopped" if changed else "Group already ended; nothing to stop"
    response = web.reply(inbound, 200, message, data, event_type=CE_GROUP_STOPPED,
                         event_id=f"group/{params['group_id']}/stopped")
    if stopping:
        response.background = BackgroundTask(stops.finish_after_grace, *stopping)
    return response


async def retry_group(request: Request, params: web.Params) -> Response:
    queues = await web.blocking(groups.retry, _runtime().service, params["group_id"])
    retried = [q["queue_id"] for q in queues if q["retried"]]
    return web.envelope(200, f"Group retried: {len(retried)} failed queue(s) re-run" if retried
                        else "No queue of the group has failed; nothing retried",
                        {"group_id": params["group_id"], "retried": retried, "queues": queues})


START_ROUTES = [web.route("POST", "/groups/{group_id}/retry", retry_group)]
STOP_ROUTES = [web.route("POST", "/groups/{group_id}/stop", stop_group)]
STATUS_ROUTES = [web.route("GET", "/groups", list_groups), web.route("GET", "/groups/{group_id}", get_group)]
