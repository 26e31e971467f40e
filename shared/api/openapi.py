"""The OpenAPI document, generated from the pydantic models.

Start and plan carry the seed's payloads (`shared/examples/`) as named
examples, so Swagger UI (`GET /docs`) can send them as they are. Each
operation names the function that serves it; with `QM_PUBLIC_URLS` set
(`shared/api/public.py`), its `servers` point "Try it out" at that function's URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from shared import examples
from shared.api import group_operations, public, schedule_operations
from shared.api.operations import Envelope, operations, ref, reply, secured
from shared.core import constants
from shared.core.models import (
    JobState,
    QueueCreate,
    QueueStart,
    QueueState,
    QueueStop,
    Telemetry,
)
from shared.core.schedules import ScheduleSpec

_MODELS: tuple[type[BaseModel], ...] = (QueueCreate, QueueStart, QueueStop, Telemetry, QueueState,
                                        JobState, Envelope, ScheduleSpec)
_REF = "#/components/schemas/{model}"
_SUMMARIES = {
    "historical": "Historical pipeline (seed example 1)",
    "realtime": "Real-time pipeline (seed example 2)",
    "legacy": "The seed's original single-loader QueueCreate",
}


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def seed_examples() -> dict[str, dict[str, Any]]:
    """The seed payloads as OpenAPI named examples, in the seed's order."""
    named = {}
    for name in examples.NAMES:
        value = examples.load(name)
        jobs = len(value.get("requests", [])) or 1
        named[name] = {"summary": _SUMMARIES.get(name, name),
                       "description": f"{value['symbol']} {value['time_range']}: {jobs} job(s); "
                                      f"shared/examples/{name}.json",
                       "value": value}
    return named


def _queue_body() -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [ref("QueueStart"), ref("QueueCreate"), group_operations.group_start_schema()]},
        "examples": seed_examples()}}}


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_COMMON = {
    "/health/live": {"get": {"operationId": "live", "summary": "Liveness", "tags": ["probes"],
                             "responses": {"200": reply("Alive")}}},
    "/health/ready": {"get": {"operationId": "ready", "summary": "Readiness: every configured backend",
                              "tags": ["probes"],
                              "responses": {"200": reply("Ready"), "503": reply("A backend is down")}}},
    "/health/startup": {"get": {"operationId": "startup", "summary": "Startup", "tags": ["probes"],
                                "responses": {"200": reply("Started"), "503": reply("A backend is down")}}},
    "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "tags": ["probes"],
                         "responses": {"200": {"description": "Prometheus text exposition format 0.0.4",
                                               "content": _TEXT}}}},
}


def _description(urls: Mapping[str, str]) -> str:
    where = ", ".join(f"{f} → {urls.get(f) or 'this origin'}" for f in public.FUNCTIONS)
    return (
        "Start, stop and watch StreamForge pipeline queues. Live dashboard: [/ui](/ui).\n\n"
        f"As CloudEvents: {constants.CE_START_QUEUE}, {constants.CE_STOP_QUEUE}.\n\n"
        "**Where \"Try it out\" sends requests.** In production each function (start, stop, telemetry, "
        "status) is its own service; every operation here says which one serves it and lists that "
        f"function's URL in its `servers`. Set them with the env `{public.ENV}` on the status function, "
        'a JSON object such as `{"start": "https://start.example", "stop": "https://stop.example"}`; '
        "a function left out (and by default, all of them) is reached on this page's own origin, which "
        f"suits `make run` and a path-routing ingress. Now: {where}. A function on another origin must "
        "allow CORS for the browser to call it.")


def document(servers: list[dict[str, str]] | None = None, *, urls: Mapping[str, str] | None = None,
             auth: bool = False) -> dict[str, Any]:
    """The document; with `auth` (tokens configured), each guarded operation says so."""
    urls = public.URLS if urls is None else urls
    paths: dict[str, dict[str, Any]] = {}
    for path, method, function, operation in [*operations(_queue_body()), *group_operations.operations(),
                                          *schedule_operations.operations()]:
        operation = {**operation, "x-function": function}
        if auth:
            operation = secured(path, method, operation)
        if urls:  # explicit per-operation servers, so none falls back to another function's URL
            operation["servers"] = [{"url": urls.get(function) or "/",
                                     "description": f"the {function} function"}]
        paths.setdefault(path, {})[method] = operation
    paths.update(_COMMON)
    if auth:
        paths["/metrics"] = {"get": secured("/metrics", "get", _COMMON["/metrics"]["get"])}
    return {
        "openapi": "3.1.0",
        "info": {"title": "StreamForge Queue Manager", "version": "0.1.0", "description": _description(urls)},
        "servers": servers or [{"url": urls.get("status") or "/",
                                "description": "the status function (probes: any function)"}],
        "tags": [{"name": "queues"}, {"name": "coverage"}, {"name": "jobs"}, {"name": "events"},
                 {"name": "groups"}, {"name": "schedules"}, {"name": "probes"}],
        "paths": paths,
        "components": {"schemas": _schemas(), **({"securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "A read or operate token (QM_READ_TOKENS, QM_OPERATE_TOKENS)"}}} if auth else {})},
    }
