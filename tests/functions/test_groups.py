"""Groups: a start with `symbols` starts one queue per symbol under one id (both backends)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import runtime
from shared.core import constants
from shared.core.errors import BackendUnavailable
from shared.services.service import QueueService
from tests.factories import binary_event, telemetry

SYMBOLS = [f"S{i:02d}USDT" for i in range(50)]
TEMPLATE = {"time_range": "2024-01-01:2024-01-03", "requests": [{"target": "loader-producer", "type": "api_trades"}]}


def _group(symbols: list[str], **extra: Any) -> dict[str, Any]:
    return {"symbols": symbols, **TEMPLATE, **extra}


def _start(client, payload, key: str | None = None) -> dict[str, Any]:
    r = client("start").post("/queues/start", json=payload, headers={"Idempotency-Key": key} if key else None)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _status(client, group_id: str) -> dict[str, Any]:
    r = client("status").get(f"/groups/{group_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _job(client, queue_id: str) -> dict[str, Any]:
    return client("status").get(f"/queues/{queue_id}").json()["data"]["jobs"][0]


def _report(client, queue_id: str, status: str) -> None:
    job = _job(client, queue_id)
    r = client("telemetry").post("/", json=telemetry(queue_id, job_id=job["id"], status=status))
    assert r.status_code == 200, r.text


def test_fifty_symbols_start_fifty_queues_in_one_group(client):
    data = _start(client, _group(SYMBOLS))
    assert data["created"] is True
    assert [q["symbol"] for q in data["queues"]] == SYMBOLS
    ids = [q["queue_id"] for q in data["queues"]]
    assert len(set(ids)) == 50
    assert client("status").get("/queues").json()["page"]["total"] == 50
    queue = client("status").get(f"/queues/{ids[7]}").json()["data"]
    assert (queue["group"], queue["symbol"]) == (data["group_id"], SYMBOLS[7])
    rows = client("status").get(f"/queues/{ids[7]}/events").json()["data"]
    started = [r["event"] for r in rows if r["event"]["type"] == constants.CE_QUEUE_STARTED]
    assert started and started[0]["data"]["group"] == data["group_id"]
    shown = _status(client, data["group_id"])
    assert [q["queue_id"] for q in shown["queues"]] == ids
    assert shown["jobs"] == {"finished": 0, "total": 50}
    record = runtime.get().service.store.records.get(f"group:{data['group_id']}")
    assert record is not None and json.loads(record[0])["queue_ids"] == ids


def test_limits_hold_across_the_group_and_it_finishes(client, monkeypatch):
    monkeypatch.setenv("JOB_LIMITS", json.dumps({"loader-producer": 4}))
    runtime.reset()
    symbols = SYMBOLS  # 50: thirteen turns of four
    group_id = _start(client, _group(symbols))["group_id"]
    finished: set[str] = set()
    for _ in range(14):
        queues = _status(client, group_id)["queues"]
        live = [q["queue_id"] for q in queues if q["queue_id"] not in finished
                and _job(client, q["queue_id"])["status"] in ("launched", "running")]
        assert len(live) <= 4, f"{len(live)} jobs launched at once with a limit of 4"
        if not live:
            break
        assert len(live) == min(4, len(symbols) - len(finished))
        for queue_id in live:
            _report(client, queue_id, "finished")
            finished.add(queue_id)
    shown = _status(client, group_id)
    assert len(finished) == 50
    assert (shown["status"], shown["progress"], shown["counts"]) == ("finished", 1.0, {"finished": 50})
    assert {q["progress"] for q in shown["queues"]} == {1.0}


def test_group_status_follows_its_queues(client):
    data = _start(client, _group(SYMBOLS[:3]))
    a, b, c = (q["queue_id"] for q in data["queues"])
    _report(client, a, "running")
    assert _status(client, data["group_id"])["status"] == "running"
    _report(client, a, "finished")
    _report(client, b, "finished")
    _report(client, c, "error")
    shown = _status(client, data["group_id"])
    assert (shown["status"], shown["counts"]) == ("error", {"finished": 2, "error": 1})
    assert shown["progress"] == pytest.approx(2 / 3, abs=1e-4)


def test_stop_of_the_group_stops_every_queue_and_is_idempotent(client):
    data = _start(client, _group(SYMBOLS[:5]))
    _report(client, data["queues"][0]["queue_id"], "finished")
    r = client("stop").post(f"/groups/{data['group_id']}/stop", json={"reason": "enough"})
    assert r.status_code == 200, r.text
    queues = r.json()["data"]["queues"]
    assert r.json()["message"] == "Group stopped: 4 queue(s) stopped"
    assert [q["status"] for q in queues] == ["finished"] + ["stopped"] * 4
    assert [q["changed"] for q in queues] == [False] + [True] * 4
    assert _status(client, data["group_id"])["status"] == "stopped"
    again = client("stop").post(f"/groups/{data['group_id']}/stop")
    assert again.status_code == 200 and not any(q["changed"] for q in again.json()["data"]["queues"])
    assert again.json()["message"] == "Group already ended; nothing to stop"


def test_retry_of_the_group_reruns_the_failed_queues_only(client):
    data = _start(client, _group(SYMBOLS[:4]))
    ids = [q["queue_id"] for q in data["queues"]]
    _report(client, ids[0], "error")
    _report(client, ids[1], "finished")
    _report(client, ids[2], "error")
    _report(client, ids[3], "running")
    r = client("start").post(f"/groups/{data['group_id']}/retry")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["retried"] == [ids[0], ids[2]]
    assert [_job(client, q)["attempt"] for q in ids] == [1, 0, 1, 0]
    assert [_job(client, q)["status"] for q in ids] == ["launched", "finished", "launched", "running"]
    again = client("start").post(f"/groups/{data['group_id']}/retry")
    assert again.status_code == 200 and again.json()["data"]["retried"] == []
    assert [_job(client, q)["attempt"] for q in ids] == [1, 0, 1, 0]


def test_a_replay_with_the_same_key_returns_the_same_group(client):
    first = _start(client, _group(SYMBOLS[:10]), key="nightly-2024-01")
    again = _start(client, _group(SYMBOLS[:10]), key="nightly-2024-01")
    assert again["created"] is False
    assert (again["group_id"], again["queues"]) == (first["group_id"], first["queues"])
    assert client("status").get("/queues").json()["page"]["total"] == 10
    r = client("start").post("/queues/start", json=_group(SYMBOLS[:9]), headers={"Idempotency-Key": "nightly-2024-01"})
    assert r.status_code == 409, r.text


def test_a_start_interrupted_half_way_completes_on_replay(client, monkeypatch):
    real = QueueService.start
    calls = []

    def flaky(self, command, **kwargs):
        calls.append(command.symbol)
        if len(calls) == 4:
            raise BackendUnavailable("state", "connection reset")
        return real(self, command, **kwargs)

    monkeypatch.setattr(QueueService, "start", flaky)
    r = client("start").post("/queues/start", json=_group(SYMBOLS[:8]), headers={"Idempotency-Key": "k1"})
    assert r.status_code == 503, r.text
    assert {"group_id": r.json()["errors"][-1]["group_id"], "retry": "repeat the start with the same key"} \
        in r.json()["errors"]
    assert client("status").get("/queues").json()["page"]["total"] == 3
    cut = _status(client, r.json()["errors"][-1]["group_id"])
    assert cut["status"] == "running" and cut["counts"] == {"loading": 3, "not_started": 5}
    for queue in cut["queues"][:3]:
        _report(client, queue["queue_id"], "finished")
    assert _status(client, cut["group_id"])["status"] == "incomplete"  # not finished: 5 never started
    data = _start(client, _group(SYMBOLS[:8]), key="k1")
    assert data["created"] is False and len({q["queue_id"] for q in data["queues"]}) == 8
    assert client("status").get("/queues").json()["page"]["total"] == 8


def test_a_bad_symbol_among_fifty_refuses_the_whole_group(client):
    symbols = [*SYMBOLS[:30], "BAD-SYMBOL!", *SYMBOLS[30:49]]
    r = client("start").post("/queues/start", json=_group(symbols))
    assert r.status_code == 422, r.text
    assert "BAD-SYMBOL!" in r.json()["message"]
    assert r.json()["errors"][0]["loc"] == ["body", "symbols", "30"]
    assert client("status").get("/queues").json()["page"]["total"] == 0
    assert client("status").get("/groups").json()["data"] == []
    assert runtime.get().service.store.records.count("group:") == 0


@pytest.mark.parametrize("payload", [
    {"symbol": "BTCUSDT", "symbols": ["ETHUSDT"], **TEMPLATE},
    {"symbols": [], **TEMPLATE},
    {"symbols": "BTCUSDT", **TEMPLATE},
    {"symbols": ["BTCUSDT", "btcusdt"], **TEMPLATE},
])
def test_symbol_with_symbols_and_bad_lists_are_422(client, payload):
    r = client("start").post("/queues/start", json=payload)
    assert r.status_code == 422, r.text
    assert "symbol" in r.json()["message"]
    assert client("status").get("/queues").json()["page"]["total"] == 0


def test_the_single_symbol_form_is_unchanged(client):
    data = _start(client, {"symbol": "BTCUSDT", **TEMPLATE})
    assert set(data) >= {"queue_id", "status", "jobs"}
    assert client("status").get(f"/queues/{data['queue_id']}").json()["data"]["group"] is None


def test_a_group_start_as_a_cloudevent_replies_with_an_event(client):
    headers, body = binary_event(constants.CE_START_QUEUE, _group(SYMBOLS[:3]), id_="evt-group")
    r = client("start").post("/", headers=headers, content=body)
    assert r.status_code == 200, r.text
    assert r.headers["ce-type"] == "dev.streamforge.group.started"
    group_id = r.json()["data"]["group_id"]
    again = client("start").post("/", headers=headers, content=body)
    assert again.json()["data"]["group_id"] == group_id and again.json()["data"]["created"] is False


def test_groups_are_listed_page_by_page_and_unknown_ones_are_404(client):
    made = sorted(_start(client, _group([s]))["group_id"] for s in SYMBOLS[:3])
    first = client("status").get("/groups?limit=2").json()
    assert [g["group_id"] for g in first["data"]] == made[:2]
    rest = client("status").get(f"/groups?limit=2&after={first['page']['next']}").json()
    assert [g["group_id"] for g in rest["data"]] == made[2:] and rest["page"]["next"] is None
    assert client("status").get("/groups/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client("stop").post("/groups/nope/stop").status_code == 404
    assert client("start").post("/groups/nope/retry").status_code == 404
    assert client("status").get("/groups?after=x").status_code == 400


def test_a_bad_template_is_named_once_not_once_per_symbol(client):
    r = client("start").post("/queues/start", json=_group(SYMBOLS, mode="sideways"))
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "invalid group: the queue template is invalid"
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "mode"]]
    assert client("status").get("/queues").json()["page"]["total"] == 0


def test_a_symbol_overlapping_an_active_queue_refuses_the_whole_group(client):
    _start(client, {"symbol": SYMBOLS[10], **TEMPLATE})
    r = client("start").post("/queues/start", json=_group(SYMBOLS))
    assert r.status_code == 409, r.text
    assert SYMBOLS[10] in r.json()["message"] and [e["symbol"] for e in r.json()["errors"]] == [SYMBOLS[10]]
    assert client("status").get("/queues").json()["page"]["total"] == 1
    assert runtime.get().service.store.records.count("group:") == 0


def test_an_invalid_pipeline_is_refused_before_anything_is_stored(client):
    requests = [{"target": "loader-producer", "type": "api_trades", "depends_on": ["nobody"]}]
    r = client("start").post("/queues/start", json={**_group(SYMBOLS[:5]), "requests": requests})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("invalid queue(s) for S00USDT, S01USDT")
    assert client("status").get("/queues").json()["page"]["total"] == 0
    assert runtime.get().service.store.records.count("group:") == 0


def test_the_all_in_one_routes_a_group_event_of_another_type_to_start(client):
    headers, body = binary_event("dev.knative.function.invoke", _group(SYMBOLS[:2]))
    r = client("all").post("/", headers=headers, content=body)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]["queues"]) == 2
