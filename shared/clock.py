"""The one clock: ISO-8601 UTC with milliseconds and a Z, as stored and emitted."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
