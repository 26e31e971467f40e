"""What every server the tests start needs: a free loopback port, and to die with the
test process."""

from __future__ import annotations

import ctypes
import socket
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the process that started it dies, even
    by SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing happens)."""

    def preexec() -> None:  # pragma: no cover - runs in the child
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
        except OSError:
            pass

    return preexec
