"""The HTTP edge every function shares: routing, envelopes, errors, probes, metrics.

Every response is the seed's envelope `{status, message, data}`. Client
mistakes get a 4xx naming the field; a backend outage gets a 503 so Knative
retries; anything unexpected a 500 with no stack trace (the log has it).
"""

from __future__ import annotations

import functools
import gc
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pydantic_core
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette import convertors, routing
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from shared.adapters import events, metrics
from shared.api import access, body
from shared.api.access import DELIVERY as DELIVERY
from shared.api.access import OPEN as OPEN
from shared.core import clock
from shared.core.config import OPERATE, READ
from shared.core.errors import (
    BackendUnavailable,
    ClientError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QueueManagerError,
    Unauthorized,
)

log = logging.getLogger("streamforge.queue_manager")

Params = dict[str, str]
Handler = Callable[[Request, Params], Awaitable[Response]]


class _AnyPath(convertors.PathConvertor):
    """functions-framework routes every path to the function as `/{path:path}`, whose `.*`
    stops at a newline: a path with an encoded line break (`%0A`) would get Starlette's
    text/plain 404 instead of the function's envelope. Registered before the framework builds
    its routes (it imports the function's module first)."""

    regex = "(?s:.*)"


convertors.register_url_convertor("path", _AnyPath())


def _unbound() -> Any:
    raise RuntimeError("shared.api.web has no runtime: shared.runtime binds it when imported")


# The composition root (shared/runtime.py) hands the edge its runtime when it is imported:
# the edge knows the services it calls, never how they were built.
_runtime: Callable[[], Any] = _unbound


def bind(runtime: Callable[[], Any]) -> None:
    global _runtime
    _runtime = runtime


class Route(routing.Route):
    """Starlette's route: its path syntax (`{queue_id}`) and matching; the handler is ours."""

    handler: Handler

    def __init__(self, method: str, template: str, handler: Handler, role: str | None) -> None:
        super().__init__(template.rstrip("/") or "/", handler, methods=[method])
        self.handler = handler
        self.role = role
        self.allows: frozenset[str] = frozenset(self.methods or ())  # GET brings HEAD, as Starlette does
        # `{name}` parameters are strings: their convertor is the identity, and is skipped
        self.literal = not self.param_convertors  # a fixed path: it shadows templates it matches
        self.plain = all(isinstance(c, convertors.StringConvertor) for c in self.param_convertors.values())


class FastJSON(JSONResponse):
    """JSON rendered by pydantic-core (about 3x json.dumps on a page of queues): compact, UTF-8."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


def route(method: str, template: str, handler: Handler, *, role: str | None = "") -> Route:
    """A route; by default GET needs a read token and anything else an operate token."""
    return Route(method, template, handler, (READ if method == "GET" else OPERATE) if role == "" else role)


def envelope(code: int, message: str, data: Any = None, errors: list[dict[str, Any]] | None = None
             ) -> JSONResponse:
    body: dict[str, Any] = {"status": "success" if code < 400 else "error", "message": message,
                            "data": data if data is not None else {}}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=code)


def reply(inbound: events.Inbound, code: int, message: str, data: Any, *, event_type: str,
          event_id: str) -> Response:
    """An envelope; to a CloudEvent, the envelope as a CloudEvent (Knative forwards replies)."""
    if inbound.ce is None:
        return envelope(code, message, data)
    event = events.make(type_=event_type, source=_runtime().settings.event_source,
                        subject=str(data.get("queue_id", "")) if isinstance(data, dict) else "",
                        id_=event_id, time=clock.now(), data={"status": "success", "message": message,
                                                         "data": data})
    headers, body = events.http_reply(event)
    return Response(body, status_code=code, headers=headers)


async def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run store/launcher/Kafka calls off the event loop when they do network I/O."""
    if not _runtime().networked:
        return fn(*args, **kwargs)
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def read_body(request: Request) -> bytes:
    return await body.read(request, _runtime().settings.max_body_bytes)


async def read_inbound(request: Request) -> events.Inbound:
    return await body.read_inbound(request, _runtime().settings.max_body_bytes)


def validation_details(error: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_input=False)]


# -- probes and metrics, answered by every function ------------------------

async def live(request: Request, params: Params) -> Response:
    return envelope(200, "alive")


async def startup(request: Request, params: Params) -> Response:
    await anyio.to_thread.run_sync(_runtime)
    return envelope(200, "started")


