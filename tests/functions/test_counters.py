"""The store's counters and indexes against a full recount, after a random run of starts,
telemetry, stops and retries through the functions (both backends).

The recount reads every stored document and derives each figure from the documents
themselves, the way the code did before the counters existed: it shares nothing with
shared/core/facts.py but the statuses' names.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from shared import runtime
from shared.core import eta, naming
from shared.core.lineage import outputs
from shared.core.models import JobRequest
from shared.services import admission
from tests.factories import telemetry

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
TARGETS = ("loader-producer", "arango-connector")
LIVE = ("pending", "launched", "running")
ACTIVE = ("pending", "loading", "stopping")


def _payload(rng: random.Random, n: int) -> dict:
    day = 1 + n % 27
    requests = [{"target": "loader-producer", "type": "api_candles_5m"},
                {"target": "arango-connector", "type": "api_candles_5m"}]
    return {"symbol": rng.choice(SYMBOLS), "type": "api", "time_range": f"2024-02-{day:02d}:2024-02-{day + 1:02d}",
            "priority": rng.randint(1, 10), "allow_overlap": True, "requests": requests[:rng.randint(1, 2)]}


def _everything(store) -> list[dict]:
    docs, after = [], None
    while True:
        page, _ = store.list(status=None, symbol=None, limit=50, offset=0, after=after)
        docs += [json.loads(d) for d in page]
        if len(page) < 50:
            return docs
        after = (docs[-1]["started_at"], docs[-1]["id"])


def _recount(docs: list[dict]) -> tuple[dict, dict, list[str]]:
    queues: dict[str, int] = {}
    jobs: dict[tuple[str, str], int] = {}
    waiting = []
    for doc in docs:
        queues[doc["status"]] = queues.get(doc["status"], 0) + 1
        if doc["status"] not in ACTIVE:
            continue
        for job in doc["jobs"]:
            if job.get("status", "pending") in LIVE:
                key = (job["target"], job.get("status", "pending"))
                jobs[key] = jobs.get(key, 0) + 1
        if any(j.get("status", "pending") == "pending" and j.get("wait") == "slot" for j in doc["jobs"]):
            waiting.append(doc)
    waiting.sort(key=lambda d: (-d.get("priority", 5), d["started_at"], d["id"]))
    return queues, jobs, [d["id"] for d in waiting]


def _history(docs: list[dict]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(target, type) -> (finished jobs, days of data, records) of every stored queue."""
    import datetime as dt

    found: dict[tuple[str, str], tuple[int, int, int]] = {}
    for doc in docs:
        for job in doc["jobs"]:
            if job.get("status") != "finished" or not job.get("finished_at") or not (
                    job.get("launched_at") or job.get("started_at")):
                continue  # no time it took
            start, end = (dt.date.fromisoformat(d) for d in (job.get("time_range") or doc["time_range"]).split(":"))
            n, days, records = found.get((job["target"], job["type"]), (0, 0, 0))
            found[(job["target"], job["type"])] = (n + 1, days + (end - start).days + 1,
                                                   records + job.get("records_written", 0))
    return found


def _wrote(doc: dict, name: str) -> bool:
    """Whether a finished job of the stored queue wrote collection `name`."""
    return any(f"collection:{name}" in outputs(JobRequest(target=j["target"], type=j["type"], **j.get("params", {})),
                                               doc["symbol"], doc["time_range"])
               for j in doc["jobs"] if j.get("status") == "finished")


def _gauges(text: str) -> tuple[dict, dict]:
    queues = {m[0]: int(float(m[1])) for m in re.findall(r'^queue_manager_queues\{status="(\w+)"\} (\S+)$', text, re.M)}
    jobs = {(m[0], m[1]): int(float(m[2])) for m in
            re.findall(r'^queue_manager_jobs\{status="(\w+)",target="([\w-]+)"\} (\S+)$', text, re.M)}
    return {k: v for k, v in queues.items() if v}, {(t, s): n for (s, t), n in jobs.items() if n}


@pytest.mark.parametrize("seed", [7, 20261201])
def test_counters_and_indexes_equal_a_full_recount(client, monkeypatch, seed):
    monkeypatch.setenv("JOB_LIMITS", json.dumps({"loader-producer": 2}))
    runtime.reset()
    rng = random.Random(seed)
    started: list[str] = []
    for step in range(150):
        action = rng.random()
        if action < 0.4 or not started:
            r = client("start").post("/queues/start", json=_payload(rng, step))
            assert r.status_code == 200, r.text
            started.append(r.json()["data"]["queue_id"])
            continue
        queue_id = rng.choice(started)
        if action < 0.8:  # a report from a job that runs (most queues wait for a slot)
            for queue_id in rng.sample(started, min(8, len(started))):
                state = client("status").get(f"/queues/{queue_id}").json()["data"]
                live = [j for j in state["jobs"] if j["status"] in ("launched", "running")]
                if live:
                    break
            if live:
                job = rng.choice(live)
                word = rng.choice(["running", "finished", "finished", "failed"])
                r = client("telemetry").post("/", json=telemetry(queue_id, job_id=job["id"], status=word,
                                                                  records_written=rng.randint(1, 99)))
                assert r.status_code == 200, r.text
        elif action < 0.9:
            assert client("stop").post(f"/queues/{queue_id}/stop", json={}).status_code in (200, 202)
        else:
            r = client("start").post(f"/queues/{queue_id}/retry")
            assert r.status_code in (200, 409), r.text
    store = runtime.get().store
    docs = _everything(store)
    assert len(docs) == len(started)
    queues, jobs, waiting = _recount(docs)
    assert store.count_by_status() == queues
    assert runtime.get().service.job_counts() == jobs
    assert [key for key, _ in store.waiting(None, 1000)] == waiting
    for target in TARGETS:
        mine = [d["id"] for d in docs if d["id"] in waiting and any(
            j["target"] == target and j.get("wait") == "slot" and j.get("status", "pending") == "pending"
            for j in d["jobs"])]
        assert [key for key, _ in store.waiting(target, 1000)] == sorted(mine, key=waiting.index)
    for symbol in SYMBOLS:
        active = sorted(d["id"] for d in docs if d["symbol"] == symbol and d["status"] in ACTIVE)
        assert sorted(k for k, _ in store.active_facts(symbol)) == active
        for status in (None, "finished", "loading"):
            _, total = store.list(status=status, symbol=symbol, limit=1, offset=0)
            assert total == sum(1 for d in docs if d["symbol"] == symbol and status in (None, d["status"]))
    names = {naming.dataset_name(d["symbol"], "api_candles_5m", d["time_range"]) for d in docs}
    written = {name for name in names if any(_wrote(d, name) for d in docs)}
    assert {name for name in names if store.dataset_written(name)} == written
    assert written, "the run should have finished a connector"
    assert admission.waiting_for_slots(store, None, 3) == waiting[:3]
    rates = eta.rates(store.counters(eta.PREFIX))  # the ETA's history of finished jobs
    assert {k: (r.jobs, r.days, r.records) for k, r in rates.items() if k[1] != "*"} == _history(docs)
    assert _gauges(client("status").get("/metrics").text) == (queues, jobs)
    runtime.reset()  # as after scale to zero: a new process, a new connection, no memory of the writes
    assert _gauges(client("status").get("/metrics").text) == (queues, jobs)
