"""The OpenAPI document, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared import constants
from shared.models import (
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


_ERRORS = {"400": _reply("Malformed request"), "422": _reply("Invalid field(s)"),
           "503": _reply("A backend is down; retry")}


def document(servers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    queue_id = {"name": "queue_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "StreamForge Queue Manager", "version": "0.1.0",
                 "description": "Start, stop and watch StreamForge pipeline queues. "
                                f"As CloudEvents: {constants.CE_START_QUEUE}, {constants.CE_STOP_QUEUE}."},
        "servers": servers or [{"url": "/"}],
        "paths": {
            "/queues/start": {"post": {
                "summary": "Start a queue",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 255}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": [_ref("QueueStart"), _ref("QueueCreate")]}}}},
                "responses": {"200": _reply("Queue started"), "409": _reply("Key reused"), **_ERRORS}}},
            "/queues/stop": {"post": {
                "summary": "Stop a queue",
                "parameters": [{"name": "queue_id", "in": "query", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _reply("Queue stopped"), "404": _reply("Unknown queue"), **_ERRORS}}},
            "/telemetry": {"post": {
                "summary": "Report telemetry (normally delivered by KafkaSource)",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("Telemetry")}}},
                "responses": {"200": _reply("Applied, duplicate or ignored"), **_ERRORS}}},
            "/queues": {"get": {
                "summary": "List queues, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in QueueStatus]}},
                    {"name": "symbol", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                "maximum": 500, "default": 50}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _reply("Queues fetched"), **_ERRORS}}},
            "/queues/{queue_id}": {"get": {
                "summary": "One queue with its jobs", "parameters": [queue_id],
                "responses": {"200": _reply("Queue status"), "404": _reply("Unknown queue")}}},
            "/health/live": {"get": {"summary": "Liveness", "responses": {"200": _reply("Alive")}}},
            "/health/ready": {"get": {"summary": "Readiness: every configured backend",
                                      "responses": {"200": _reply("Ready"), "503": _reply("A backend is down")}}},
            "/health/startup": {"get": {"summary": "Startup", "responses": {"200": _reply("Started")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition format"}}}},
        },
        "components": {"schemas": _schemas()},
    }
