"""functions/main.py's `handle` plus an atexit hook that appends the pid of the process
running it to $QM_ATEXIT_LOG: tells which processes of a functions-framework server
(gunicorn master, UvicornWorker) run Python's atexit handlers when they end.

Registered at import, like shared/runtime.py's `atexit.register(reset)`: functions-framework
imports the source in the gunicorn master, and the forked worker inherits the handlers."""

from __future__ import annotations

import atexit
import os

from functions.main import handle  # noqa: F401  (the target)


def _record() -> None:
    path = os.environ.get("QM_ATEXIT_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\n")


atexit.register(_record)
