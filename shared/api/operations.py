"""The operations of the OpenAPI document: each with every status code its handler can answer.

Parameters and bodies come from the validators' own bounds (`shared.core.fields`, the models,
the query limits of `shared.api.query`), so the document can't promise what the server refuses.
Links (start → get → watch → stop → retry) let a client, or a stateful fuzzer, follow a queue.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api import query
from shared.core import constants, fields
from shared.core.models import QueueStatus, QueueStop

Operation = tuple[str, str, str, dict[str, Any]]  # (path, method, serving function, operation)
_REF = "#/components/schemas/{model}"

_WHY = {
    "400": "Malformed request: not JSON, nested too deep, a bad query parameter or header",
    "404": "Unknown queue",
    "409": "Conflict",
    "413": "Body over the size limit",
    "422": "Invalid field(s); `errors` names each",
    "503": "A backend (state store, cluster, Kafka) is down; retry (Retry-After)",
}


class Envelope(BaseModel):
    """Every response: the seed's {status, message, data}, and `errors` naming each bad field."""

    model_config = ConfigDict(defer_build=True)

    status: Literal["success", "error"] = Field(examples=["success"])
    message: str
    data: Any = None
    errors: list[dict[str, Any]] | None = None


def ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def reply(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Envelope")}}}


def answers(ok: str, *codes: str, **described: str) -> dict[str, Any]:
    """200 with `ok`, then each error code in the envelope (its own description, or the usual)."""
    out = {"200": reply(ok)}
    for code in codes:
        out[code] = reply(_WHY[code])
    for code, text in described.items():
        out[code.lstrip("_")] = reply(text)
    return out


_BODY_ERRORS = ("400", "413", "422", "503")
_QUEUE_ID_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": query.MAX_QUEUE_ID}
QUEUE_ID = {"name": "queue_id", "in": "path", "required": True, "description": "A queue id, as start answered it",
            "schema": _QUEUE_ID_SCHEMA}
_STOP_BODY = {"required": False, "content": {"application/json": {
    "schema": {"type": "object", "additionalProperties": False, "properties": {
        "reason": QueueStop.model_json_schema()["properties"]["reason"],
        "queue_id": {"anyOf": [_QUEUE_ID_SCHEMA, {"type": "null"}],
                     "description": "Used when neither the path nor the query names the queue"}}},
    "examples": {"reason": {"summary": "With a reason", "value": {"reason": "stopped from the docs"}}}}}}
_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "The same key returns the same queue and launches nothing twice",
        "schema": {"type": "string", "minLength": 1, "maxLength": query.MAX_KEY}}

_TELEMETRY_TYPE = {"type": "object", "required": ["type"], "properties": {"type": {"const": "telemetry"}}}
_TELEMETRY = {"allOf": [_TELEMETRY_TYPE, ref("Telemetry")]}
# One Server-Sent Event as a client parses it (the `retry:` hint alone, or `id`, `event`, `data`).
_SSE_EVENT = {"type": "object", "properties": {
    "event": {"type": "string"}, "id": {"type": "string", "pattern": "^[0-9]+$"}, "retry": {"type": "integer"},
    "data": {"type": "string", "contentMediaType": "application/json"}}}


def _links(field: str, *targets: str) -> dict[str, Any]:
    """Links from an answer whose `data.<field>` names the queue, to operations on that queue."""
    return {t[0].upper() + t[1:]: {"operationId": t, "parameters": {"queue_id": f"$response.body#/data/{field}"}}
            for t in targets}


def _with_links(responses: dict[str, Any], *targets: str, field: str = "queue_id") -> dict[str, Any]:
    responses["200"] = {**responses["200"], "links": _links(field, *targets)}
    return responses


def _start(operation_id: str, summary: str, queue_body: dict[str, Any]) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "tags": ["queues"], "parameters": [_KEY],
            "description": "`?dry_run=true` answers what `POST /queues/plan` answers, launching nothing.",
            "requestBody": queue_body,
            "responses": _with_links(answers("Queue started", *_BODY_ERRORS,
                                             _409="The idempotency key was used for another queue, or an "
                                                  "active queue holds an overlapping range"),
                                     "getQueue", "watchQueue", "stopQueue")}


def _drift(method: str, summary: str) -> Operation:
    return "/queues/{queue_id}/drift", method, "status", {
        "operationId": f"{method}Drift", "summary": summary, "tags": ["queues"], "parameters": [QUEUE_ID],
        "responses": answers("In sync, drift found, or drift repaired", "404", "503")}


