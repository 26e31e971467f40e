"""What a stop's reply leaves running in the background: after the grace period, delete the
queues' Jobs and confirm they are stopped (the sweep finishes what this instance could not)."""

from __future__ import annotations

import asyncio

from shared.api import web

CONFIRM_S = 30.0
"""How long after the grace period this instance waits for the pods to go (then: pod events, sweep)."""


async def finish_after_grace(*queue_ids: str) -> None:
    """Give running Jobs the grace period to flush, delete them, and confirm each queue stopped,
    a second at a time while pods take their termination grace period to go."""
    rt = web._runtime()
    await asyncio.sleep(rt.settings.jobs.stop_grace_seconds)
    left = list(queue_ids)
    waited = 0.0
    while left and waited <= CONFIRM_S:
        still = []
        for queue_id in left:
            try:
                state = await web.blocking(rt.service.finish_stop, queue_id)
            except Exception:  # the sweep finishes what this could not
                web.log.exception("finishing the stop of %s failed; the sweep will retry", queue_id)
                continue
            if state.status.value == "stopping":
                still.append(queue_id)
        left = still
        if left:
            await asyncio.sleep(1.0)
            waited += 1.0
