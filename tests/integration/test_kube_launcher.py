"""The start function launching real Jobs through a real kube-apiserver.

Every Job goes through the API server's own validation and admission; the Job
controller, the scheduler and kwok then run its pod to completion. The
in-process `start` function is configured only through the environment
(JOB_LAUNCHER=kubernetes, KUBECONFIG, JOB_NAMESPACE: see conftest.kube_env).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared import runtime
from shared.adapters.launch.kube import KubeLauncher
from shared.core import constants, lifecycle
from shared.core.errors import BackendUnavailable
from shared.core.models import QueueStart
from shared.examples import load
from shared.services.service import queue_id_for
from tests.integration.conftest import TTL
from tests.integration.kubeutil import Kube, is_complete, job_labels, names, phase, use_launcher

pytestmark = pytest.mark.kube

RECOMMENDED = (constants.LABEL_NAME, constants.LABEL_INSTANCE, constants.LABEL_COMPONENT,
               constants.LABEL_PART_OF, constants.LABEL_MANAGED_BY)
CREDENTIALS = {"KAFKA_USER": "streamforge-kafka", "KAFKA_PASSWORD": "streamforge-kafka",
               "ARANGO_USER": "streamforge-arango", "ARANGO_PASSWORD": "streamforge-arango"}


def parallel(example: str) -> dict[str, Any]:
    return {**load(example), "mode": "parallel"}  # every Job at once


def start(client: Any, payload: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return client("start").post("/queues/start", json=payload, headers=headers)


def uids(jobs: list[Any]) -> dict[str, str]:
    return {j.metadata.name: j.metadata.uid for j in jobs}


def rendered(queue_id: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The exact manifests a start of ``payload`` as ``queue_id`` renders."""
    service = runtime.get().service
    state = lifecycle.new_queue(queue_id=queue_id, command=QueueStart.parse(payload), now="2024-01-01T00:00:00Z")
    return [service.render(state, job) for job in state.jobs]


@pytest.mark.parametrize("example, count", [("historical", 6), ("realtime", 7)])
def test_seed_example_launches_one_valid_job_per_request(kube_env: Kube, client: Any, example: str,
                                                         count: int) -> None:
    kube = kube_env
    neighbour = start(client, load("legacy"))  # another queue in the namespace: the selector must tell them apart
    assert neighbour.status_code == 200, neighbour.text

    r = start(client, parallel(example))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    queue_id = data["queue_id"]
    assert data["launcher"] == f"Jobs created in namespace {kube.namespace}"
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert len(state["jobs"]) == count
    assert all(j["created"] and j["status"] == "launched" for j in state["jobs"]), state["jobs"]

    # Created (201) means accepted by the API server's validation and admission.
    found = kube.queue_jobs(queue_id)
    assert names(found) == sorted(j["job_name"] for j in state["jobs"])
    everything = kube.batch.list_namespaced_job(kube.namespace).items
    assert len(everything) == count + 1
    by_name = {j["job_name"]: j for j in state["jobs"]}
    for job in found:
        labels = job_labels(job)
        assert all(labels.get(k) for k in RECOMMENDED), labels
        assert labels[constants.LABEL_PART_OF] == constants.PART_OF
        assert labels[constants.LABEL_MANAGED_BY] == constants.MANAGED_BY
        assert labels[constants.LABEL_INSTANCE] == job.metadata.name
        assert labels[constants.LABEL_NAME] == by_name[job.metadata.name]["target"]
        assert job.spec.template.metadata.labels[constants.LABEL_QUEUE_ID] == queue_id
        assert job.spec.ttl_seconds_after_finished == TTL
        [container] = job.spec.template.spec.containers
        env = {e.name: e for e in container.env}
        assert env["QUEUE_ID"].value == queue_id
        assert env["JOB_ID"].value == by_name[job.metadata.name]["id"]
        for name, secret in CREDENTIALS.items():
            ref = env[name].value_from.secret_key_ref if env[name].value_from else None
            assert env[name].value is None and ref is not None and ref.name == secret, env[name]

    def complete() -> list[Any]:
        jobs = kube.queue_jobs(queue_id)
        return jobs if len(jobs) == count and all(is_complete(j) for j in jobs) else []

    for job in kube.wait(f"{count} Jobs Complete", complete, timeout=120):
        assert job.status.succeeded == 1 and not job.status.failed
    pods = kube.queue_pods(queue_id)
    assert len(pods) == count and {phase(p) for p in pods} == {"Succeeded"}
    assert {p.metadata.labels["job-name"] for p in pods} == set(by_name)