def _param(name: str, description: str, schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_COVERAGE = {
    "operationId": "getCoverage", "summary": "What is loaded of a symbol's data type, period by period",
    "description": "Each period (calendar month or day) of [from, to]: `loaded`, `in_flight`, `failed`, "
                   "`partial` (loads cover some of it), `missing` (on ArangoDB also `present`: the "
                   "collection exists, loaded by nothing the manager recorded), with the queue behind it, its "
                   "datasets, records and the gaps its telemetry reported; `summary` counts the statuses. "
                   f"At most {query.MAX_MONTHS:,} months or {query.MAX_DAYS:,} days per call.",
    "tags": ["coverage"],
    "parameters": [
        _param("symbol", "e.g. BTCUSDT (any case)", {"type": "string", "pattern": fields.SYMBOL_RE.pattern}),
        _param("type", "The data type, e.g. api_candles_5m", {"type": "string", "pattern": fields.NAME_RE.pattern}),
        _param("from", "First day, YYYY-MM-DD", {"type": "string", "pattern": query.DATE_RE.pattern}),
        _param("to", "Last day, YYYY-MM-DD, not before `from`", {"type": "string", "pattern": query.DATE_RE.pattern}),
        _param("partition", "Periods of a month or of a day", {"enum": list(query.PARTITIONS),
                                                               "default": "month"}, required=False)],
    "responses": answers("Coverage: `summary` and `periods`", "503",
                         _400="A missing or bad parameter, `from` after `to`, or too many periods")}
DELIVERED = {"/", "/telemetry", "/sweep"}  # Knative sends CloudEvents here, with no token


def secured(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    """With tokens configured: the bearer scheme, and the 401/403 every guarded call can get."""
    role = "read" if method == "get" else "operate"
    note = f"Needs a **{role}** token" + (" (a CloudEvent, as Knative delivers it, needs none)."
                                          if path in DELIVERED else ".")
    return {**operation, "security": [{"bearer": []}],
            "description": (operation.get("description", "") + f"\n\n{note}").strip(),
            "responses": {**operation["responses"], "401": reply("No bearer token, or an unknown one"),
                          **({"403": reply("A read token; this needs an operate token")}
                             if role == "operate" else {})}}


def operations(queue_body: dict[str, Any]) -> list[Operation]:
    stopped = answers("Queue stopped, stopping, or already ended", "400", "404", "413", "422", "503")
    return [
        ("/queues/start", "post", "start", _start("startQueue", "Start a queue", queue_body)),
        ("/queues", "post", "start", _start("createQueue", "Start a queue (the same as /queues/start)",
                                            queue_body)),
        ("/queues/plan", "post", "start", {
            "operationId": "planQueue", "summary": "Plan a queue: its DAG, manifests and first wave, launching "
                                                  "nothing", "tags": ["queues"], "requestBody": queue_body,
            "responses": answers("Queue plan", *_BODY_ERRORS)}),
        ("/queues/{queue_id}/retry", "post", "start", {
            "operationId": "retryQueue", "summary": "Retry a failed queue's unfinished jobs", "tags": ["queues"],
            "parameters": [QUEUE_ID],
            "responses": _with_links(answers("Queue retried", "404", "503",
                                             _409="Only a failed queue can be retried"), "getQueue")}),
        ("/queues/{queue_id}/repair", "post", "start", {
            "operationId": "repairQueue", "summary": "Re-run the periods whose telemetry reported gaps",
            "description": "The finished loading jobs that reported `gaps`, and the jobs that depend on them, "
                           "run again (new Job names); `repaired` lists them.",
            "tags": ["queues"], "parameters": [QUEUE_ID],
            "responses": _with_links(answers("Queue repairing", "404", "503",
                                             _409="The queue is still active, archived, or has no gaps"),
                                     "getQueue", "watchQueue")}),
        ("/queues/{queue_id}/stop", "post", "stop", {
            "operationId": "stopQueue", "summary": "Stop a queue", "tags": ["queues"], "parameters": [QUEUE_ID],
            "requestBody": _STOP_BODY,
            "responses": _with_links(stopped, "getQueue", "retryQueue", "repairQueue")}),
        ("/queues/stop", "post", "stop", {
            "operationId": "stopQueueByQuery", "summary": "Stop a queue (the seed's form)", "tags": ["queues"],
            "parameters": [{**QUEUE_ID, "in": "query"}], "requestBody": _STOP_BODY,
            "responses": answers("Queue stopped, stopping, or already ended", "400", "404", "413", "422", "503")}),
        ("/sweep", "post", "stop", {
            "operationId": "sweep", "summary": "Finish stops, time out overdue queues, launch what can run "
                                               "(a PingSource calls it)", "tags": ["queues"],
            "responses": answers("Sweep done", "503")}),
        ("/telemetry", "post", "telemetry", {
            "operationId": "reportTelemetry", "summary": "Report telemetry (normally delivered by KafkaSource)",
            "description": "A body whose `type` is `telemetry` is a report; anything else on the topic (the "
                           "manager's own commands, other producers) is acknowledged and ignored, so "
                           "KafkaSource does not retry it.",
            "tags": ["jobs"], "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "if": _TELEMETRY_TYPE, "then": ref("Telemetry")}}}},
            "responses": answers("Applied, duplicate or ignored", *_BODY_ERRORS)}),
        ("/queues", "get", "status", {
            "operationId": "listQueues", "summary": "List queues, newest first", "tags": ["queues"],
            "parameters": [
                {"name": "status", "in": "query", "schema": {"enum": [s.value for s in QueueStatus]}},
                {"name": "symbol", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": query.MAX_LIMIT, "default": 50}},
                {"name": "offset", "in": "query", "description": "Kept for old clients, up to "
                 f"{query.MAX_OFFSET:,}: prefer `cursor`, which costs the same at any depth",
                 "schema": {"type": "integer", "minimum": 0, "maximum": query.MAX_OFFSET, "default": 0}},
                {"name": "archived", "in": "query", "description": "List the archive: queues that ended "
                 "more than RETENTION_DAYS ago (each is still read by id at /queues/{queue_id})",
                 "schema": {"type": "boolean", "default": False}},
                {"name": "cursor", "in": "query", "description": "`page.next` of the page before: the "
                 "listing goes on after its last queue, however many were started since",
                 "schema": {"type": "string", "pattern": query.CURSOR_RE.pattern}}],
            "responses": answers("Queues fetched; `page` has total, limit, offset and `next` (a cursor, "
                                 "null on the last page)", "400", "503")}),
        ("/queues/{queue_id}", "get", "status", {
            "operationId": "getQueue", "summary": "One queue with its jobs, their progress and waiting reasons",
            "tags": ["queues"], "parameters": [QUEUE_ID],
            "responses": _with_links(answers("Queue status", "404", "503"), "watchQueue", "stopQueue",
                                     field="id")}),
        ("/queues/{queue_id}/watch", "get", "status", {
            "operationId": "watchQueue", "summary": "Live updates (Server-Sent Events) until the queue ends",
            "description": "Events: `queue` (the whole queue view) after every change, and the change "
                           "events themselves (`dev.streamforge.*`, `id` = change number). Reconnect with "
                           "`Last-Event-ID` to resume. A stream also ends after the server's watch limit "
                           "(before Knative's request timeout); clients reconnect. Swagger UI shows the body "
                           "only when the stream ends; use `/ui`, `sfq watch` or `curl -N` to follow a "
                           "running queue.",
            "tags": ["queues"],
            "parameters": [QUEUE_ID, {"name": "Last-Event-ID", "in": "header", "required": False,
                                      "description": "The `id` of the last event received",
                                      "schema": {"type": "string", "pattern": "^(?:[0-9]{1,18})?$"}}],
            "responses": {"200": {"description": "The queue's events, until it ends",
                                  "content": {"text/event-stream": {"schema": _SSE_EVENT}}},
                          **{c: reply(_WHY[c]) for c in ("400", "404", "503")}}}),
        ("/coverage", "get", "status", _COVERAGE),
        _drift("get", "Compare the stored jobs with the cluster's Jobs"),
        _drift("post", "Compare with the cluster and repair the stored state"),
        ("/queues/{queue_id}/events", "get", "status", {
            "operationId": "queueEvents", "summary": "The queue's outgoing events (local bus only)",
            "tags": ["queues"], "parameters": [QUEUE_ID],
            "responses": answers("Queue events", "404", "503", _400="Events are on Kafka, not the local bus")}),
        ("/", "post", "any", {
            "operationId": "deliver", "summary": "CloudEvents as Knative delivers them, and each function's "
                                                 "own payload",
            "description": f"Binary or structured CloudEvents: {constants.CE_START_QUEUE} (start), "
                           f"{constants.CE_STOP_QUEUE} (stop), {constants.CE_TELEMETRY} and KafkaSource records "
                           f"(telemetry), {constants.CE_PING} (the sweep), Job events from ApiServerSource. "
                           "A plain JSON body is what the function serving `/` takes (the all-in-one routes "
                           "it by shape). Replies to a CloudEvent are CloudEvents.",
            "tags": ["events"], "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "anyOf": [*queue_body["content"]["application/json"]["schema"]["oneOf"], _TELEMETRY]}}}},
            "responses": answers("Done; the envelope says what", *_BODY_ERRORS, "404", "409")}),
    ]
