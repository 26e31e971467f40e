"""Groups under trouble (both backends): a stop during the start, a late overlap, and
requests refused before anything is stored."""

from __future__ import annotations

from shared.services import groups
from shared.services.service import QueueService
from tests.functions.test_groups import SYMBOLS, _group, _start, _status


def test_a_stop_during_the_start_ends_it(client, monkeypatch):
    real = QueueService.start
    calls = []

    def stopping(self, command, **kwargs):
        result = real(self, command, **kwargs)
        calls.append(command.symbol)
        if len(calls) == 3:  # the group is stopped while its start runs
            r = client("stop").post(f"/groups/{kwargs['group']}/stop", json={"reason": "wrong day"})
            assert r.status_code == 200, r.text
        return result

    monkeypatch.setattr(QueueService, "start", stopping)
    data = _start(client, _group(SYMBOLS[:40]))
    started = [q for q in data["queues"] if q["status"] != "not_started"]
    # the start looks at the record every STOP_CHECK queues: it ends at the next look
    assert len(started) == groups.STOP_CHECK and len(calls) == len(started)
    # those started after the stop read the group are stopped by the start itself
    assert {q["status"] for q in started} == {"stopped"}
    assert client("status").get("/queues", params={"status": "loading"}).json()["page"]["total"] == 0
    shown = _status(client, data["group_id"])
    assert shown["status"] == "stopped" and "stopped_at" in shown and shown["counts"]["not_started"] == 30
    replay = client("start").post("/queues/start", json=_group(SYMBOLS[:40]))
    assert replay.status_code == 200  # another group (no key): the stopped one stays as it is
    assert _status(client, data["group_id"])["counts"]["not_started"] == 30


def test_a_symbol_refused_by_a_late_overlap_is_named_and_started_by_a_replay(client, monkeypatch):
    real = QueueService.start
    done = []

    def racing(self, command, **kwargs):
        if command.symbol == SYMBOLS[2] and not done:  # another client starts it between check and start
            done.append(real(self, command.model_copy(), idempotency_key="other"))
        return real(self, command, **kwargs)

    monkeypatch.setattr(QueueService, "start", racing)
    data = _start(client, _group(SYMBOLS[:5]), key="g1")
    assert list(data["refused"]) == [SYMBOLS[2]] and "overlaps" in data["refused"][SYMBOLS[2]]
    shown = _status(client, data["group_id"])
    assert shown["counts"] == {"loading": 4, "refused": 1} and shown["status"] == "running"
    other = done[0].state.id
    assert client("stop").post(f"/queues/{other}/stop").status_code == 200
    again = _start(client, _group(SYMBOLS[:5]), key="g1")
    assert "refused" not in again and {q["status"] for q in again["queues"]} == {"loading"}
    assert _status(client, data["group_id"])["counts"] == {"loading": 5}


def test_duplicate_request_ids_and_too_many_jobs_are_422(client):
    dup = _group(SYMBOLS[:3], requests=[{"id": "a", "target": "loader-producer", "type": "api_trades"},
                                        {"id": "a", "target": "loader-producer", "type": "api_candles_5m"}])
    r = client("start").post("/queues/start", json=dup)
    assert r.status_code == 422 and "unique" in r.text
    many = [f"X{i:03d}USDT" for i in range(500)]
    big = _group(many, time_range="2024-01-01:2024-03-31", partition="day")  # 91 jobs x 500
    r = client("start").post("/queues/start", json=big)
    assert r.status_code == 422 and "at most 20000" in r.json()["message"]
    assert client("status").get("/groups").json()["data"] == []