def test_replayed_start_adopts_its_jobs(kube_env: Kube, client: Any) -> None:
    kube = kube_env
    payload = parallel("historical")
    first = start(client, payload, key="replay-1")
    assert first.status_code == 200, first.text
    queue_id = first.json()["data"]["queue_id"]
    before = uids(kube.queue_jobs(queue_id))
    assert len(before) == 6

    again = start(client, payload, key="replay-1")
    assert again.status_code == 200, again.text
    assert again.json()["data"]["queue_id"] == queue_id
    assert "already started" in again.json()["message"]
    assert uids(kube.queue_jobs(queue_id)) == before  # the same 6 Jobs, none recreated or added

    # Launching the same manifests again (a retry racing the first): every create is a 409, adopted.
    launcher = runtime.get().service.launcher
    assert sorted(launcher.launch(rendered(queue_id, payload))) == sorted(before)
    assert uids(kube.queue_jobs(queue_id)) == before


class DiesMidLaunch(KubeLauncher):
    """Creates the first two Jobs, then fails as if the function had died."""

    def launch(self, manifests: list[dict[str, Any]]) -> list[str]:
        super().launch(manifests[:2])
        raise BackendUnavailable("kubernetes", "simulated: connection lost mid-launch")


def test_retry_after_interrupted_start_creates_only_the_rest(kube_env: Kube, client: Any) -> None:
    kube = kube_env
    payload = parallel("realtime")
    use_launcher(DiesMidLaunch(runtime.get().settings.jobs))
    first = start(client, payload, key="interrupted-1")
    assert first.status_code == 503, first.text
    queue_id = queue_id_for("interrupted-1")
    assert {"queue_id": queue_id, "retry": "repeat the start with the same key"} in first.json()["errors"]
    survivors = uids(kube.queue_jobs(queue_id))
    assert len(survivors) == 2

    use_launcher(None)  # the retry runs with the real launcher
    again = start(client, payload, key="interrupted-1")
    assert again.status_code == 200, again.text
    now = uids(kube.queue_jobs(queue_id))
    assert len(now) == 7 and len(kube.batch.list_namespaced_job(kube.namespace).items) == 7
    assert {n: now[n] for n in survivors} == survivors  # adopted, not recreated
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert all(j["created"] for j in state["jobs"])


def test_jobs_created_by_hand_before_the_start_are_adopted(kube_env: Kube, client: Any) -> None:
    kube = kube_env
    payload = parallel("historical")
    queue_id = queue_id_for("by-hand-1")
    manifests = rendered(queue_id, payload)
    for m in (manifests[1], manifests[4]):
        kube.batch.create_namespaced_job(kube.namespace, m)
    by_hand = uids(kube.queue_jobs(queue_id))
    assert len(by_hand) == 2

    r = start(client, payload, key="by-hand-1")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["queue_id"] == queue_id
    now = uids(kube.queue_jobs(queue_id))
    assert sorted(now) == sorted(m["metadata"]["name"] for m in manifests)
    assert {n: now[n] for n in by_hand} == by_hand


def test_job_name_taken_by_another_queue_is_a_409(kube_env: Kube, client: Any) -> None:
    kube = kube_env
    payload = parallel("historical")
    queue_id = queue_id_for("taken-1")
    squatter = copy.deepcopy(rendered(queue_id, payload)[0])
    for labels in (squatter["metadata"]["labels"], squatter["spec"]["template"]["metadata"]["labels"]):
        labels[constants.LABEL_QUEUE_ID] = "some-other-queue"
    kube.batch.create_namespaced_job(kube.namespace, squatter)
    name = squatter["metadata"]["name"]
    uid = kube.batch.read_namespaced_job(name, kube.namespace).metadata.uid

    r = start(client, payload, key="taken-1")
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["status"] == "error" and name in body["message"] and "another queue" in body["message"]
    kept = kube.batch.read_namespaced_job(name, kube.namespace)
    assert kept.metadata.uid == uid and job_labels(kept)[constants.LABEL_QUEUE_ID] == "some-other-queue"
    # The queue is recorded as failed and the Jobs it did create are cleaned up.
    state = client("status").get(f"/queues/{queue_id}").json()["data"]
    assert state["status"] == "error" and "another queue" in state["error_message"]
    kube.wait("the queue's other Jobs deleted", lambda: not kube.queue_jobs(queue_id))


def test_api_server_refusal_is_an_envelope_not_a_500(kube_env: Kube, client: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    kube = kube_env
    # Creating in a namespace that does not exist: the API server answers 404.
    monkeypatch.setenv("JOB_NAMESPACE", f"{kube.namespace}-missing")
    runtime.reset()
    r = start(client, parallel("historical"), key="no-namespace")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == "error" and body["message"].startswith("kubernetes unavailable"), body
    assert {"queue_id": queue_id_for("no-namespace"), "retry": "repeat the start with the same key"} in body["errors"]
    assert kube.batch.list_namespaced_job(kube.namespace).items == []
