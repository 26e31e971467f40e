"""What the schedule tests share: the PingSource of eventing/schedules.yaml as its adapter sends
it, a clock the tests move, and a schedule's payloads."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import yaml

from shared.core import clock
from tests.conftest import ROOT

MANIFEST = ROOT / "eventing" / "schedules.yaml"
NAMESPACE = "streamforge"


def ping_source() -> dict[str, Any]:
    [source] = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d and d["kind"] == "PingSource"]
    return source


def ping() -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body) of one tick: knative.dev/eventing pkg/adapter/mtping sends a binary
    CloudEvent with a fresh id, no `time`, the spec's data and content type, to the sink's uri."""
    source = ping_source()
    spec = source["spec"]
    headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-type": "dev.knative.sources.ping",
               "ce-source": f"/apis/v1/namespaces/{NAMESPACE}/pingsources/{source['metadata']['name']}",
               "content-type": spec["contentType"]}
    return spec["sink"]["uri"], headers, spec["data"].encode()


class Clock:
    """clock.now, moved by the test: `at(minutes, seconds)` past the minute it began on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        self.now = self.base
        monkeypatch.setattr(clock, "now", lambda: clock.format(self.now))

    def at(self, minutes: float, seconds: float = 0.3) -> dt.datetime:
        self.now = self.base + dt.timedelta(minutes=minutes, seconds=seconds)
        return self.now

    def fire(self, minutes: int) -> str:
        return clock.format(self.base + dt.timedelta(minutes=minutes))


def tick(client: Any, code: int = 200) -> dict[str, Any]:
    path, headers, body = ping()
    r = client("start").post(path, headers=headers, content=body)
    assert r.status_code == code, r.text
    return r.json()


def schedule(name: str = "nightly", *, cron: str = "* * * * *", time_range: str = "yesterday",
             **extra: Any) -> dict[str, Any]:
    queue = {"symbol": "BTCUSDT", "time_range": time_range, "allow_overlap": True,
             "requests": [{"target": "loader-producer", "type": "api_candles_1d"}], **extra.pop("queue", {})}
    return {"name": name, "cron": cron, "timezone": extra.pop("timezone", "UTC"), "queue": queue, **extra}


def create(client: Any, body: dict[str, Any], code: int = 201) -> dict[str, Any]:
    r = client("start").post("/schedules", json=body)
    assert r.status_code == code, r.text
    return r.json()


def shown(client: Any, name: str = "nightly") -> dict[str, Any]:
    r = client("status").get(f"/schedules/{name}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def queues(client: Any, symbol: str = "BTCUSDT") -> list[dict[str, Any]]:
    r = client("status").get("/queues", params={"symbol": symbol, "limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def finish(client: Any, queue_id: str) -> None:
    r = client("status").get(f"/queues/{queue_id}")
    for job in r.json()["data"]["jobs"]:
        body = {"type": "telemetry", "queue_id": queue_id, "job_id": job["id"], "status": "finished",
                "records_written": 10}
        assert client("telemetry").post("/", json=body).status_code == 200
    assert client("status").get(f"/queues/{queue_id}").json()["data"]["status"] == "finished"
