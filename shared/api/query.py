"""Query parameters and headers, read strictly: the bounds the OpenAPI document publishes.

Integers are ASCII digits only (``str.isdigit`` also takes e.g. '²', which ``int`` refuses),
and few enough for any count kept here (``int`` refuses more than 4,300).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re

from starlette.requests import Request

from shared.core.errors import ClientError
from shared.core.fields import DATE_PATTERN

MAX_LIMIT = 500
# An offset costs what it skips; past this, page with `cursor` (a keyset: the same cost at any depth).
MAX_OFFSET = 10_000
MAX_KEY = 255  # Idempotency-Key
MAX_QUEUE_ID = 128
CHANGE_NUMBER = re.compile(r"^[0-9]{1,18}$")  # Last-Event-ID: a change number (`seq`)
DATE_RE = re.compile(rf"^{DATE_PATTERN}$")


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


MAX_DAYS = 3_700  # `GET /coverage`: periods per answer, day by day (ten years) ...
MAX_MONTHS = 1_200  # ... or month by month (a century)
PARTITIONS = ("month", "day")


def required(request: Request, name: str) -> str:
    """A parameter that must be there.

    :raises ClientError: absent or empty.
    """
    raw = request.query_params.get(name)
    if not raw:
        raise ClientError(f"{name} is required", details=[{"loc": ["query", name], "msg": "missing"}])
    return raw


def date_param(request: Request, name: str) -> dt.date:
    """A required calendar date, `YYYY-MM-DD` (a real one: no 2023-02-29).

    :raises ClientError: absent, or not a real date.
    """
    raw = required(request, name)
    if not DATE_RE.fullmatch(raw):
        raise ClientError(f"{name} must be a real date, YYYY-MM-DD",
                          details=[{"loc": ["query", name], "msg": f"got {raw!r}"}])
    return dt.date.fromisoformat(raw)


def date_range(request: Request, partition: str) -> tuple[dt.date, dt.date]:
    """`from` and `to`, in order, spanning at most MAX_DAYS days or MAX_MONTHS months.

    :raises ClientError:
    """
    start, end = date_param(request, "from"), date_param(request, "to")
    if start > end:
        raise ClientError(f"from ({start}) is after to ({end})",
                          details=[{"loc": ["query", "from"], "msg": "after to"}])
    if partition == "day":
        count, most = (end - start).days + 1, MAX_DAYS
    else:
        count, most = (end.year - start.year) * 12 + end.month - start.month + 1, MAX_MONTHS
    if count > most:
        raise ClientError(f"from {start} to {end} is {count:,} {partition}s; ask at most {most:,} at a time",
                          details=[{"loc": ["query", "to"], "msg": f"over {most} periods"}])
    return start, end


def idempotency_key(request: Request, ce_identity: str | None) -> str | None:
    """The start's key: the Idempotency-Key header, else the CloudEvent's source and id.

    :raises ClientError: a key of no or too many characters
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        key = ce_identity
    if key is not None and not 0 < len(key) <= MAX_KEY:
        raise ClientError(f"Idempotency-Key must be 1-{MAX_KEY} characters")
    return key
