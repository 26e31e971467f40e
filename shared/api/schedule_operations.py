"""The OpenAPI side of schedules (shared/api/schedules.py)."""

from __future__ import annotations

from typing import Any

from shared.api import query
from shared.api.operations import answers, ref
from shared.core import schedules

NAME = {"name": "name", "in": "path", "required": True, "description": "The schedule's name",
        "schema": {"type": "string", "pattern": schedules.NAME.pattern}}


UNREADABLE = "Stored in a form this version cannot read: delete it and create it again"


def _named(operation_id: str, summary: str, ok: str, *codes: str, unreadable: bool = True) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "tags": ["schedules"], "parameters": [NAME],
            "responses": answers(ok, *codes, **({"_409": UNREADABLE} if unreadable else {}))}


def operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        ("/schedules", "post", "start", {
            "operationId": "createSchedule", "tags": ["schedules"],
            "summary": "Set up a schedule: a cron expression in a time zone and the queue it starts at each "
                       "fire time (its time_range may be relative: yesterday, last 7 days, previous month)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref("ScheduleSpec")}}},
            "responses": {**answers("The same spec was there already", "400", "409", "413", "422", "503"),
                          "201": answers("Schedule created")["200"]}}),
        ("/schedules", "get", "status", {
            "operationId": "listSchedules", "summary": "List schedules, by name", "tags": ["schedules"],
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": query.MAX_LIMIT, "default": 100}},
                {"name": "after", "in": "query", "description": "`next_after` of the page before",
                 "schema": {"type": "string", "pattern": schedules.NAME.pattern}}],
            "responses": answers("Schedules; `next_after` is the cursor (null on the last page)", "400", "503")}),
        ("/schedules/{name}", "get", "status", _named(
            "getSchedule", "A schedule: its next fire times, its last runs with their queues, what it missed",
            "Schedule", "404", "503")),
        ("/schedules/{name}", "delete", "start", _named(
            "deleteSchedule", "Delete a schedule (its queues stay)", "Schedule deleted", "404", "503",
            unreadable=False)),
        ("/schedules/{name}/pause", "post", "start", _named(
            "pauseSchedule", "Pause a schedule: no fire time starts anything", "Schedule paused", "404", "503")),
        ("/schedules/{name}/resume", "post", "start", _named(
            "resumeSchedule", "Resume a schedule from now (what fell while paused is not run)", "Schedule resumed",
            "404", "503")),
        ("/schedules/tick", "post", "start", {
            "operationId": "tickSchedules", "tags": ["schedules"],
            "summary": "Start every schedule whose fire time has come: what the PingSource of "
                       "eventing/schedules.yaml sends each minute (any body)",
            "responses": answers("Runs started, per schedule", "400", "413", "503")}),
    ]
