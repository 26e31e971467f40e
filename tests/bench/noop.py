"""The baseline: a bare functions-framework function in the same server mode (--asgi)."""

from functions_framework import aio


@aio.http
async def noop(request):
    await request.body()
    return "ok"
