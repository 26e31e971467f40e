"""Bad input gets a 4xx with a message, never a 5xx, and loses nothing stored."""

import copy

import pytest


def _with(payload, **changes):
    out = copy.deepcopy(payload)
    out.update(changes)
    return out


CASES = {
    "malformed json": (b'{"symbol": "BTCUSDT",', 400, "not valid JSON"),
    "empty body": (b"", 400, "empty body"),
    "array body": (b"[1, 2]", 422, "invalid request"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_raw_bodies(client, name):
    body, code, text = CASES[name]
    r = client("start").post("/queues/start", content=body, headers={"content-type": "application/json"})
    assert r.status_code == code
    assert text in r.json()["message"]
    assert r.json()["status"] == "error"


def _bad_payloads(historical):
    req = historical["requests"]
    return {
        "wrong symbol type": (_with(historical, symbol=123), "symbol"),
        "bad symbol": (_with(historical, symbol="BTC/USDT"), "symbol"),
        "inverted dates": (_with(historical, time_range="2024-06-30:2024-06-01"), "time_range"),
        "impossible date": (_with(historical, time_range="2024-02-30:2024-03-01"), "time_range"),
        "bad range format": (_with(historical, time_range="2024-06-01..2024-06-30"), "time_range"),
        "unknown target": (_with(historical, requests=[{"target": "miner", "type": "x"}]), "target"),
        "no requests": (_with(historical, requests=[]), "requests"),
        "too many requests": (_with(historical, requests=req * 10), "requests"),
        "requests not a list": (_with(historical, requests="all"), "requests"),
        "bad collection name": (
            _with(historical, requests=[{**req[4], "collection_output": "1bad name"}]), "collection_output"),
        "unknown top-level field": (_with(historical, sybmol="BTCUSDT"), "sybmol"),
        "records type": (_with(historical, requests=[{**req[0], "interval": {"x": 1}}]), "interval"),
        "huge string": (_with(historical, requests=[{**req[0], "interval": "x" * 5000}]), "interval"),
    }


def test_invalid_payloads_get_422_naming_the_field(client, historical):
    start = client("start")
    for name, (payload, field) in _bad_payloads(historical).items():
        r = start.post("/queues/start", json=payload)
        assert r.status_code == 422, (name, r.text)
        body = r.json()
        assert body["status"] == "error"
        assert field in r.text, (name, r.text)
        assert "Traceback" not in r.text


def test_oversized_body_is_413(client, historical):
    big = _with(historical, requests=[{**historical["requests"][0], f"p{i}": "x" * 1000} for i in range(1)])
    big["padding"] = "x" * 300_000
    r = client("start").post("/queues/start", json=big)
    assert r.status_code == 413
    assert "limit" in r.json()["message"]


def test_unknown_queue_ids_are_404(client):
    assert client("status").get("/queues/nope").status_code == 404
    r = client("stop").post("/queues/stop?queue_id=nope")
    assert r.status_code == 404
    assert r.json()["message"] == "queue 'nope' not found"


def test_wrong_method_and_path(client):
    assert client("start").get("/queues/start").status_code == 405
    assert client("status").post("/queues").status_code == 405
    assert client("status").get("/nowhere").status_code == 404


def test_bad_input_does_not_touch_stored_queue(client, historical):
    start = client("start")
    queue_id = start.post("/queues/start", json=historical, headers={"Idempotency-Key": "a"}).json()["data"]["queue_id"]
    before = client("status").get(f"/queues/{queue_id}").json()["data"]
    start.post("/queues/start", json=_with(historical, symbol=5), headers={"Idempotency-Key": "a"})
    client("telemetry").post("/", json={"type": "telemetry", "queue_id": queue_id, "records_written": -5})
    client("telemetry").post("/", json={"type": "telemetry", "queue_id": queue_id, "status": "exploded"})
    assert client("status").get(f"/queues/{queue_id}").json()["data"] == before


def test_bad_query_parameters(client):
    status = client("status")
    assert status.get("/queues?limit=0").status_code == 400
    assert status.get("/queues?limit=abc").status_code == 400
    assert status.get("/queues?status=sleeping").status_code == 400
