"""Launchers submit rendered Jobs: to Kubernetes, or (embedded default) to a folder.

Both are idempotent: launching a Job that already exists adopts it, so a
retried start never duplicates work.
"""

from __future__ import annotations

from typing import Any, Protocol

from shared.core.config import Settings


class Launcher(Protocol):
    kind: str
    note: str
    """What a user should know about where the Jobs went."""

    def launch(self, manifests: list[dict[str, Any]]) -> list[str]:
        """Create the Jobs (adopting existing ones); return their names.

        :raises BackendUnavailable:
        """

    def delete_queue(self, queue_id: str) -> int:
        """Delete every Job (and pod) of the queue; return how many Jobs were deleted."""

    def delete_jobs(self, names: list[str]) -> None:
        """Delete these Jobs and their pods (missing ones are fine)."""

    def observe(self, queue_id: str) -> list[dict[str, Any]]:
        """The queue's Jobs as the cluster has them (for the drift check)."""

    def remaining(self, queue_id: str) -> int:
        """How many Jobs and pods of the queue still exist (0: a stop is complete)."""

    def ping(self) -> None: ...


def open_launcher(settings: Settings) -> Launcher:
    if settings.jobs.launcher == "kubernetes":
        # Imported here: the kubernetes client is heavy and only start/stop need it.
        from shared.adapters.launch.kube import KubeLauncher

        return KubeLauncher(settings.jobs)
    if settings.jobs.launcher == "local":
        from shared.adapters.launch.local import LocalLauncher

        return LocalLauncher(settings.jobs.manifests_dir)
    raise ValueError(f"JOB_LAUNCHER must be 'kubernetes' or 'local', not {settings.jobs.launcher!r}")
