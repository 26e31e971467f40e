"""Groups: one start payload with `symbols: [...]` starts one queue per symbol under one id.

The group is a record (`records` key `group:<id>`) written before its queues; each queue is
started through the normal start path (admission, overlap, idempotency) with the key
`<group key>/<symbol>`, so a replayed group start returns the same queues and completes one
that a backend outage interrupted half-way.

A group's status, from its queues' (`aggregate`):
- any queue loading → `running`; else any stopping → `stopping`; else any pending → `pending`;
- none active: all finished (or covered by other queues) → `finished`; else any error →
  `error`; else `stopped` (error is worse than stopped).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from pydantic import ValidationError

from shared.adapters.state import AlreadyExists
from shared.core import partitions
from shared.core.clock import now
from shared.core.errors import BackendUnavailable, Conflict, InvalidInput, LaunchRefused
from shared.core.models import QueueStart, QueueStatus
from shared.services import admission, group_state

# Group ids derived from idempotency keys: a namespace apart from the queues'.
_GROUP_NAMESPACE = uuid.UUID("b3c1e6f4-8a2d-4f7e-9c51-2d6e0a9f4b37")
PREFIX = group_state.PREFIX
MAX_SYMBOLS = 500
STOP_CHECK = 10
"""A group start re-reads its record every this many queues: a stop of the group ends it."""
MAX_JOBS = 20_000
"""Jobs per group start: each is planned, stored and admitted in the one request."""
# An error is worse than a stop; a queue covered by others loaded nothing and needs nothing.
_ENDED = {QueueStatus.FINISHED.value: 0, "covered": 0, QueueStatus.STOPPED.value: 1, QueueStatus.ERROR.value: 2}


def group_id_for(idempotency_key: str | None) -> str:
    if idempotency_key:
        return str(uuid.uuid5(_GROUP_NAMESPACE, idempotency_key))
    return str(uuid.uuid4())


def is_group(payload: Any) -> bool:
    return isinstance(payload, dict) and "symbols" in payload


def parse(payload: dict[str, Any]) -> list[QueueStart]:
    """One validated command per symbol, in the payload's order; all or nothing.

    :raises InvalidInput: `symbol` with `symbols`, a bad or repeated symbol, a bad template
    """
    if "symbol" in payload:
        raise InvalidInput("send `symbol` (one queue) or `symbols` (a group), not both",
                           details=[{"loc": ["body", "symbols"], "msg": "`symbol` is also set"}])
    symbols = payload.get("symbols")
    if not isinstance(symbols, list) or not 1 <= len(symbols) <= MAX_SYMBOLS:
        raise InvalidInput(f"symbols must be a list of 1 to {MAX_SYMBOLS} symbols",
                           details=[{"loc": ["body", "symbols"], "msg": "not a list of 1-500 items"}])
    template = {k: v for k, v in payload.items() if k != "symbols"}
    commands: list[QueueStart] = []
    bad: list[dict[str, Any]] = []
    for i, symbol in enumerate(symbols):
        try:
            commands.append(QueueStart.parse({**template, "symbol": symbol}))
        except ValidationError as e:
            for err in e.errors(include_url=False, include_input=False):
                if err["loc"][:1] == ("symbol",):
                    bad.append({"loc": ["body", "symbols", str(i)], "msg": f"{symbol!r}: {err['msg']}",
                                "type": err["type"]})
                    continue
                shown = {"loc": ["body", *map(str, err["loc"])], "msg": err["msg"], "type": err["type"]}
                if shown not in bad:  # the template's mistakes, once (not once per symbol)
                    bad.append(shown)
    if bad:
        named = sorted({str(symbols[int(d["loc"][2])]) for d in bad if d["loc"][1:2] == ["symbols"]})
        raise InvalidInput("invalid group: " + (f"bad symbol(s) {', '.join(named)}" if named else
                                                "the queue template is invalid"), details=bad[:50])
    seen: dict[str, int] = {}
    for i, command in enumerate(commands):
        if command.symbol in seen:
            raise InvalidInput(f"symbol {command.symbol} is listed twice (items {seen[command.symbol]} and {i})",
                               details=[{"loc": ["body", "symbols", str(i)], "msg": "repeated"}])
        seen[command.symbol] = i
    jobs = len(partitions.units(commands[0])) * len(commands)  # one template: each symbol as many
    if jobs > MAX_JOBS:
        raise InvalidInput(f"the group would make {jobs} Jobs ({len(commands)} symbols of "
                           f"{jobs // len(commands)}); at most {MAX_JOBS}: split it, or partition less finely",
                           details=[{"loc": ["body", "symbols"], "msg": f"{jobs} jobs over {MAX_JOBS}"}])
    return commands


validate = parse  # what a stored template (a schedule's) is checked with


def _hash(commands: list[QueueStart]) -> str:
    canonical = json.dumps([c.model_dump(mode="json") for c in commands], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _key(group_key: str, symbol: str) -> str:
    return f"{group_key}/{symbol}"


def _preflight(service: Any, commands: list[QueueStart], keys: list[str]) -> None:
    """What start would refuse, checked for every symbol before anything is stored.

    :raises InvalidInput: naming each symbol whose pipeline is invalid
    :raises Conflict: naming each symbol overlapping an active queue
    """
    invalid: list[dict[str, Any]] = []
    clashes: list[dict[str, Any]] = []
    for command, key in zip(commands, keys, strict=True):
        queue_id = service.queue_id_for(key)
        try:
            service._planned(command, queue_id)  # the units and their needs, as start plans them
        except InvalidInput as e:
            invalid.append({"loc": ["body", "symbols"], "msg": f"{command.symbol}: {e.message}"})
            continue
        try:
            admission.check_overlap(service.store, command, queue_id)
        except Conflict as e:
            clashes.append({"symbol": command.symbol, "msg": e.message})
    if invalid:
        names = [d["msg"].split(":")[0] for d in invalid]
        more = f" and {len(names) - 20} more" if len(names) > 20 else ""
        raise InvalidInput(f"invalid queue(s) for {', '.join(names[:20])}{more}", details=invalid[:50])
    if clashes:
        more = f" and {len(clashes) - 20} more" if len(clashes) > 20 else ""
        raise Conflict(f"{len(clashes)} symbol(s) overlap active queues: "
                       + ", ".join(c["symbol"] for c in clashes[:20]) + more, details=clashes[:50])


def start(service: Any, commands: list[QueueStart] | dict[str, Any], *, idempotency_key: str | None
          ) -> dict[str, Any]:
    """Record the group, then start each queue (the commands `parse` made, or the payload);
    `{group_id, queues, created}`.

    :raises Conflict: the key was used for a different group, or a symbol overlaps an active queue
    :raises InvalidInput: a bad payload, or a symbol's pipeline is invalid (nothing stored)
    :raises BackendUnavailable: some queues may be started; repeat with the same key
    """
    if isinstance(commands, dict):
        commands = parse(commands)
    group_id = group_id_for(idempotency_key)
    group_key = idempotency_key or f"group/{group_id}"
    keys = [_key(group_key, c.symbol) for c in commands]
    digest = _hash(commands)
    record_key = PREFIX + group_id
    stored = service.store.records.get(record_key)
    created = stored is None
    if stored is None:
        _preflight(service, commands, keys)
        first = commands[0]
        doc = {"id": group_id, "symbols": [c.symbol for c in commands],
               "queue_ids": [service.queue_id_for(k) for k in keys], "created_at": now(),
               "request_hash": digest, "key": group_key, "time_range": first.time_range,
               "requests": [{"target": r.target, "type": r.type} for r in first.requests]}
        try:
            service.store.records.put(record_key, json.dumps(doc), rev=None)
        except AlreadyExists:  # a concurrent start with the same key won
            created, stored = False, service.store.records.get(record_key)
    if stored is not None and json.loads(stored[0])["request_hash"] != digest:
        raise Conflict(f"idempotency key {idempotency_key!r} was used for a different group payload")
    queues = []
    covered: list[str] = []
    refused: dict[str, str] = {}
    for i, (command, key) in enumerate(zip(commands, keys, strict=True)):
        queue_id = service.queue_id_for(key)
        if i % STOP_CHECK == 0 and group_state.record(service, group_id).get("stopped_at"):
            queues += [{"symbol": c.symbol, "queue_id": service.queue_id_for(k), "status": "not_started"}
                       for c, k in zip(commands[i:], keys[i:], strict=True)]
            break  # the group was stopped meanwhile: what it has not started, it does not start
        try:
            result = service.start(command, idempotency_key=key, group=group_id)
            shown = result.state.status.value if result.state is not None else "covered"
        except LaunchRefused:  # recorded and failed: the group shows it, its other queues go on
            shown = QueueStatus.ERROR.value
        except Conflict as e:  # an overlapping queue started since the check: this one waits for a replay
            shown, refused[command.symbol] = "refused", e.message
        except BackendUnavailable as e:
            e.details.append({"group_id": group_id, "retry": "repeat the start with the same key"})
            raise
        if shown == "covered":
            covered.append(command.symbol)
        queues.append({"symbol": command.symbol, "queue_id": queue_id, "status": shown,
                       **({"message": refused[command.symbol]} if command.symbol in refused else {})})
    group_state.note_outcomes(service, group_id, covered, refused,
                              [q["symbol"] for q in queues if q["status"] not in ("refused", "not_started")])
    if group_state.record(service, group_id).get("stopped_at"):  # stopped while this start ran
        for queue in queues:  # the queues started after the stop read the group: stopped too
            if queue["status"] in (QueueStatus.PENDING.value, QueueStatus.LOADING.value):
                queue["status"] = service.stop(queue["queue_id"], reason="the group was stopped")[0].status.value
    return {"group_id": group_id, "queues": queues, "created": created,
            **({"refused": refused} if refused else {})}


# The group as it stands, its stop and retry: shared/services/group_state.py.
aggregate, listing, record = group_state.aggregate, group_state.listing, group_state.record
status, stop, retry = group_state.status, group_state.stop, group_state.retry
