"""The seed's pipelines through their whole lifecycle on the real control plane.

tests/functions/test_orchestration.py proves the launch order on the state; here
it is proven on the cluster: after each telemetry report, exactly the Jobs the
DAG allows exist. Every pod is kept Running (kwok-keep-running, set through the
product's JOB_POD_ANNOTATIONS) so that only the telemetry moves the queue.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import runtime
from shared.core import constants
from shared.examples import load
from tests.integration.kubeutil import KEEP_RUNNING, Kube, confirm_stopped, names, phase, queue_state, start_queue

pytestmark = pytest.mark.kube

LOADERS_AND_CONNECTORS = ["0", "1", "2", "3"]


@pytest.fixture
def pipeline_env(kube_env: Kube, monkeypatch: pytest.MonkeyPatch) -> Kube:
    monkeypatch.setenv("JOB_POD_ANNOTATIONS", json.dumps(KEEP_RUNNING))
    runtime.reset()
    return kube_env


start = start_queue


def in_cluster(kube: Kube, queue_id: str) -> list[str]:
    """The request index (label streamforge.dev/job-index) of each of the queue's Jobs, sorted."""
    return sorted(j.metadata.labels[constants.LABEL_JOB_INDEX] for j in kube.queue_jobs(queue_id))


def report(client: Any, queue_id: str, index: int, status: str, **extra: Any) -> None:
    job_id = queue_state(client, queue_id)["jobs"][index]["id"]
    body = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": status, **extra}
    r = client("telemetry").post("/", json=body)
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "applied", r.text


def statuses(client: Any, queue_id: str) -> list[str]:
    return [j["status"] for j in queue_state(client, queue_id)["jobs"]]


def check_jobs_match_state(kube: Kube, client: Any, queue_id: str) -> None:
    """Every Job in the cluster is one the state launched, under the name the state gives it."""
    state = queue_state(client, queue_id)
    launched = sorted(j["job_name"] for j in state["jobs"] if j["created"])
    assert names(kube.queue_jobs(queue_id)) == launched
    for found in kube.queue_jobs(queue_id):
        stored = state["jobs"][int(found.metadata.labels[constants.LABEL_JOB_INDEX])]
        assert found.metadata.labels[constants.LABEL_TARGET] == stored["target"]
        env = {e.name: e.value for e in found.spec.template.spec.containers[0].env}
        assert (env["JOB_ID"], env["TYPE"]) == (stored["id"], stored["type"])


def test_historical_pipeline_runs_in_data_order(pipeline_env: Kube, client: Any) -> None:
    kube = pipeline_env
    queue = start(client, load("historical"))  # default mode: dag
    assert in_cluster(kube, queue) == LOADERS_AND_CONNECTORS  # loaders with their connectors, nothing else
    check_jobs_match_state(kube, client, queue)
    kube.wait("the 4 pods Running", lambda: [phase(p) for p in kube.queue_pods(queue)] == ["Running"] * 4)

    for index in range(4):
        report(client, queue, index, "loading", records_written=10)
    report(client, queue, 2, "finished", records_written=100)  # one connector done: not enough
    assert in_cluster(kube, queue) == LOADERS_AND_CONNECTORS
    waiting = queue_state(client, queue)["jobs"][4]["waiting"]
    assert "arango-connector/api_trades to finish" in waiting, waiting

    report(client, queue, 3, "finished", records_written=200)  # both connectors done: graph-builder
    assert in_cluster(kube, queue) == [*LOADERS_AND_CONNECTORS, "4"]
    assert statuses(client, queue)[4:] == ["launched", "pending"]
    check_jobs_match_state(kube, client, queue)

    report(client, queue, 4, "running")
    assert in_cluster(kube, queue) == [*LOADERS_AND_CONNECTORS, "4"]  # the trainer waits for it to *finish*
    report(client, queue, 4, "finished", records_written=7)
    assert in_cluster(kube, queue) == [*LOADERS_AND_CONNECTORS, "4", "5"]
    check_jobs_match_state(kube, client, queue)
    kube.wait("all 6 pods Running", lambda: [phase(p) for p in kube.queue_pods(queue)] == ["Running"] * 6)

    for index in (0, 1, 5):
        assert queue_state(client, queue)["status"] == "loading"
        report(client, queue, index, "finished", records_written=1 if index == 5 else 50)
    state = queue_state(client, queue)
    assert state["status"] == "finished" and statuses(client, queue) == ["finished"] * 6
    assert state["records_written"] == 50 + 50 + 100 + 200 + 7 + 1
    assert len(kube.queue_jobs(queue)) == 6  # nothing launched twice, nothing more


def test_realtime_pipeline_streams_then_stops(pipeline_env: Kube, client: Any) -> None:
    kube = pipeline_env
    queue = start(client, load("realtime"))
    assert in_cluster(kube, queue) == LOADERS_AND_CONNECTORS
    kube.wait("the 4 pods Running", lambda: [phase(p) for p in kube.queue_pods(queue)] == ["Running"] * 4)

    report(client, queue, 0, "running")
    report(client, queue, 2, "running")  # one connector streaming: the graph needs both
    assert in_cluster(kube, queue) == LOADERS_AND_CONNECTORS
    report(client, queue, 3, "loading")
    assert in_cluster(kube, queue) == [*LOADERS_AND_CONNECTORS, "4"]
    assert statuses(client, queue)[4:] == ["launched", "pending", "pending"]
    check_jobs_match_state(kube, client, queue)

    report(client, queue, 4, "running")  # the graph streams: its trainer and visualizer start
    assert in_cluster(kube, queue) == [*LOADERS_AND_CONNECTORS, "4", "5", "6"]
    check_jobs_match_state(kube, client, queue)
    kube.wait("all 7 pods Running", lambda: [phase(p) for p in kube.queue_pods(queue)] == ["Running"] * 7)
    assert queue_state(client, queue)["status"] == "loading"

    stopped = client("stop").post(f"/queues/{queue}/stop", json={"reason": "end of the stream"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["data"]["status"] in ("stopping", "stopped"), stopped.text
    assert kube.queue_jobs(queue) == []  # all 7 Jobs deleted by the stop (STOP_GRACE_SECONDS=0)
    state = confirm_stopped(client, kube, queue)  # and their pods follow
    assert state["status"] == "stopped" and state["stop_reason"] == "end of the stream"
    assert statuses(client, queue) == ["stopped"] * 7
    assert kube.queue_pods(queue) == []
