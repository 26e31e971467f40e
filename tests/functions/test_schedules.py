"""Schedules through the functions, on both backends, ticked by the PingSource of
eventing/schedules.yaml as its adapter sends it: one queue per fire time however often a tick
comes, paused and resumed, the catch-up after an outage, the concurrency policies, relative
ranges in the schedule's zone, and "yesterday" already loaded being a no-op."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from tests.functions.schedule_support import (
    Clock,
    create,
    finish,
    queues,
    schedule,
    shown,
    tick,
)
from tests.functions.test_backfill import finish as finish_loaded

LOADER = "loader-producer"


def test_one_queue_per_fire_time_however_often_the_ping_comes(client: Any, moved: Clock) -> None:
    create(client, schedule())
    assert tick(client)["data"]["runs"] == []  # nothing has fired since it was created
    for minute in (1, 2, 3):
        moved.at(minute)
        first = tick(client)["data"]["runs"]
        assert [(r["fire"], r["outcome"]) for r in first] == [(moved.fire(minute), "started")]
        moved.at(minute, 2.5)  # the adapter's retry, and a duplicate
        assert tick(client)["data"]["runs"] == []
        assert tick(client)["data"]["runs"] == []
    started = queues(client)
    assert len(started) == 3
    runs = shown(client)["runs"]
    assert [r["fire"] for r in runs] == [moved.fire(m) for m in (3, 2, 1)]  # newest first
    assert {r["queue_id"] for r in runs} == {q["id"] for q in started}
    assert all(r["queue_status"] in ("pending", "loading") for r in runs)


def test_concurrent_ticks_start_each_fire_time_once(client: Any, moved: Clock, backend: str) -> None:
    for name in ("a", "b", "c"):
        create(client, schedule(name))
    moved.at(1)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tick(client)["data"]["runs"], range(4)))
    started = [r for runs in results for r in runs]
    assert len({r["queue_id"] for r in started}) == 3
    assert len(queues(client)) == 3


def test_a_ping_a_little_early_fires_its_minute(client: Any, moved: Clock) -> None:
    create(client, schedule())
    moved.at(0, 58)  # the adapter's clock two seconds ahead of ours
    assert [r["fire"] for r in tick(client)["data"]["runs"]] == [moved.fire(1)]
    moved.at(1, 0.2)
    assert tick(client)["data"]["runs"] == []


def test_paused_starts_nothing_and_resumed_goes_on_from_now(client: Any, moved: Clock) -> None:
    create(client, schedule())
    moved.at(1)
    assert len(tick(client)["data"]["runs"]) == 1
    r = client("start").post("/schedules/nightly/pause")
    assert r.status_code == 200 and r.json()["data"]["paused"] is True
    assert r.json()["data"]["next_fire_times"] == []
    for minute in (2, 3, 4):
        moved.at(minute)
        assert tick(client)["data"]["runs"] == []
    moved.at(4, 30)
    r = client("start").post("/schedules/nightly/resume")
    assert r.status_code == 200 and r.json()["data"]["next_fire_times"][0] == moved.fire(5)
    moved.at(5)
    assert [r["fire"] for r in tick(client)["data"]["runs"]] == [moved.fire(5)]
    data = shown(client)
    assert data["missed"]["count"] == 0  # paused fire times are not missed ones
    assert len(queues(client)) == 2


def test_after_an_outage_the_newest_fire_times_up_to_the_bound_start_oldest_first(
        client: Any, moved: Clock) -> None:
    create(client, schedule(catch_up=3))
    moved.at(1)
    tick(client)
    moved.at(9)  # the ticks of minutes 2-8 never came: 8 fire times are due now
    runs = tick(client)["data"]
    assert [(r["fire"], r["outcome"]) for r in runs["runs"]] == [(moved.fire(m), "started") for m in (7, 8, 9)]
    assert runs["missed"] == 5
    missed = shown(client)["missed"]
    assert missed == {"count": 5, "recent": [{"from": moved.fire(2), "to": moved.fire(6), "count": 5}]}
    assert len(queues(client)) == 4
    r = client("status").get("/metrics")
    assert r.status_code == 200
    assert any(line.startswith('queue_manager_schedule_ticks_total{outcome="missed"}') and
               float(line.split()[-1]) >= 5 for line in r.text.splitlines())


def test_forbid_skips_a_fire_time_while_the_previous_run_is_active(client: Any, moved: Clock) -> None:
    create(client, schedule(concurrency="forbid"))
    moved.at(1)
    [first] = tick(client)["data"]["runs"]
    moved.at(2)
    [second] = tick(client)["data"]["runs"]
    assert second["outcome"] == "forbidden" and first["queue_id"] in second["message"]
    finish(client, first["queue_id"])
    moved.at(3)
    [third] = tick(client)["data"]["runs"]
    assert third["outcome"] == "started" and third["queue_id"] != first["queue_id"]


def test_replace_stops_the_previous_run_and_allow_keeps_both(client: Any, moved: Clock) -> None:
    create(client, schedule("replacing", concurrency="replace"))
    create(client, schedule("allowing", concurrency="allow", queue={"symbol": "ETHUSDT"}))
    moved.at(1)
    first = {r["schedule"]: r for r in tick(client)["data"]["runs"]}
    moved.at(2)
    second = {r["schedule"]: r for r in tick(client)["data"]["runs"]}
    assert second["replacing"]["replaced"] == first["replacing"]["queue_id"]
    old = client("status").get(f"/queues/{first['replacing']['queue_id']}").json()["data"]["status"]
    assert old in ("stopping", "stopped")
    assert "replaced" not in second["allowing"]
    statuses = {q["status"] for q in queues(client, "ETHUSDT")}
    assert len(queues(client, "ETHUSDT")) == 2 and statuses <= {"pending", "loading"}


def test_relative_ranges_resolve_on_the_fire_times_date_in_the_schedules_zone(client: Any, moved: Clock) -> None:
    create(client, schedule("local", timezone="Pacific/Kiritimati", time_range="yesterday"))  # UTC+14
    create(client, schedule("monthly", time_range="previous month", queue={"symbol": "ETHUSDT"}))
    moved.at(1)
    runs = {r["schedule"]: r for r in tick(client)["data"]["runs"]}
    import datetime as dt

    local = (moved.base + dt.timedelta(minutes=1, hours=14)).date() - dt.timedelta(days=1)
    assert runs["local"]["time_range"] == f"{local}:{local}"
    first_of_month = moved.base.date().replace(day=1)
    last = first_of_month - dt.timedelta(days=1)
    assert runs["monthly"]["time_range"] == f"{last.replace(day=1)}:{last}"
    shown_queue = client("status").get(f"/queues/{runs['monthly']['queue_id']}").json()["data"]
    assert shown_queue["time_range"] == runs["monthly"]["time_range"]


def test_yesterday_already_loaded_is_a_no_op(client: Any, moved: Clock) -> None:
    body = schedule(queue={"partition": "day", "allow_overlap": False, "requests": [
        {"target": LOADER, "type": "api_candles_1d"}, {"target": "arango-connector", "type": "api_candles_1d"}]})
    create(client, body)
    moved.at(1)
    [first] = tick(client)["data"]["runs"]
    assert first["outcome"] == "started"
    moved.at(2)  # the same "yesterday", still loading: covered, nothing started
    [second] = tick(client)["data"]["runs"]
    assert second["outcome"] == "covered" and "queue_id" not in second
    finish_loaded(client, first["queue_id"])
    moved.at(3)  # and loaded
    [third] = tick(client)["data"]["runs"]
    assert third["outcome"] == "covered"
    assert len(queues(client)) == 1


def test_a_run_that_cannot_start_is_reported_and_the_schedule_goes_on(client: Any, moved: Clock) -> None:
    create(client, schedule(queue={"allow_overlap": False}))
    moved.at(1)
    tick(client)
    moved.at(2)  # the same day again, without allow_overlap: the start is refused (409)
    [refused] = tick(client)["data"]["runs"]
    assert refused["outcome"] == "failed" and "overlaps" in refused["message"]
    assert shown(client)["next_fire_times"][0] == moved.fire(3)


def test_deleted_and_created_again_starts_new_queues(client: Any, moved: Clock) -> None:
    create(client, schedule())
    moved.at(1)
    [before] = tick(client)["data"]["runs"]
    assert client("start").delete("/schedules/nightly").status_code == 200
    assert client("status").get("/schedules/nightly").status_code == 404
    assert client("start").delete("/schedules/nightly").status_code == 404
    moved.at(1, 10)
    create(client, schedule())
    moved.at(2)
    [after] = tick(client)["data"]["runs"]
    assert after["queue_id"] != before["queue_id"]
    assert client("status").get(f"/queues/{before['queue_id']}").status_code == 200  # its queues stay


def test_set_up_listed_and_refused(client: Any, moved: Clock) -> None:
    assert create(client, schedule())["data"]["next_fire_times"][:2] == [moved.fire(1), moved.fire(2)]
    create(client, schedule(), code=200)  # the same spec again
    r = client("start").post("/schedules", json=schedule(cron="0 * * * *"))
    assert r.status_code == 409 and "delete it first" in r.json()["message"]
    for name in ("b", "c"):
        create(client, schedule(name))
    page = client("status").get("/schedules", params={"limit": 2}).json()["data"]
    assert [s["name"] for s in page["items"]] == ["b", "c"] and page["total"] == 3
    rest = client("status").get("/schedules", params={"limit": 2, "after": page["next_after"]}).json()["data"]
    assert [s["name"] for s in rest["items"]] == ["nightly"]
    bad = [schedule("Bad_Name"), schedule(cron="61 * * * *"), schedule(cron="@every 1h"),
           schedule(timezone="Mars/Olympus"), schedule(time_range="last week"),
           schedule(time_range="last 0 days"), schedule(queue={"requests": []}),
           schedule(queue={"symbol": "btc usdt"}), schedule(catch_up=0), {"name": "x"}, []]
    for body in bad:
        r = client("start").post("/schedules", json=body)
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["status"] == "error"
    assert client("status").get("/schedules").json()["data"]["total"] == 3
    assert client("status").get("/schedules/nope").status_code == 404
    assert client("start").post("/schedules/nope/pause").status_code == 404
