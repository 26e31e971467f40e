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


DEEP = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize("target, path", [("start", "/queues/start"), ("telemetry", "/telemetry"),
                                          ("all", "/queues/start"), ("all", "/telemetry"), ("all", "/")])
@pytest.mark.parametrize("body", [DEEP, b'{"a":' * 70 + b"1" + b"}" * 70], ids=["1000 arrays", "70 objects"])
def test_deeply_nested_json_is_a_400(client, target, path, body):
    r = client(target).post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "nested more than 64 levels" in r.json()["message"]


def test_nesting_within_the_bound_is_read(client):
    body = b'{"a":' * 60 + b"1" + b"}" * 60  # valid JSON, just not a queue: a 422, not a 400
    r = client("start").post("/queues/start", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("query", ["limit=%C2%B2", "offset=%C2%B2", "limit=%D9%A3", "offset=" + "9" * 5000])
def test_non_ascii_or_huge_digits_in_the_query_are_a_400(client, query):
    r = client("status").get(f"/queues?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "error"


@pytest.mark.parametrize("headers, query", [({"Last-Event-ID": "\u00b2".encode()}, ""),
                                            ({}, "?last_event_id=%C2%B2"), ({}, "?last_event_id=" + "1" * 5000)])
def test_non_ascii_or_huge_last_event_id_is_a_400(client, historical, headers, query):
    queue_id = client("start").post("/queues/start", json=historical).json()["data"]["queue_id"]
    r = client("status").get(f"/queues/{queue_id}/watch{query}", headers=headers)
    assert r.status_code == 400, r.text
    assert "Last-Event-ID" in r.json()["message"]


def test_plain_telemetry_posted_to_the_all_in_one_root_is_telemetry(client):
    r = client("all").post("/", json={"type": "telemetry", "queue_id": "nope", "status": "loading"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["outcome"] == "unknown_queue"


@pytest.mark.parametrize("target, method, path, allow", [
    ("start", "GET", "/queues/start", "POST"),
    ("status", "POST", "/queues", "GET, HEAD"),
    ("status", "DELETE", "/health/live", "GET, HEAD"),
])
def test_405_says_what_is_allowed(client, target, method, path, allow):
    r = client(target).request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert r.json()["status"] == "error" and allow.split(",")[0] in r.json()["message"]


@pytest.mark.parametrize("target, path", [("start", "/queues/start"), ("telemetry", "/telemetry")])
@pytest.mark.parametrize("data", [DEEP, b'{"a":' * 70 + b"1" + b"}" * 70], ids=["1000 arrays", "70 objects"])
def test_deeply_nested_structured_cloudevent_is_a_400(client, target, path, data):
    """The CloudEvents SDK parses a structured event itself: the bound holds there too."""
    body = (b'{"specversion":"1.0","id":"x","source":"/s","type":"dev.streamforge.queue.telemetry","data":'
            + data + b"}")
    r = client(target).post(path, content=body, headers={"content-type": "application/cloudevents+json"})
    assert r.status_code == 400, r.text
    assert "nested more than 64 levels" in r.json()["message"]


@pytest.mark.parametrize("path", ["/queues/a%0Ab", "/queues/%0A", "/no/such%0Apath"])
def test_a_line_break_in_the_path_gets_the_json_404(client, path):
    r = client("all").get(path)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert r.json()["status"] == "error"


@pytest.mark.parametrize("method, path, allow", [("GET", "/queues/plan", "POST"), ("OPTIONS", "/queues/start", "POST"),
                                                 ("PUT", "/queues", "GET, HEAD, POST")])
def test_a_fixed_path_is_never_taken_for_a_queue_id(client, method, path, allow):
    r = client("all").request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow, r.text


@pytest.mark.parametrize("body, code", [(b"", 400), (b"[]", 400), (b"null", 400), (b'"telemetry"', 400),
                                        (b'{"type": "telemetry", "queue_id": "q", "records_written": "5"}', 200),
                                        (b'{"type": "telemetry", "queue_id": "q", "records_written": "-5"}', 422),
                                        (b'{"type": "telemetry", "queue_id": "q", "records_written": "\xc2\xb2"}', 422),
                                        (b'{"type": "telemetry", "queue_id": "q", "records_written": true}', 422),
                                        (b'{"type": "telemetry", "queue_id": "q", "records_written": 5.5}', 422),
                                        (b'{"type": "telemetry", "queue_id": "q", "records_written": 5.0}', 200)])
def test_telemetry_takes_json_objects_and_whole_counts(client, body, code):
    r = client("telemetry").post("/telemetry", content=body, headers={"content-type": "application/json"})
    assert r.status_code == code, r.text


@pytest.mark.parametrize("dry_run", ["", "?dry_run=true"])
@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_empty_or_long_idempotency_key_is_a_400_even_for_a_dry_run(client, historical, key, dry_run):
    r = client("start").post(f"/queues/start{dry_run}", json=historical, headers={"Idempotency-Key": key})
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["message"]


@pytest.mark.parametrize("symbol, code", [(" btcusdt ", 200), ("ßß", 422), ("BTC\n", 422), ("ıi", 422)])
def test_symbols_as_the_document_describes_them(client, legacy, symbol, code):
    r = client("start").post("/queues/start?dry_run=true", json={**legacy, "symbol": symbol})
    assert r.status_code == code, r.text


@pytest.mark.parametrize("bad", [[["?"]], 5, "x" * 129, ""])
def test_a_stop_body_naming_a_bad_queue_id_is_refused_even_with_the_path(client, historical, bad):
    queue_id = client("start").post("/queues/start", json=historical).json()["data"]["queue_id"]
    r = client("stop").post(f"/queues/{queue_id}/stop", json={"queue_id": bad})
    assert r.status_code == 422, r.text
    assert client("status").get(f"/queues/{queue_id}").json()["data"]["status"] != "stopped"
