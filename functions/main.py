"""One entry point for the image: the function is chosen by `QM_FUNCTION` at start.

Buildpacks and `func` build one image with one target (`handle`); each Knative
Service sets `QM_FUNCTION` to `start`, `stop`, `telemetry`, `status` (or
`all`), and only that function's module is imported.
"""

from __future__ import annotations

import importlib
import os

from functions_framework import aio
from starlette.requests import Request
from starlette.responses import Response

FUNCTIONS = ("start", "stop", "telemetry", "status", "all")
NAME = os.environ.get("QM_FUNCTION", "all")
if NAME not in FUNCTIONS:
    raise SystemExit(f"QM_FUNCTION must be one of {', '.join(FUNCTIONS)}, not {NAME!r}")
_target = getattr(importlib.import_module(f"functions.{NAME}"), NAME)


@aio.http
async def handle(request: Request) -> Response:
    return await _target(request)
