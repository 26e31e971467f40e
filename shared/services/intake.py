"""Group commit for telemetry: reports that arrive together are merged together.

Under load, many deliveries are in flight at once (KafkaSource without
ordering, or several partitions), and many of them concern the same queue.
Each request parks its report here; at the next turn of the event loop the
whole group is merged by `QueueService.telemetry_batch` (one write per queue,
one commit), and every request answers with its own outcome. Nothing is
acknowledged before its write is committed. Alone, a report waits one loop
turn.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import anyio.to_thread

from shared.core.models import Telemetry
from shared.services.reports import Result

Merge = Callable[[list[Telemetry]], list[Result]]
Group = list[tuple[Telemetry, "asyncio.Future[str]"]]


class Intake:
    def __init__(self, merge: Merge, *, offload: bool) -> None:
        """`offload`: merge in a worker thread (the store does network I/O)."""
        self._merge = merge
        self._offload = offload
        # Per event loop: futures belong to the loop that made them.
        self._waiting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Group] = weakref.WeakKeyDictionary()
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, report: Telemetry) -> str:
        """The report's outcome once its group is committed.

        :raises QueueManagerError: what merging this report met (4xx, 503).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        group = self._waiting.setdefault(loop, [])
        group.append((report, future))
        if len(group) == 1:
            # Runs after the callbacks already due in this turn: the requests read in
            # the same turn have parked their reports by then.
            loop.call_soon(self._flush, loop)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        group = self._waiting.pop(loop, [])
        if not group:
            return
        if self._offload:
            task = loop.create_task(self._merge_in_thread(group))
            self._running.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._running.discard)
        else:
            self._settle(group, self._run(group))

    async def _merge_in_thread(self, group: Group) -> None:
        try:
            outcomes = await anyio.to_thread.run_sync(self._run, group)
        except BaseException:  # cancelled (shutdown): the waiters must not hang
            for _, future in group:
                future.cancel()
            raise
        self._settle(group, outcomes)

    def _run(self, group: Group) -> list[Result | Exception]:
        try:
            return list(self._merge([report for report, _ in group]))
        except Exception as e:  # a bug: every waiter fails as a lone request would (500, logged)
            return [e] * len(group)

    @staticmethod
    def _settle(group: Group, outcomes: list[Result | Exception]) -> None:
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():  # the client went away meanwhile
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
