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
from shared.api import public
from shared.core import constants
from shared.core.models import (
    Envelope,
    JobState,
    QueueCreate,
    QueueStart,
    QueueState,
    QueueStatus,
    QueueStop,
    Telemetry,
)

_MODELS: tuple[type[BaseModel], ...] = (QueueCreate, QueueStart, QueueStop, Telemetry, QueueState,
                                        JobState, Envelope)
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _reply(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Envelope")}}}


_ERRORS: dict[str, Any] = {"400": _reply("Malformed request"), "422": _reply("Invalid field(s)"),
           "503": _reply("A backend is down; retry")}


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
        "schema": {"oneOf": [_ref("QueueStart"), _ref("QueueCreate")]},
        "examples": seed_examples()}}}


_QUEUE_ID = {"name": "queue_id", "in": "path", "required": True, "schema": {"type": "string"}}
_STOP_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"reason": {"type": "string", "maxLength": 1024}}},
    "examples": {"reason": {"summary": "With a reason", "value": {"reason": "stopped from the docs"}}}}}}


def _drift(method: str, summary: str) -> tuple[str, str, str, dict[str, Any]]:
    responses: dict[str, Any] = {"200": _reply("In sync, drift found, or drift repaired"),
                                 "404": _reply("Unknown queue"), **_ERRORS}
    return "/queues/{queue_id}/drift", method, "status", {
        "summary": summary, "tags": ["queues"], "parameters": [_QUEUE_ID], "responses": responses}


def _operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(path, method, serving function, operation)."""
    key = {"name": "Idempotency-Key", "in": "header", "required": False,
           "description": "The same key returns the same queue and launches nothing twice",
           "schema": {"type": "string", "maxLength": 255}}
    return [
        ("/queues/start", "post", "start", {
            "summary": "Start a queue", "tags": ["queues"],
            "parameters": [key, {"name": "dry_run", "in": "query", "required": False,
                                 "description": "true: answer the plan, launch nothing",
                                 "schema": {"type": "boolean"}}],
            "requestBody": _queue_body(),
            "responses": {"200": _reply("Queue started"), "409": _reply("Key reused"), **_ERRORS}}),
        ("/queues/plan", "post", "start", {
            "summary": "Plan a queue: its DAG, manifests and first wave, launching nothing", "tags": ["queues"],
            "requestBody": _queue_body(),
            "responses": {"200": _reply("Queue plan"), **_ERRORS}}),
        ("/queues/{queue_id}/retry", "post", "start", {
            "summary": "Retry a failed queue's unfinished jobs", "tags": ["queues"], "parameters": [_QUEUE_ID],
            "responses": {"200": _reply("Queue retried"), "404": _reply("Unknown queue"),
                          "409": _reply("Only a failed queue can be retried"), **_ERRORS}}),
        ("/queues/{queue_id}/stop", "post", "stop", {
            "summary": "Stop a queue", "tags": ["queues"], "parameters": [_QUEUE_ID], "requestBody": _STOP_BODY,
            "responses": {"200": _reply("Queue stopped (or already terminal)"), "404": _reply("Unknown queue"),
                          **_ERRORS}}),
        ("/queues/stop", "post", "stop", {
            "summary": "Stop a queue (the seed's form)", "tags": ["queues"],
            "parameters": [{"name": "queue_id", "in": "query", "required": True, "schema": {"type": "string"}}],
            "requestBody": _STOP_BODY,
            "responses": {"200": _reply("Queue stopped"), "404": _reply("Unknown queue"), **_ERRORS}}),
        ("/telemetry", "post", "telemetry", {
            "summary": "Report telemetry (normally delivered by KafkaSource)", "tags": ["jobs"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Telemetry")}}},
            "responses": {"200": _reply("Applied, duplicate or ignored"), **_ERRORS}}),
        ("/queues", "get", "status", {
            "summary": "List queues, newest first", "tags": ["queues"],
            "parameters": [
                {"name": "status", "in": "query", "schema": {"enum": [s.value for s in QueueStatus]}},
                {"name": "symbol", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": 500, "default": 50}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": _reply("Queues fetched; `page` has total, limit, offset"), **_ERRORS}}),
        ("/queues/{queue_id}", "get", "status", {
            "summary": "One queue with its jobs, their progress and waiting reasons", "tags": ["queues"],
            "parameters": [_QUEUE_ID],
            "responses": {"200": _reply("Queue status"), "404": _reply("Unknown queue")}}),
        ("/queues/{queue_id}/watch", "get", "status", {
            "summary": "Live updates (Server-Sent Events) until the queue ends",
            "description": "Events: `queue` (the whole queue view) after every change, and the change "
                           "events themselves (`dev.streamforge.*`, `id` = change number). Reconnect with "
                           "`Last-Event-ID` to resume. Swagger UI shows the body only when the stream "
                           "ends; use `/ui`, `sfq watch` or `curl -N` to follow a running queue.",
            "tags": ["queues"],
            "parameters": [_QUEUE_ID, {"name": "Last-Event-ID", "in": "header", "required": False,
                                       "schema": {"type": "string", "pattern": "^[0-9]+$"}}],
            "responses": {"200": {"description": "text/event-stream",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          "404": _reply("Unknown queue")}}),
        _drift("get", "Compare the stored jobs with the cluster's Jobs"),
        _drift("post", "Compare with the cluster and repair the stored state"),
        ("/queues/{queue_id}/events", "get", "status", {
            "summary": "The queue's outgoing events (local bus only)", "tags": ["queues"],
            "parameters": [_QUEUE_ID],
            "responses": {"200": _reply("Queue events"), "400": _reply("Events are on Kafka"),
                          "404": _reply("Unknown queue")}}),
    ]


_COMMON = {
    "/health/live": {"get": {"summary": "Liveness", "tags": ["probes"], "responses": {"200": _reply("Alive")}}},
    "/health/ready": {"get": {"summary": "Readiness: every configured backend", "tags": ["probes"],
                              "responses": {"200": _reply("Ready"), "503": _reply("A backend is down")}}},
    "/health/startup": {"get": {"summary": "Startup", "tags": ["probes"], "responses": {"200": _reply("Started")}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["probes"],
                         "responses": {"200": {"description": "text exposition format"}}}},
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


def document(servers: list[dict[str, str]] | None = None, *, urls: Mapping[str, str] | None = None
             ) -> dict[str, Any]:
    urls = public.URLS if urls is None else urls
    paths: dict[str, dict[str, Any]] = {}
    for path, method, function, operation in _operations():
        operation = {**operation, "x-function": function}
        if urls:  # explicit per-operation servers, so none falls back to another function's URL
            operation["servers"] = [{"url": urls.get(function) or "/",
                                     "description": f"the {function} function"}]
        paths.setdefault(path, {})[method] = operation
    paths.update(_COMMON)
    return {
        "openapi": "3.1.0",
        "info": {"title": "StreamForge Queue Manager", "version": "0.1.0", "description": _description(urls)},
        "servers": servers or [{"url": urls.get("status") or "/",
                                "description": "the status function (probes: any function)"}],
        "tags": [{"name": "queues"}, {"name": "jobs"}, {"name": "probes"}],
        "paths": paths,
        "components": {"schemas": _schemas()},
    }
