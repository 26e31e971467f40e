"""Bearer tokens: read and operate roles, 401/403 in the envelope, probes and deliveries open."""

from __future__ import annotations

import logging

import pytest

from shared import runtime
from shared.core.config import Settings

READ, OPERATE = "r-7f3a9c2e1b", "o-4d8e6b0a5c"
pytestmark = pytest.mark.backend("sqlite", reason="access control is the edge's, the same on both stores")


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QM_READ_TOKENS", f"{READ}, another-read")
    monkeypatch.setenv("QM_OPERATE_TOKENS", OPERATE)
    runtime.reset()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _started(client, historical) -> str:
    r = client("start").post("/queues/start", json=historical, headers=bearer(OPERATE))
    assert r.status_code == 200, r.text
    return r.json()["data"]["queue_id"]


def test_off_by_default_on_the_embedded_run(client, historical):
    assert not Settings.from_env({}).auth.enabled
    r = client("start").post("/queues/start", json=historical)
    assert r.status_code == 200, r.text


def test_a_read_token_lists_but_cannot_stop(tokens, client, historical):
    queue_id = _started(client, historical)
    listed = client("status").get("/queues", headers=bearer(READ))
    assert listed.status_code == 200 and queue_id in [q["id"] for q in listed.json()["data"]]
    assert client("status").get(f"/queues/{queue_id}", headers=bearer(READ)).status_code == 200
    refused = client("stop").post(f"/queues/{queue_id}/stop", headers=bearer(READ))
    assert refused.status_code == 403 and refused.json()["status"] == "error"
    assert "operate token" in refused.json()["message"]
    assert client("status").get(f"/queues/{queue_id}", headers=bearer(READ)).json()["data"]["status"] != "stopped"


def test_an_operate_token_stops(tokens, client, historical):
    queue_id = _started(client, historical)
    r = client("stop").post(f"/queues/{queue_id}/stop", headers=bearer(OPERATE))
    assert r.status_code == 200 and r.json()["data"]["status"] in ("stopping", "stopped")
    assert client("status").get("/queues", headers=bearer(OPERATE)).status_code == 200  # operate may read


@pytest.mark.parametrize("headers", [{}, bearer("nope"), {"Authorization": f"Basic {READ}"},
                                     {"Authorization": "Bearer "}, bearer(READ + "x")])
def test_no_or_unknown_token_is_a_401_with_a_challenge(tokens, client, historical, headers):
    for call in (lambda: client("status").get("/queues", headers=headers),
                 lambda: client("start").post("/queues/start", json=historical, headers=headers),
                 lambda: client("status").get("/metrics", headers=headers)):
        r = call()
        assert r.status_code == 401, r.text
        assert r.json()["status"] == "error" and "bearer token" in r.json()["message"]
        assert r.headers["www-authenticate"].startswith("Bearer ")
    assert client("status").get("/queues", headers=bearer(READ)).json()["data"] == []  # nothing started


def test_probes_pages_and_the_document_stay_open(tokens, client):
    for function in ("start", "stop", "telemetry", "status"):
        for path in ("/health/live", "/health/ready", "/health/startup"):
            assert client(function).get(path).status_code == 200, (function, path)
    for path in ("/ui", "/docs", "/ui/config.json", "/openapi.json"):
        assert client("status").get(path).status_code == 200, path


def _ce(type_: str, id_: str) -> dict[str, str]:
    """Binary-mode CloudEvent headers, as Knative's dispatchers send them."""
    return {"ce-specversion": "1.0", "ce-type": type_, "ce-source": "/test", "ce-id": id_,
            "content-type": "application/json"}


def test_cloudevents_from_knative_need_no_token(tokens, client, historical):
    queue_id = _started(client, historical)
    job_id = client("status").get(f"/queues/{queue_id}", headers=bearer(READ)).json()["data"]["jobs"][0]["id"]
    report = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": "running"}
    r = client("telemetry").post("/", json=report, headers=_ce("dev.knative.kafka.event", "p0-o1"))
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "applied", r.text
    structured = {"specversion": "1.0", "type": "dev.streamforge.queue.telemetry", "source": "/job", "id": "t2",
                  "datacontenttype": "application/json", "data": report}
    r = client("telemetry").post("/telemetry", json=structured,
                                 headers={"content-type": "application/cloudevents+json"})
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "duplicate", r.text
    assert client("stop").post("/sweep", headers=_ce("dev.knative.sources.ping", "tick-1")).status_code == 200
    stop = client("stop").post("/", json={"queue_id": queue_id}, headers=_ce("dev.streamforge.queue.stop", "s1"))
    assert stop.status_code == 200, stop.text


@pytest.mark.parametrize("function", ["all", "start", "stop", "telemetry"])
def test_plain_json_at_a_delivery_route_needs_an_operate_token(tokens, client, historical, function):
    body = {"queue_id": "q"} if function == "stop" else historical
    assert client(function).post("/", json=body).status_code == 401
    assert client(function).post("/", json=body, headers=bearer(READ)).status_code == 403
    assert client("status").get("/queues", headers=bearer(READ)).json()["data"] == []  # nothing started
    assert client(function).post("/", json=body, headers=bearer(OPERATE)).status_code < 500
    if function in ("stop", "all"):
        assert client(function).post("/sweep").status_code == 401


def test_a_token_outside_ascii_matches_its_env_value(monkeypatch, client):
    monkeypatch.setenv("QM_READ_TOKENS", "pässwörd")
    runtime.reset()
    r = client("status").get("/queues", headers={"Authorization": "Bearer pässwörd".encode()})
    assert r.status_code == 200, r.text


def test_the_document_declares_the_scheme_when_tokens_are_on(tokens, client):
    doc = client("status").get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    start = doc["paths"]["/queues/start"]["post"]
    assert start["security"] == [{"bearer": []}] and {"401", "403"} <= set(start["responses"])
    listing = doc["paths"]["/queues"]["get"]
    assert "401" in listing["responses"] and "403" not in listing["responses"]
    assert "CloudEvent" in doc["paths"]["/telemetry"]["post"]["description"]
    assert "security" not in doc["paths"]["/health/live"]["get"]


def test_tokens_never_reach_the_log_or_a_repr(tokens, client, caplog):
    caplog.set_level(logging.DEBUG)
    client("status").get("/queues", headers=bearer("wrong-" + OPERATE))
    client("status").get("/queues", headers=bearer(READ))
    settings = runtime.get().settings
    assert OPERATE not in repr(settings) and READ not in repr(settings)
    assert OPERATE not in caplog.text and READ not in caplog.text


@pytest.mark.parametrize("ctype", ["application/cloudevents-batch+json", "Application/CloudEvents+JSON"])
def test_only_what_the_decoder_reads_as_a_cloudevent_passes_without_a_token(tokens, client, historical, ctype):
    r = client("all").post("/", json=historical, headers={"content-type": ctype})
    assert r.status_code == 401, r.text
    assert client("status").get("/queues", headers=bearer(READ)).json()["data"] == []
