"""The per-process wiring: settings read once, backends opened once.

Functions call `runtime.get()`; tests call `runtime.reset()` after changing
the environment.
"""

from __future__ import annotations

import atexit
import functools
import threading
from dataclasses import dataclass

from shared.adapters import metrics
from shared.adapters.bus import Bus, open_bus
from shared.adapters.state import StateStore, open_store, reindex
from shared.api import web
from shared.core.config import Settings
from shared.core.constants import LEASE_COLLECTION
from shared.core.errors import BackendUnavailable
from shared.services import schedules
from shared.services.intake import Intake
from shared.services.service import QueueService


@dataclass
class Runtime:
    settings: Settings
    store: StateStore
    bus: Bus
    service: QueueService

    @property
    def networked(self) -> bool:
        """Whether any backend does network I/O (then calls run off the event loop).

        The embedded default (SQLite, local events, local launcher) answers in
        well under a millisecond, and a thread hop per call would cost more
        than the call and let requests contend for the same document.
        """
        return (self.store.backend != "sqlite" or self.bus.kind != "local"
                or self.settings.jobs.launcher != "local")

    @functools.cached_property
    def intake(self) -> Intake:
        """Telemetry's group commit (shared/services/intake.py)."""
        return Intake(self.service.telemetry_batch, offload=self.networked)

    def close(self) -> None:
        self.bus.close()
        self.store.close()
        launcher = self.service._launcher
        if launcher is not None and hasattr(launcher, "close"):
            launcher.close()


_current: Runtime | None = None
_lock = threading.Lock()


def get() -> Runtime:
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                settings = Settings.from_env()
                if settings.jobs.launcher == "kubernetes" and not settings.auth.enabled:
                    web.log.warning("no bearer tokens (QM_READ_TOKENS, QM_OPERATE_TOKENS are empty): "
                                    "anyone who reaches this function may start and stop queues")
                store = open_store(settings)
                _index(store)
                bus = open_bus(settings)
                leases = open_store(settings, LEASE_COLLECTION) if settings.jobs.limits else None
                service = QueueService(settings, store, bus, leases=leases)
                metrics.bind_state(store.count_by_status, service.job_counts,
                                   schedules=functools.partial(schedules.gauges, service))
                _current = Runtime(settings, store, bus, service)
    return _current


def _index(store: StateStore) -> None:
    """Index a first batch of what an earlier version stored without facts (the sweep does the
    rest, and rebuilds the counters after)."""
    try:
        reindex(store)
    except BackendUnavailable as e:
        web.log.warning("state not indexed yet (the sweep retries): %s", e.message)
    except Exception:  # serving must not depend on it: the sweep retries and reports
        web.log.exception("state not indexed yet (the sweep retries)")


def reset() -> None:
    global _current
    with _lock:
        if _current is not None:
            _current.close()
        _current = None


# Where the interpreter exits normally (a plain `python -m`, the gunicorn
# master, tests) this closes the backends. A gunicorn worker ending on SIGTERM
# dies by the signal after uvicorn let in-flight requests finish, and runs no
# atexit: nothing is lost there because every publish waits for Kafka's
# acknowledgement before the request answers (tests/knative/test_shutdown.py).
atexit.register(reset)
web.bind(get)
