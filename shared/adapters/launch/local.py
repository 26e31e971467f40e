"""The embedded default's launcher: writes each Job manifest to a folder, runs nothing."""

from __future__ import annotations

import json
import os
import shutil
import threading
from typing import Any

from shared.core import constants


class LocalLauncher:
    kind = "local"

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.note = (
            f"local launcher: Job manifests written to {directory}/<queue_id>/, "
            "nothing was run (set JOB_LAUNCHER=kubernetes to launch Jobs)"
        )

    def _queue_dir(self, queue_id: str) -> str:
        return os.path.join(self.directory, queue_id)

    def launch(self, manifests: list[dict[str, Any]]) -> list[str]:
        names = []
        for manifest in manifests:
            meta = manifest["metadata"]
            folder = self._queue_dir(meta["labels"][constants.LABEL_QUEUE_ID])
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{meta['name']}.json")
            # Two instances (or threads) launching the same Job at once each write their own file.
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w") as f:
                json.dump(manifest, f, indent=2, sort_keys=True)
            os.replace(tmp, path)
            names.append(meta["name"])
        return names

    def delete_queue(self, queue_id: str) -> int:
        folder = self._queue_dir(queue_id)
        if not os.path.isdir(folder):
            return 0
        count = len([n for n in os.listdir(folder) if n.endswith(".json")])
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def delete_jobs(self, names: list[str]) -> None:
        wanted = {f"{n}.json" for n in names}
        if not os.path.isdir(self.directory):
            return
        for queue_dir in os.listdir(self.directory):
            for entry in wanted & set(os.listdir(os.path.join(self.directory, queue_dir))):
                os.remove(os.path.join(self.directory, queue_dir, entry))

    def observe(self, queue_id: str) -> list[dict[str, Any]]:
        folder = self._queue_dir(queue_id)
        if not os.path.isdir(folder):
            return []
        found = []
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    found.append(json.load(f))
        return found

    def remaining(self, queue_id: str) -> int:
        folder = self._queue_dir(queue_id)
        return len(os.listdir(folder)) if os.path.isdir(folder) else 0

    def ping(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
