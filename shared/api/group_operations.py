"""The OpenAPI side of groups (shared/api/groups.py): the `symbols` start body and the
`/groups` operations."""

from __future__ import annotations

from typing import Any

from shared.api import query
from shared.api.operations import answers
from shared.core import fields
from shared.core.models import QueueStart
from shared.services.groups import MAX_SYMBOLS

_REF = "#/components/schemas/{model}"
GROUP_ID = {"name": "group_id", "in": "path", "required": True, "description": "A group id, as start answered it",
            "schema": {"type": "string", "minLength": 1, "maxLength": query.MAX_QUEUE_ID}}


STATUS_RULE = ("`status`: `running` if any queue is loading; else `stopping` if any is stopping; else `pending` "
               "if any is pending; once none is active: `finished` if every queue finished (or other queues "
               "covered all its periods), else `error` if any failed, else `stopped`. `progress`: jobs "
               "finished / jobs in the group; `counts`: queues by status.")


def group_start_schema() -> dict[str, Any]:
    """QueueStart with `symbols` (1-500, unique once upper-cased) in place of `symbol`."""
    schema = QueueStart.model_json_schema(ref_template=_REF)
    schema.pop("$defs", None)
    properties = {k: v for k, v in schema["properties"].items() if k != "symbol"}
    properties = {"symbols": {
        "type": "array", "minItems": 1, "maxItems": MAX_SYMBOLS, "uniqueItems": True,
        "items": {"type": "string", "pattern": fields.SYMBOL_RE.pattern},
        "description": "One queue per symbol, under one group id; the other fields are each queue's. "
                       "Answered with {group_id, queues: [{symbol, queue_id, status}], created}",
        "examples": [["BTCUSDT", "ETHUSDT"]]}, **properties}
    required = ["symbols", *(r for r in schema.get("required", []) if r != "symbol")]
    return {**schema, "title": "QueueGroupStart", "properties": properties, "required": required}


def _group(operation_id: str, summary: str, ok: str, *codes: str, **described: str) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "tags": ["groups"], "parameters": [GROUP_ID],
            "responses": answers(ok, *codes, **described)}


_STOP_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False,
    "properties": {"reason": {"type": "string", "maxLength": fields.MAX_STRING}}}}}}


def operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        ("/groups", "get", "status", {
            "operationId": "listGroups", "summary": "List groups, by id", "tags": ["groups"],
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": query.MAX_LIMIT, "default": 50}},
                {"name": "after", "in": "query", "description": "`page.next` of the page before",
                 "schema": {"type": "string", "pattern": "^[0-9a-f-]{36}$"}}],
            "responses": answers("Groups fetched; `page.next` is the cursor (null on the last page)", "400",
                                 "503")}),
        ("/groups/{group_id}", "get", "status", {**_group(
            "getGroup", "A group: its status (from its queues'), progress and queues",
            "Group status", "404", "503"), "description": STATUS_RULE}),
        ("/groups/{group_id}/stop", "post", "stop", {
            **_group("stopGroup", "Stop every active queue of a group", "Group stopping, or already ended",
                     "400", "404", "413", "503"), "requestBody": _STOP_BODY}),
        ("/groups/{group_id}/retry", "post", "start", _group(
            "retryGroup", "Retry every failed queue of a group (the others are left alone)", "Group retried",
            "404", "503")),
    ]
