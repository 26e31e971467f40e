"""The floor under our cold start: the bare function plus the two required packages
every function needs on its first request (pydantic for the models,
prometheus-client for the metrics), validating one small model. No project code."""

from functions_framework import aio
from prometheus_client import Counter
from pydantic import BaseModel

SEEN = Counter("bench_floor_requests", "requests")


class Report(BaseModel):
    type: str = "telemetry"
    queue_id: str = ""
    status: str | None = None


@aio.http
async def floor(request):
    Report.model_validate_json(await request.body() or b"{}")
    SEEN.inc()
    return "ok"
