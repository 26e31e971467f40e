"""What every use case works with: the settings and the ports (state, bus, launcher, slots).

The use-case modules (`launching`, `reports`, `stopping`, `admission`) receive a `Context` and
call each other's functions; none of them knows `QueueService`, the facade the functions and
the sweep use, which is a `Context` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.adapters.bus import Bus
from shared.adapters.launch import Launcher, open_launcher
from shared.adapters.state import StateStore
from shared.core.config import Settings
from shared.services.leases import Slots


@dataclass
class Context:
    settings: Settings
    store: StateStore
    bus: Bus
    _launcher: Launcher | None = None
    leases: StateStore | None = None
    """Where concurrency slots are leased; needed only when JOB_LIMITS are set."""

    @property
    def slots(self) -> Slots | None:
        limits = self.settings.jobs.limits
        if not limits or self.leases is None:
            return None
        return Slots(self.leases, limits, self.settings.jobs.lease_ttl_seconds)

    @property
    def launcher(self) -> Launcher:
        # Built on first use, so functions that never launch never import the kube client.
        if self._launcher is None:
            self._launcher = open_launcher(self.settings)
        return self._launcher

    @property
    def source(self) -> str:
        return self.settings.event_source
