"""What every server the tests start needs: a free loopback port, and to die with the
test process."""

from __future__ import annotations

import ctypes
import socket
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets ``sig`` when the process that started it dies, even
    by SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing happens). None off the
    main thread: the signal fires when the *thread* that forked ends, which for a worker
    thread would be long before the process does."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def preexec() -> None:  # pragma: no cover - runs in the child
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
        except OSError:
            pass

    return preexec
