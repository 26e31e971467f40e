"""Schedules under trouble, on both backends: a tick during an outage, an unreadable
schedule among good ones, a pause while a tick runs, a tick out of time, and specs refused."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from shared import runtime
from shared.services import ticking
from tests.arango_standin import ArangoStandIn
from tests.backends import PASSWORD
from tests.functions.schedule_support import (
    Clock,
    create,
    finish,
    queues,
    schedule,
    shown,
    tick,
)

LOADER = "loader-producer"


@pytest.mark.backend("arango", reason="an outage of the ArangoDB stand-in")
def test_a_tick_during_an_outage_is_a_503_and_the_next_one_starts_it(
        client: Any, moved: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    with ArangoStandIn(password=PASSWORD) as arango:
        monkeypatch.setenv("ARANGO_URL", arango.url)
        monkeypatch.setenv("ARANGO_PASSWORD", PASSWORD)
        runtime.reset()
        create(client, schedule())
        moved.at(1)
        arango.pause()
        try:
            tick(client, code=503)
        finally:
            arango.resume()
        moved.at(1, 3)
        assert [r["fire"] for r in tick(client)["data"]["runs"]] == [moved.fire(1)]
        assert len(queues(client)) == 1


def test_a_schedule_of_many_symbols_starts_a_group_per_fire_time(client: Any, moved: Clock) -> None:
    body = schedule(concurrency="forbid")
    body["queue"] = {k: v for k, v in body["queue"].items() if k != "symbol"} | {"symbols": ["BTCUSDT", "ETHUSDT"]}
    create(client, body)
    moved.at(1)
    [first] = tick(client)["data"]["runs"]
    assert first["outcome"] == "started" and first["group_id"]
    group = client("status").get(f"/groups/{first['group_id']}").json()["data"]
    assert sorted(q["symbol"] for q in group["queues"]) == ["BTCUSDT", "ETHUSDT"]
    moved.at(1, 2)
    assert tick(client)["data"]["runs"] == []  # the retried ping
    moved.at(2)
    [second] = tick(client)["data"]["runs"]
    assert second["outcome"] == "forbidden" and first["group_id"] in second["message"]
    for queue in group["queues"]:
        finish(client, queue["queue_id"])
    moved.at(3)
    [third] = tick(client)["data"]["runs"]
    assert third["outcome"] == "started" and third["group_id"] != first["group_id"]
    r = client("start").post("/schedules", json=dict(body, name="bad", queue=body["queue"] | {"symbols": ["x y"]}))
    assert r.status_code == 422, r.text


def test_an_unreadable_schedule_is_reported_and_the_others_still_run(client: Any, moved: Clock) -> None:
    create(client, schedule("good"))
    create(client, schedule("later", queue={"symbol": "ETHUSDT"}))
    records = runtime.get().store.records
    text, rev = records.get("schedule:later")
    damaged = json.loads(text) | {"concurrency": "skip"}  # as a later version might write it
    records.put("schedule:later", json.dumps(damaged), rev=rev, due=json.loads(text)["next_at"])
    moved.at(1)
    data = tick(client)["data"]
    assert [r["schedule"] for r in data["runs"]] == ["good"] and data["unreadable"] == ["later"]
    listed = client("status").get("/schedules").json()["data"]["items"]
    assert [s["name"] for s in listed] == ["good", "later"] and "cannot read" in listed[1]["unreadable"]
    r = client("status").get("/schedules/later")
    assert r.status_code == 409 and "delete it and create it again" in r.json()["message"]
    assert client("start").delete("/schedules/later").status_code == 200
    lines = client("status").get("/metrics").text.splitlines()
    assert any(line.startswith('queue_manager_schedule_next_run_timestamp_seconds{schedule="good"}')
               for line in lines)


def test_a_pause_during_a_tick_keeps_the_run_it_started(client: Any, moved: Clock,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    create(client, schedule(concurrency="forbid"))
    real = ticking._run

    def pausing(service: Any, s: Any, fire: Any, previous: Any) -> Any:
        run = real(service, s, fire, previous)
        assert client("start").post("/schedules/nightly/pause").status_code == 200  # while it runs
        return run

    monkeypatch.setattr(ticking, "_run", pausing)
    moved.at(1)
    [run] = tick(client)["data"]["runs"]
    monkeypatch.setattr(ticking, "_run", real)
    data = shown(client)
    assert data["paused"] is True and [r["queue_id"] for r in data["runs"]] == [run["queue_id"]]
    client("start").post("/schedules/nightly/resume")
    moved.at(2)
    [second] = tick(client)["data"]["runs"]
    assert second["outcome"] == "forbidden"  # the first run is known, and still active
    assert len(queues(client)) == 1


def test_a_tick_out_of_time_leaves_the_rest_for_the_next_one(client: Any, moved: Clock,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    create(client, schedule(catch_up=5))
    real = ticking._run

    def slow(service: Any, s: Any, fire: Any, previous: Any) -> Any:
        time.sleep(1.0)  # two starts fit in the budget, a third does not
        return real(service, s, fire, previous)

    monkeypatch.setattr(ticking, "_run", slow)
    monkeypatch.setattr(ticking, "BUDGET_S", 1.5)
    moved.at(5)
    first = tick(client)["data"]
    assert [r["fire"] for r in first["runs"]] == [moved.fire(1), moved.fire(2)] and first["left_for_next_tick"]
    monkeypatch.setattr(ticking, "_run", real)
    monkeypatch.setattr(ticking, "BUDGET_S", 40.0)
    moved.at(5, 10)
    second = tick(client)["data"]
    assert [r["fire"] for r in second["runs"]] == [moved.fire(m) for m in (3, 4, 5)] and second["missed"] == 0
    assert len(queues(client)) == 5


def test_a_cron_that_never_fires_is_refused_and_a_paused_spec_posted_again_is_the_same(
        client: Any, moved: Clock) -> None:
    r = client("start").post("/schedules", json=schedule(cron="0 0 30 2 *"))
    assert r.status_code == 422 and "never fires" in r.json()["message"]
    create(client, schedule())
    client("start").post("/schedules/nightly/pause")
    assert create(client, schedule(), code=200)["data"]["paused"] is True


def test_a_catch_up_keeps_to_forbid_and_replace_between_its_own_runs(client: Any, moved: Clock) -> None:
    create(client, schedule("forbidding", concurrency="forbid", catch_up=3))
    create(client, schedule("replacing", concurrency="replace", catch_up=3, queue={"symbol": "ETHUSDT"}))
    moved.at(4)  # minutes 1-3 never ticked: three fire times to start at once
    runs = tick(client)["data"]["runs"]
    forbidding = [r for r in runs if r["schedule"] == "forbidding"]
    assert [r["outcome"] for r in forbidding] == ["started", "forbidden", "forbidden"]
    replacing = [r for r in runs if r["schedule"] == "replacing"]
    assert [r["outcome"] for r in replacing] == ["started"] * 3
    assert [r.get("replaced") for r in replacing] == [None, replacing[0]["queue_id"], replacing[1]["queue_id"]]
    assert [q["status"] for q in queues(client, "ETHUSDT") if q["status"] in ("pending", "loading")] == ["loading"]


def test_missed_fire_times_are_counted_once_when_a_tick_runs_out_before_starting(
        client: Any, moved: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    create(client, schedule(catch_up=1))
    real = ticking.due_fires

    def slow(s: Any, until: Any) -> Any:
        time.sleep(0.6)  # past the budget before the first start
        return real(s, until)

    monkeypatch.setattr(ticking, "due_fires", slow)
    monkeypatch.setattr(ticking, "BUDGET_S", 0.5)
    moved.at(5)
    for _ in range(2):
        data = tick(client)["data"]
        assert data["runs"] == [] and data["missed"] == 0 and data["left_for_next_tick"] is True
    monkeypatch.setattr(ticking, "due_fires", real)
    monkeypatch.setattr(ticking, "BUDGET_S", 40.0)
    data = tick(client)["data"]
    assert [r["fire"] for r in data["runs"]] == [moved.fire(5)] and data["missed"] == 4
    assert shown(client)["missed"]["count"] == 4
