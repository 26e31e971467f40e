"""Reading a request's body within the size limit, and answering cleanly when it is over it."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request

from shared.adapters import events
from shared.api import query
from shared.core.errors import PayloadTooLarge

_BODY = "streamforge.body"  # the body, once read, kept in the ASGI scope for later readers
_HEADERS = "streamforge.headers"
# A client that sends its body without waiting for `100 Continue` (Python's urllib, most HTTP
# libraries) only reads an early answer (a 413, or a 401 given before the body is read) if the
# body it is still sending is read: closing on unread data resets the connection. Up to this
# much (16 times the limit, at least 16 MiB, at most 64 MiB) is read and dropped for the
# answer's sake, for at most DRAIN_SECONDS; past either, the connection is reset as before.
DRAIN_SECONDS = 10.0


def _drain_budget(limit: int) -> int:
    return min(64 << 20, max(16 * limit, 16 << 20))


async def _drain(chunks: Any, budget: int, seconds: float = DRAIN_SECONDS) -> None:
    with anyio.move_on_after(seconds):
        try:
            async for chunk in chunks:
                budget -= len(chunk)
                if budget < 0:
                    return
        except ClientDisconnect:  # it gave up sending: nobody reads the 413 either
            return


UNREAD_SECONDS = 2.0


async def unread(request: Request, limit: int) -> None:
    """Drop a body nobody read (the request was refused first), so a client still sending reads
    the answer: only a body that is declared, within the drain's budget, for UNREAD_SECONDS."""
    if _BODY in request.scope or _waits_for_continue(request):
        return
    declared = _declared(request)
    if declared is not None:
        if not 0 < declared <= _drain_budget(limit):
            return
    elif "transfer-encoding" not in headers(request):
        return
    with contextlib.suppress(RuntimeError):  # the stream was already taken
        await _drain(request.stream(), _drain_budget(limit), UNREAD_SECONDS)


def headers(request: Request) -> dict[str, str]:
    """The request's headers as one dict (names lower-cased, as ASGI servers give them; the
    last of a repeated one), made once per request for whoever reads them."""
    cached: dict[str, str] | None = request.scope.get(_HEADERS)
    if cached is None:
        cached = request.scope[_HEADERS] = {k.decode("latin-1"): v.decode("latin-1")
                                            for k, v in request.scope["headers"]}
    return cached


def _declared(request: Request) -> int | None:
    """The declared Content-Length, if it is a length (ASCII digits, few enough)."""
    raw = headers(request).get("content-length")
    return int(raw) if raw is not None and query.digits(raw) else None


def _waits_for_continue(request: Request) -> bool:
    """With `Expect: 100-continue` the client waits: reading would only ask for the body."""
    return any(k == b"expect" and v.lower() == b"100-continue" for k, v in request.scope["headers"])


async def read(request: Request, limit: int) -> bytes:
    cached: bytes | None = request.scope.get(_BODY)
    if cached is not None:  # read before, by the all-in-one router
        return cached
    declared = _declared(request)
    if declared is not None:
        if declared > limit:
            if not _waits_for_continue(request) and declared <= _drain_budget(limit):
                await _drain(request.stream(), _drain_budget(limit))
            raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
        body = await request.body()  # the server enforces the declared length
    else:
        chunks, size = [], 0
        stream = request.stream()
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                if not _waits_for_continue(request):
                    await _drain(stream, _drain_budget(limit) - size)
                raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
            chunks.append(chunk)
        body = b"".join(chunks)
    request.scope[_BODY] = body
    return body


async def read_inbound(request: Request, limit: int) -> events.Inbound:
    return events.decode(headers(request), await read(request, limit), lowered=True)
