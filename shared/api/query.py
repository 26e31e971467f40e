"""Query parameters and headers, read strictly: the bounds the OpenAPI document publishes.

Integers are ASCII digits only (``str.isdigit`` also takes e.g. '²', which ``int`` refuses),
and few enough for any count kept here (``int`` refuses more than 4,300).
"""

from __future__ import annotations

import re

from starlette.requests import Request

from shared.core.errors import ClientError

MAX_LIMIT = 500
MAX_OFFSET = 10**9
MAX_KEY = 255  # Idempotency-Key
MAX_QUEUE_ID = 128
CHANGE_NUMBER = re.compile(r"^[0-9]{1,18}$")  # Last-Event-ID: a change number (`seq`)


def digits(raw: str) -> bool:
    return CHANGE_NUMBER.fullmatch(raw) is not None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not digits(raw) or not low <= int(raw) <= high:
        raise ClientError(f"{name} must be an integer from {low} to {high}",
                          details=[{"loc": ["query", name], "msg": f"got {raw!r}"}])
    return int(raw)
