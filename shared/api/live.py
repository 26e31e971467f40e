"""Live updates of one queue as Server-Sent Events, read from the state store.

Fed from the document (its change `seq` and `history`), not from process
memory, so it works whichever instance a client reaches. Each change event has
`id: <seq>`; a client that reconnects with `Last-Event-ID` gets every change
after it (or, if it fell further behind than the history keeps, a `resync`),
then a `queue` event with the whole state. While the queue runs, a `queue`
event follows every change, counters included, so progress bars move.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from shared.core import progress
from shared.core.lifecycle import TERMINAL_QUEUE
from shared.core.models import QueueState

HEARTBEAT_S = 15.0


def frame(event: str, data: Any, id_: int | None = None) -> str:
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _changes(state: QueueState, after: int) -> list[str]:
    return [frame(h["type"], h["data"], h["seq"]) for h in state.history if h["seq"] > after]


async def _plain(state: QueueState) -> dict[str, Any]:
    return progress.view(state)


async def stream(load: Callable[[], Awaitable[QueueState]], *, last_id: int | None,
                 poll_s: float = 0.5, view: Callable[[QueueState], Awaitable[dict[str, Any]]] = _plain,
                 ) -> AsyncIterator[str]:
    """`view`: what a `queue` event shows of the state (the API's view, with its ETA)."""
    state = await load()
    yield "retry: 2000\n\n"
    if last_id is not None:
        oldest = state.history[0]["seq"] if state.history else state.seq + 1
        if last_id < oldest - 1:
            yield frame("resync", {"reason": "missed more changes than the history keeps"})
        else:
            for chunk in _changes(state, last_id):
                yield chunk
    yield frame("queue", await view(state), state.seq)
    seen, stamp, idle = state.seq, state.updated_at, 0.0
    while state.status not in TERMINAL_QUEUE:
        await asyncio.sleep(poll_s)
        state = await load()
        if state.updated_at != stamp:
            for chunk in _changes(state, seen):
                yield chunk
            yield frame("queue", await view(state), state.seq)
            seen, stamp, idle = state.seq, state.updated_at, 0.0
        else:
            idle += poll_s
            if idle >= HEARTBEAT_S:
                yield ": heartbeat\n\n"
                idle = 0.0
