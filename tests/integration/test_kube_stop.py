"""The stop function deleting a queue's Jobs so that no pod is left behind.

A stop marks the queue `stopping`, publishes the stop command, and after the
grace period (STOP_GRACE_SECONDS) deletes the Jobs; the queue is `stopped`
only once the cluster confirms none of its Jobs or pods is left (at once, or
at the next sweep).

Pods that would finish on their own are no test of a stop, so the real
launcher's manifests get kwok's keep-running annotation (pods stay Running) or
a nodeSelector no node matches (pods stay Pending, unscheduled). Neither is a
product setting: a PatchingLauncher adds them to a copy of each manifest.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared import runtime
from shared.core import constants
from shared.examples import load
from tests.integration.kubeutil import Kube, PatchingLauncher, phase, running_or_pending, use_launcher

pytestmark = pytest.mark.kube


def phases(kube: Kube, queue_id: str) -> dict[str, str | None]:
    return {p.metadata.labels["job-name"]: phase(p) for p in kube.queue_pods(queue_id)}


def queue(client: Any, queue_id: str) -> dict[str, Any]:
    r = client("status").get(f"/queues/{queue_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def finish(client: Any, kube: Kube, queue_id: str) -> dict[str, Any]:
    """Wait for the cluster to drop every Job and pod of the queue, then let the sweep confirm it."""
    kube.wait("every Job and pod of the queue gone",
              lambda: not kube.queue_jobs(queue_id) and not kube.queue_pods(queue_id), timeout=60)
    if queue(client, queue_id)["status"] == "stopping":
        swept = client("stop").post("/sweep")
        assert swept.status_code == 200, swept.text
    return queue(client, queue_id)


@pytest.mark.parametrize("grace", ["0", "1"])
def test_stop_leaves_no_pod_running_or_pending(kube_env: Kube, client: Any, monkeypatch: pytest.MonkeyPatch,
                                               grace: str) -> None:
    kube = kube_env
    monkeypatch.setenv("STOP_GRACE_SECONDS", grace)  # "1": the Jobs go in the stop's background task
    runtime.reset()
    use_launcher(PatchingLauncher(runtime.get().settings.jobs, patch=running_or_pending))
    neighbour = client("start").post("/queues/start", json=load("legacy"))  # must survive the stop
    r = client("start").post("/queues/start", json={**load("realtime"), "mode": "parallel"})
    assert r.status_code == 200 and neighbour.status_code == 200, (r.text, neighbour.text)
    queue_id, other = r.json()["data"]["queue_id"], neighbour.json()["data"]["queue_id"]
    jobs = {j.metadata.name: int(j.metadata.labels[constants.LABEL_JOB_INDEX]) for j in kube.queue_jobs(queue_id)}
    assert len(jobs) == 7
    want = {name: "Running" if index % 2 == 0 else "Pending" for name, index in jobs.items()}

    kube.wait("4 pods Running, 3 Pending", lambda: phases(kube, queue_id) == want, timeout=90)
    time.sleep(1)  # and they stay that way: nothing but the stop will end them
    assert phases(kube, queue_id) == want
    assert all(p.spec.node_name is None for p in kube.queue_pods(queue_id) if phase(p) == "Pending")
    kube.wait("the neighbour's pod Running", lambda: list(phases(kube, other).values()) == ["Running"])

    stopped = client("stop").post(f"/queues/{queue_id}/stop", json={"reason": "integration test"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["data"]["status"] in ("stopping", "stopped"), stopped.text
    assert kube.queue_jobs(queue_id) == []  # the Jobs went with the stop (after the grace period) ...
    state = finish(client, kube, queue_id)  # ... and their pods, Running or Pending, follow
    time.sleep(2)  # and do not come back (no Job controller recreating them)
    assert kube.queue_pods(queue_id) == [] and kube.queue_jobs(queue_id) == []
    assert state["status"] == "stopped" and state["stop_reason"] == "integration test"
    assert {j["status"] for j in state["jobs"]} == {"stopped"}

    # Only that queue: the neighbour's Job and pod are untouched.
    assert len(kube.queue_jobs(other)) == 1
    assert list(phases(kube, other).values()) == ["Running"]
    assert queue(client, other)["status"] not in ("stopping", "stopped")

    again = client("stop").post(f"/queues/{queue_id}/stop")
    assert again.status_code == 200 and again.json()["message"] == "Queue already stopped", again.text


def test_stop_of_finished_pods_and_unknown_queue(kube_env: Kube, client: Any) -> None:
    kube = kube_env
    r = client("start").post("/queues/start", json={**load("historical"), "mode": "parallel"})
    assert r.status_code == 200, r.text
    queue_id = r.json()["data"]["queue_id"]
    kube.wait("6 pods Succeeded",
              lambda: list(phases(kube, queue_id).values()) == ["Succeeded"] * 6, timeout=120)

    stopped = client("stop").post("/queues/stop", params={"queue_id": queue_id})
    assert stopped.status_code == 200, stopped.text
    assert finish(client, kube, queue_id)["status"] == "stopped"

    unknown = client("stop").post("/queues/stop", params={"queue_id": "no-such-queue"})
    assert unknown.status_code == 404, unknown.text