def ready_route(*, launcher: bool) -> Handler:
    async def ready(request: Request, params: Params) -> Response:
        report = await blocking(_runtime().service.readiness, launcher=launcher)
        down = {k: v for k, v in report.items() if v != "ok"}
        if down:
            return envelope(503, "unavailable: " + ", ".join(sorted(down)), report)
        return envelope(200, "All systems operational", report)

    return ready


async def metrics_route(request: Request, params: Params) -> Response:
    body = await blocking(generate_latest, metrics.REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def common_routes(*, launcher: bool) -> list[Route]:
    return [
        route("GET", "/health/live", live, role=OPEN),
        route("GET", "/health/startup", startup, role=OPEN),
        route("GET", "/health/ready", ready_route(launcher=launcher), role=OPEN),
        route("GET", "/metrics", metrics_route),
    ]


# -- dispatch ---------------------------------------------------------------

def table(routes: list[Route]) -> list[Route]:
    """A function's routes, fixed paths first: `/queues/plan` is never `/queues/{queue_id}`."""
    return sorted(routes, key=lambda r: not r.literal)


def _match(routes: list[Route], method: str, path: str) -> tuple[Route, Params]:
    """Starlette's `Route.matches`, minus the child scope it builds for each candidate; in a
    `table`, a fixed path that matches decides alone (its methods are the `Allow`)."""
    allowed: set[str] = set()
    fixed = False
    for r in routes:
        if fixed and not r.literal:
            break
        found = r.path_regex.match(path)
        if found is None:
            continue
        if method in r.allows:
            params = found.groupdict()
            return r, params if r.plain else {k: r.param_convertors[k].convert(v) for k, v in params.items()}
        fixed = r.literal
        allowed |= r.allows
    if allowed:
        allow = sorted(allowed)
        raise MethodNotAllowed(f"{method} {path} is not allowed; use {', '.join(allow)}", allow=allow)
    raise NotFound(f"no route for {method} {path}")


async def serve(request: Request, *, function: str, routes: list[Route]) -> Response:
    started = time.perf_counter()
    metrics.observe_first_request(function)
    path = request.scope["path"].rstrip("/") or "/"
    try:
        found, params = _match(routes, request.method, path)
        if found.role is not OPEN:
            access.check(request, _runtime().settings.auth, found.role)
        response = await found.handler(request, params)
    except ClientDisconnect:
        # the client hung up while sending: nothing to answer, and not the function's fault
        metrics.ERRORS.labels(function, "client").inc()
        response = envelope(400, "the client disconnected before its request was read")
    except ValidationError as e:
        metrics.ERRORS.labels(function, "client").inc()
        response = envelope(422, "invalid request", errors=validation_details(e))
    except ClientError as e:
        metrics.ERRORS.labels(function, "client").inc()
        response = envelope(e.status_code, e.message, errors=e.details or None)
        if isinstance(e, MethodNotAllowed):
            response.headers["Allow"] = ", ".join(e.allow)
        elif isinstance(e, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="streamforge-queue-manager"'
        if not isinstance(e, PayloadTooLarge):  # refused before its body was read (a 401, a 405)?
            await body.unread(request, _runtime().settings.max_body_bytes)
    except BackendUnavailable as e:
        metrics.ERRORS.labels(function, "backend").inc()
        log.warning("%s: %s", function, e.message)
        response = envelope(503, e.message, errors=e.details or None)
        response.headers["Retry-After"] = "1"
    except QueueManagerError as e:
        metrics.ERRORS.labels(function, "internal").inc()
        response = envelope(e.status_code, e.message)
    except Exception:
        incident = uuid.uuid4().hex[:12]
        metrics.ERRORS.labels(function, "internal").inc()
        log.exception("%s: unhandled error (incident %s)", function, incident)
        response = envelope(500, f"internal error (incident {incident}); see the function's log")
    _timer(function, response.status_code).observe(time.perf_counter() - started)
    if not _settled and response.status_code < 400:
        _settle()
    return response


_settled = False


def _settle() -> None:
    """After the first answer: what it built (the runtime, the routes, the models' validators,
    built on first use) lives as long as the process, so it moves out of the collector's way;
    a full collection then scans only what later requests made (on a page of queues: 2-3x
    shorter pauses measured)."""
    global _settled
    _settled = True
    gc.freeze()


@functools.lru_cache(maxsize=256)
def _timer(function: str, code: int) -> Any:
    """The histogram child per (function, code), looked up once: this runs on every request."""
    return metrics.REQUESTS.labels(function, str(code))
