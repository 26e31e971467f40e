"""A five-year backfill of daily candles, one Job per month, on the real control plane.

120 Jobs (a loader and its connector for each of 60 months) under a limit of 4
loaders at a time: the functions run in-process (the start, the telemetry) and
as a real server fed by the real ApiServerSource adapter (eventing/
apiserver-source.yaml), which hears kwok complete each pod and launches the
next months. Each Job reports its own period's record count as soon as it
exists; one month's loader is deleted by hand while it runs, fails alone
(`on_failure: continue`), and a retry runs that month again, and only it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared import runtime
from shared.core import constants
from tests.integration.backfill_support import (
    CONNECTOR,
    LOADER,
    Backfill,
    Census,
    env_of,
    eta_errors,
    expected_records,
    months,
)
from tests.integration.kubeutil import (
    KEEP_RUNNING,
    Kube,
    Reconciler,
    confirm_stopped,
    job_labels,
    names,
    phase,
    queue_state,
    start_queue,
)

pytestmark = pytest.mark.kube

LIMIT = 4
KILLED = "2022_03"
# Measured: a median error of 7.5% and a worst of 19.6% (47 readings); with a job's time from
# its start instead of its launch, 15-16% and 20-21%. The bounds leave room for a loaded machine.
ETA_MEDIAN_ERROR, ETA_WORST_ERROR = 0.30, 0.45
RUN_FOR = {"streamforge.test/kwok-run-for": "2s"}


def backfill(time_range: str = "2020-01-01:2024-12-31") -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "time_range": time_range, "partition": "month", "on_failure": "continue",
            "requests": [{"target": LOADER, "type": "api_candles_1d"},
                         {"target": CONNECTOR, "type": "api_candles_1d"}]}


@pytest.fixture
def serve(kube_env: Kube, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Callable[..., Reconciler]]:
    """serve(**env): set env (in-process runtime too), start the server and the adapter."""
    started: list[Reconciler] = []

    def start(**env: str) -> Reconciler:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        started.append(Reconciler(kube_env, tmp_path).start())
        return started[-1]

    yield start
    for r in started:
        r.close()


def check_plan(plan: dict[str, Any]) -> None:
    jobs = plan["jobs"]
    assert len(jobs) == 120 and plan["skipped"] == [] and plan["covering"] == []
    periods = months(2020, 2024)
    assert [(j["period"], j["target"]) for j in jobs] == [(p, t) for p in periods for t in (LOADER, CONNECTOR)]
    for job in jobs:
        year, month = job["period"].split("_")
        first, last = job["time_range"].split(":")
        assert first == f"{year}-{month}-01" and first[:7] == last[:7], job["time_range"]
        env = env_of(job["manifest"])
        assert (env["START_DATE"], env["END_DATE"], env["PERIOD"]) == (first, last, job["period"]), env
        assert env["TIME_RANGE"] == job["time_range"]
        assert job["manifest"]["metadata"]["labels"][constants.LABEL_PERIOD] == job["period"]
    by_period = {j["period"]: j["time_range"] for j in jobs}
    assert by_period["2020_02"] == "2020-02-01:2020-02-29" and by_period["2023_02"] == "2023-02-01:2023-02-28"
    assert by_period["2024_12"] == "2024-12-01:2024-12-31"
    connector = jobs[1]
    assert connector["needs"] == [{"job": 0, "until": "launched", "reason": "topic btc_candles_1d_2020_01"}]


def test_five_year_backfill_under_a_limit_one_month_killed_and_retried(serve: Any, kube_env: Kube,
                                                                       client: Any) -> None:
    kube = kube_env
    served = serve(JOB_LIMITS=json.dumps({LOADER: LIMIT}), JOB_POD_ANNOTATIONS=json.dumps(RUN_FOR))
    r = client("start").post("/queues/plan", json=backfill())
    assert r.status_code == 200, r.text
    check_plan(r.json()["data"])
    assert kube.batch.list_namespaced_job(kube.namespace).items == []  # a plan launches nothing

    census = Census(kube)
    census.start()
    try:
        began = time.perf_counter()
        queue_id = start_queue(client, backfill())
        elapsed = time.perf_counter() - began
        print(f"\nstart of 120 jobs: {elapsed:.3f}s")
        first = kube.queue_jobs(queue_id)
        assert sorted((job_labels(j)[constants.LABEL_PERIOD], job_labels(j)[constants.LABEL_TARGET])
                      for j in first) == [(p, t) for p in months(2020, 2020)[:LIMIT] for t in (CONNECTOR, LOADER)]
        state = queue_state(client, queue_id)
        assert [j["status"] for j in state["jobs"]].count("pending") == 120 - 2 * LIMIT
        waiting = state["jobs"][2 * LIMIT]
        assert waiting["period"] == "2020_05" and waiting["waiting"].startswith("waiting for slot: loader-producer")

        run = Backfill(client, kube, queue_id)
        began = time.perf_counter()
        state = run.run_until(("error", "finished", "stopped"), kill=KILLED, timeout=300, log=served.log_tail)
        print(f"first pass over 60 months: {time.perf_counter() - began:.1f}s, {census.samples} census samples")
        errors = sorted(eta_errors(run.etas, len(state["jobs"])))
        assert len(errors) >= 20, f"only {len(errors)} ETA readings to judge"
        median, worst = errors[len(errors) // 2], errors[-1]
        print(f"ETA error over {len(errors)} readings: median {median:.1%}, 90th {errors[len(errors) * 9 // 10]:.1%}, "
              f"worst {worst:.1%}")
        assert median <= ETA_MEDIAN_ERROR and worst <= ETA_WORST_ERROR, f"ETA error {median:.1%}, worst {worst:.1%}"
        assert run.killed is not None, f"the loader Job of {KILLED} was never seen running"
        most, order = census.snapshot()
        assert most <= LIMIT, f"{most} loader Jobs unfinished at once (limit {LIMIT})"
        assert most == LIMIT, f"at most {most} loader Jobs at once: the limit of {LIMIT} was never used"
        assert sorted(order) == months(2020, 2024), f"each loader Job once: {order}"
        # Oldest first, by the claims (Jobs claimed in one write are created together, in any order).
        claims = [j["launched_at"] for j in sorted(state["jobs"], key=lambda j: j["period"]) if j["target"] == LOADER]
        assert claims == sorted(claims), "a later month was claimed before an older one"

        # Only the killed month failed: its loader by the deletion, its connector (running with it) ran on.
        assert state["status"] == "error", state["status"]
        assert "deleted outside the queue manager" in state["error_message"], state["error_message"]
        statuses = {(j["period"], j["target"]): j["status"] for j in state["jobs"]}
        assert statuses.pop((KILLED, LOADER)) == "error"
        assert statuses.pop((KILLED, CONNECTOR)) == "finished"
        assert set(statuses.values()) == {"finished"}, statuses
        [killed] = [j for j in state["jobs"] if (j["period"], j["target"]) == (KILLED, LOADER)]
        assert killed["job_name"] == run.killed and "deleted outside" in killed["error_message"]
        assert all(j["records_written"] == expected_records(j) for j in state["jobs"])
        assert state["records_written"] == sum(expected_records(j) for j in state["jobs"])

        before = set(names(kube.queue_jobs(queue_id)))
        old = {j["index"]: j["job_name"] for j in state["jobs"]}
        r = client("start").post(f"/queues/{queue_id}/retry")
        assert r.status_code == 200, r.text
        retried = r.json()["data"]["retried"]
        state = queue_state(client, queue_id)
        again = [j for j in state["jobs"] if j["period"] == KILLED]
        assert sorted(retried) == sorted(j["id"] for j in again), r.text
        assert [j["attempt"] for j in again] == [1, 1] and all(j["job_name"] != old[j["index"]] for j in again)
        assert all(j["attempt"] == 0 and j["job_name"] == old[j["index"]] for j in state["jobs"]
                   if j["period"] != KILLED)

        state = run.run_until(("error", "finished", "stopped"), timeout=60, log=served.log_tail)
        created = set(names(kube.queue_jobs(queue_id))) - before
        assert created == {j["job_name"] for j in again}, created
        assert {job_labels(j)[constants.LABEL_PERIOD] for j in kube.queue_jobs(queue_id)
                if j.metadata.name in created} == {KILLED}
        most, order = census.snapshot()
    finally:
        census.close()
    assert census.errors == []
    # Each loader Job once, and the retried month's again last. The first wave's Jobs are created
    # together, so the census may see them in any order; the claims above show oldest first.
    assert most <= LIMIT and sorted(order[:-1]) == months(2020, 2024) and order[-1] == KILLED, order
    assert state["status"] == "finished", state
    assert all(j["status"] == "finished" for j in state["jobs"])
    for job in state["jobs"]:
        assert job["records_written"] == expected_records(job), job
        assert run.reported[job["id"]] == job["records_written"]
    assert state["records_written"] == sum(expected_records(j) for j in state["jobs"])
    assert state["records_written"] == sum(range(1, 61)) * 2000 + 60 * 7


def test_stop_of_a_partitioned_queue_leaves_no_job_or_pod(kube_env: Kube, client: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    kube = kube_env
    monkeypatch.setenv("JOB_POD_ANNOTATIONS", json.dumps(KEEP_RUNNING))
    runtime.reset()
    queue_id = start_queue(client, backfill("2023-01-01:2023-06-30"))
    periods = months(2023, 2023)[:6]
    found = kube.queue_jobs(queue_id)
    assert sorted(job_labels(j)[constants.LABEL_PERIOD] for j in found) == sorted(periods * 2)
    kube.wait("12 pods Running", lambda: [phase(p) for p in kube.queue_pods(queue_id)] == ["Running"] * 12,
              timeout=90)
    assert sorted(job_labels(p)[constants.LABEL_PERIOD] for p in kube.queue_pods(queue_id)) == sorted(periods * 2)

    r = client("stop").post(f"/queues/{queue_id}/stop", json={"reason": "backfill stopped"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] in ("stopping", "stopped"), r.text
    state = confirm_stopped(client, kube, queue_id)
    time.sleep(1)  # and nothing comes back
    assert kube.queue_jobs(queue_id) == [] and kube.queue_pods(queue_id) == []
    assert (state["status"], state["stop_reason"]) == ("stopped", "backfill stopped")
    assert sorted(j["period"] for j in state["jobs"]) == sorted(periods * 2)
    assert {j["status"] for j in state["jobs"]} == {"stopped"}
