"""Query parameters and headers, read strictly: the bounds the OpenAPI document publishes.

Integers are ASCII digits only (``str.isdigit`` also takes e.g. '²', which ``int`` refuses),
and few enough for any count kept here (``int`` refuses more than 4,300).
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from starlette.requests import Request

from shared.core.errors import ClientError

MAX_LIMIT = 500
# An offset costs what it skips; past this, page with `cursor` (a keyset: the same cost at any depth).
MAX_OFFSET = 10_000
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


def flag(request: Request, name: str) -> bool:
    """A boolean parameter: `true` or `false` (absent: false).

    :raises ClientError: another value.
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise ClientError(f"{name} must be true or false", details=[{"loc": ["query", name], "msg": f"got {raw!r}"}])


MAX_CURSOR = 512
CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,512}$")


def next_cursor(started_at: str, key: str) -> str:
    """An opaque page cursor: where the last queue of a page sits in the listing's order."""
    return base64.urlsafe_b64encode(json.dumps([started_at, key], separators=(",", ":")).encode()).decode().rstrip("=")


def cursor(request: Request) -> tuple[str, str] | None:
    """The `cursor` parameter, as the (started_at, key) a page starts after.

    :raises ClientError: not a cursor this server made.
    """
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    try:
        if not CURSOR_RE.fullmatch(raw):
            raise ValueError
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ValueError
    except (ValueError, binascii.Error):
        raise ClientError("cursor is not one this server gave: pass `next` from a listing as it is",
                          details=[{"loc": ["query", "cursor"], "msg": "not a cursor"}]) from None
    return value[0], value[1]
