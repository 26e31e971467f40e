import pytest

from shared.core import constants


def test_list_filters_and_pages(client, historical, realtime):
    start = client("start")
    ids = [start.post("/queues/start", json={**p, "allow_overlap": True}).json()["data"]["queue_id"]
           for p in (historical, realtime, historical)]
    client("stop").post(f"/queues/stop?queue_id={ids[1]}")
    status = client("status")
    everything = status.get("/queues").json()
    assert everything["page"]["total"] == 3 and len(everything["data"]) == 3
    stopped = status.get("/queues?status=stopped").json()
    assert [q["id"] for q in stopped["data"]] == [ids[1]]
    page = status.get("/queues?limit=2&offset=2")
    assert len(page.json()["data"]) == 1 and page.headers["X-Total-Count"] == "3"
    assert status.get("/queues?symbol=ethusdt").json()["page"]["total"] == 0
    assert status.get("/queues?symbol=btcusdt").json()["page"]["total"] == 3


def test_health_endpoints(client):
    for fn in ("start", "stop", "telemetry", "status"):
        tc = client(fn)
        assert tc.get("/health/live").status_code == 200
        assert tc.get("/health/startup").status_code == 200
        ready = tc.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["message"] == "All systems operational"


def test_ready_names_the_backend_that_is_down(client, monkeypatch):
    monkeypatch.setenv("ARANGO_URL", "http://127.0.0.1:9")
    r = client("status").get("/health/ready")
    assert r.status_code == 503
    assert "state (arango)" in r.json()["message"]
    assert r.json()["data"]["events (local)"] == "ok"


def test_state_outage_is_503_not_500(client, historical, monkeypatch):
    monkeypatch.setenv("ARANGO_URL", "http://127.0.0.1:9")
    r = client("start").post("/queues/start", json=historical)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert "arango unavailable" in r.json()["message"]
    assert client("status").get("/queues").status_code == 503


def test_metrics_exposes_counters_and_state_gauges(client, historical):
    client("start").post("/queues/start", json=historical)
    text = client("status").get("/metrics").text
    assert 'queue_manager_queues{status="loading"} 1.0' in text
    assert 'queue_manager_jobs{status="launched",target="loader-producer"} 2.0' in text
    assert 'queue_manager_jobs{status="pending",target="graph-builder"} 1.0' in text
    assert "queue_manager_request_duration_seconds_bucket" in text
    assert "queue_manager_cold_start_seconds" in text


def test_openapi_document_comes_from_the_models(client):
    doc = client("status").get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    assert {"QueueStart", "QueueCreate", "QueueState", "JobState", "Telemetry"} <= set(schemas)
    assert schemas["JobRequest"]["properties"]["target"]["enum"] == list(constants.TARGETS)
    assert "/queues/{queue_id}" in doc["paths"]


def _start_symbols(client, legacy, symbols):
    ids = []
    for symbol in symbols:
        r = client("start").post("/queues/start", json={**legacy, "symbol": symbol})
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["queue_id"])
    return ids


def test_the_cursor_pages_through_every_queue_once_while_more_start(client, legacy):
    before = set(_start_symbols(client, legacy, [f"SYM{i:02d}" for i in range(7)]))
    seen, cursor, pages = [], None, 0
    while True:
        r = client("status").get("/queues", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()["page"]
        seen += [q["id"] for q in r.json()["data"]]
        assert page["total"] == 7 + 2 * pages  # the filter's whole total, each page
        cursor, pages = page["next"], pages + 1
        if cursor is None:
            break
        _start_symbols(client, legacy, [f"NEW{pages}A", f"NEW{pages}B"])  # newer: before the cursor
    assert sorted(seen) == sorted(before) and len(seen) == len(set(seen))
    assert pages == 3


@pytest.mark.parametrize("params", [{"cursor": "!!"}, {"cursor": "bm90IGpzb24"}, {"cursor": "WzFd"},
                                    {"cursor": "a" * 513}])
def test_a_cursor_this_server_did_not_give_is_a_400(client, params):
    r = client("status").get("/queues", params=params)
    assert r.status_code == 400 and "cursor" in r.json()["message"], r.text


def test_cursor_and_offset_together_is_a_400(client, legacy):
    _start_symbols(client, legacy, ["AAA", "BBB"])
    cursor = client("status").get("/queues", params={"limit": 1}).json()["page"]["next"]
    assert cursor
    r = client("status").get("/queues", params={"cursor": cursor, "offset": 1})
    assert r.status_code == 400 and "not both" in r.json()["message"]


def test_offset_is_bounded_and_says_to_use_the_cursor(client):
    r = client("status").get("/queues", params={"offset": 10_001})
    assert r.status_code == 400
    assert "offset must be an integer from 0 to 10000" in r.json()["message"]
    assert client("status").get("/queues", params={"offset": 10_000}).status_code == 200
