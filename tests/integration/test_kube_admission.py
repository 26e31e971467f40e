"""Admission and stop on the real control plane: slots, priorities, leases, deadlines, overlaps.

The same behaviours as tests/functions/test_admission.py (local launcher), proven
with the Jobs themselves: what matters is which Jobs exist in the cluster, not
only what the state says. JOB_LIMITS etc. are set before ``runtime.reset()``;
where a second instance acts (the slot freed by a Job completing, a stop's
grace period) the functions also run as a real server fed by the real
ApiServerSource adapter (eventing/apiserver-source.yaml).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from shared import runtime
from shared.adapters import metrics
from shared.core import constants
from shared.services.leases import slot_key
from tests.integration.kubeutil import (
    KEEP_RUNNING,
    Kube,
    PatchingLauncher,
    Reconciler,
    confirm_stopped,
    is_complete,
    phase,
    queue_state,
    running_or_pending,
    start_queue,
    use_launcher,
)

pytestmark = pytest.mark.kube

LIMIT_ONE = json.dumps({"loader-producer": 1})
SLOT_FULL = "waiting for slot: loader-producer 1/1 in use"


def legacy(symbol: str, priority: int = 5, **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "time_range": "2024-01-01:2024-01-03", "priority": priority,
            "requests": [{"target": "loader-producer", "type": "api_trades"}], **extra}


@pytest.fixture
def configure(kube_env: Kube, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """configure(serve=False|True, watch=..., **env): the env for both instances; optionally the server."""
    started: list[Reconciler] = []

    def setup(*, serve: bool = False, watch: bool = True, **env: str) -> Reconciler | None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        if not serve:
            return None
        started.append(Reconciler(kube_env, tmp_path).start(watch=watch))
        return started[-1]

    yield setup
    for r in started:
        r.close()


start = start_queue


def job(client: Any, queue_id: str) -> dict[str, Any]:
    return queue_state(client, queue_id)["jobs"][0]


def finish(client: Any, queue_id: str) -> None:
    body = {"type": "telemetry", "queue_id": queue_id, "job_id": job(client, queue_id)["id"], "status": "finished"}
    r = client("telemetry").post("/", json=body)
    assert r.status_code == 200 and r.json()["data"]["outcome"] == "applied", r.text


def all_jobs(kube: Kube) -> list[Any]:
    return list(kube.batch.list_namespaced_job(kube.namespace).items)


def owners(kube: Kube) -> list[str]:
    """The queue of every Job in the namespace (a list: a queue twice would show)."""
    return sorted(j.metadata.annotations[constants.LABEL_QUEUE_ID] for j in all_jobs(kube))


def test_limit_one_runs_queues_one_after_another_by_priority(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    configure(JOB_LIMITS=LIMIT_ONE, JOB_POD_ANNOTATIONS=json.dumps(KEEP_RUNNING))
    low = start(client, legacy("ETHUSDT", 3))
    high = start(client, legacy("BTCUSDT", 9))
    late = start(client, legacy("SOLUSDT", 3))
    assert job(client, low)["status"] == "launched"
    assert (job(client, high)["status"], job(client, high)["waiting"]) == ("pending", SLOT_FULL)
    assert job(client, late)["status"] == "pending"
    assert job(client, late)["waiting"].startswith("waiting for slot: loader-producer")
    assert owners(kube) == [low]  # the waiting queues have no Job in the cluster

    finish(client, low)
    assert owners(kube) == sorted([low, high]), "the higher priority goes first"
    assert job(client, late)["status"] == "pending" and kube.queue_jobs(late) == []
    finish(client, high)
    assert owners(kube) == sorted([low, high, late])
    assert job(client, late)["status"] == "launched"


def test_slot_freed_by_a_job_completing_launches_the_next(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    served = configure(serve=True, JOB_LIMITS=LIMIT_ONE,
                       JOB_POD_ANNOTATIONS=json.dumps({"streamforge.test/kwok-run-for": "4s"}))
    first = start(client, legacy("ETHUSDT"))
    second = start(client, legacy("BTCUSDT"))
    assert (job(client, second)["status"], job(client, second)["waiting"]) == ("pending", SLOT_FULL)
    assert owners(kube) == [first]

    # No telemetry: kwok completes the first Job, the adapter tells the server, which launches the second.
    [created] = kube.wait("the second queue's Job", lambda: kube.queue_jobs(second), timeout=60)
    [done] = kube.queue_jobs(first)
    assert is_complete(done) and done.status.completion_time <= created.metadata.creation_timestamp
    assert queue_state(client, first)["status"] == "finished"
    kube.wait("the second queue finished too", lambda: queue_state(client, second)["status"] == "finished")
    assert served is not None and len(served.job_events()) >= 4


def test_lease_left_by_a_killed_function_expires(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    configure(JOB_LIMITS=LIMIT_ONE, LEASE_TTL_SECONDS="2")
    slots = runtime.get().service.slots
    assert slots is not None and slots.acquire("loader-producer", "dead/instance")
    taken = time.monotonic()
    queue = start(client, legacy("BTCUSDT"))
    assert (job(client, queue)["status"], job(client, queue)["waiting"]) == ("pending", SLOT_FULL)
    r = client("stop").post("/sweep")
    assert r.status_code == 200, r.text
    assert job(client, queue)["status"] == "pending" and all_jobs(kube) == []  # the lease is still live

    before = metrics.LEASE_EXPIRATIONS.labels("loader-producer")._value.get()
    time.sleep(max(0.0, taken + 2.2 - time.monotonic()))
    r = client("stop").post("/sweep")
    assert r.status_code == 200, r.text
    assert job(client, queue)["status"] == "launched"
    assert [j.metadata.name for j in all_jobs(kube)] == [job(client, queue)["job_name"]]
    assert metrics.LEASE_EXPIRATIONS.labels("loader-producer")._value.get() == before + 1
    lease = json.loads(slots.store.get(slot_key("loader-producer", 0))[0])
    assert lease["holder"] == f"{queue}/{job(client, queue)['id']}"
    kube.wait("its pod scheduled and run", lambda: [phase(p) for p in kube.queue_pods(queue)] == ["Succeeded"])


def test_queue_past_its_deadline_is_stopped_by_the_sweep(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    configure(JOB_POD_ANNOTATIONS=json.dumps(KEEP_RUNNING))
    payload = legacy("BTCUSDT", timeout_seconds=2, mode="parallel")
    payload["requests"].append({"target": "loader-producer", "type": "api_candles_5m"})
    started = time.monotonic()
    queue = start(client, payload)
    assert client("stop").post("/sweep").json()["data"]["timed_out"] == []
    kube.wait("2 pods Running", lambda: [phase(p) for p in kube.queue_pods(queue)] == ["Running"] * 2)

    time.sleep(max(0.0, started + 2.2 - time.monotonic()))
    report = client("stop").post("/sweep").json()["data"]
    assert report["timed_out"] == [queue], report
    state = confirm_stopped(client, kube, queue)
    assert (state["status"], state["stop_reason"]) == ("stopped", "timeout")
    assert [j["status"] for j in state["jobs"]] == ["stopped", "stopped"]
    assert kube.queue_jobs(queue) == [] and kube.queue_pods(queue) == []


def test_stop_reports_stopped_only_when_no_pod_is_left(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    served = configure(serve=True, watch=False, STOP_GRACE_SECONDS="2")
    assert served is not None
    use_launcher(PatchingLauncher(runtime.get().settings.jobs, patch=running_or_pending))
    payload = {**legacy("BTCUSDT", mode="parallel"), "requests": [
        {"target": "loader-producer", "type": t} for t in ("api_trades", "api_candles_5m", "api_candles_1h")]}
    queue = start(client, payload)
    want = ["Running", "Pending", "Running"]
    by_job = lambda: [phase(p) for p in sorted(kube.queue_pods(queue), key=lambda p: p.metadata.labels[  # noqa: E731
        constants.LABEL_JOB_INDEX])]
    kube.wait("pods Running, Pending, Running", lambda: by_job() == want)
    held = next(p.metadata.name for p in kube.queue_pods(queue) if phase(p) == "Running")
    hold = "streamforge.test/hold"  # a pod that takes its time to go (a slow kubelet, a volume detaching)
    kube.core.patch_namespaced_pod(held, kube.namespace, {"metadata": {"finalizers": [hold]}})

    code, body = served.call("POST", f"/queues/{queue}/stop", {"reason": "admission test"})
    assert code == 200 and body["data"]["status"] == "stopping", body
    assert queue_state(client, queue)["status"] == "stopping"
    assert len(kube.queue_jobs(queue)) == 3  # the grace period: the Jobs may flush
    kube.wait("the Jobs deleted after the grace period", lambda: not kube.queue_jobs(queue), timeout=20)
    kube.wait("every pod gone but the held one", lambda: [p.metadata.name for p in kube.queue_pods(queue)] == [held])

    for _ in range(3):  # while a pod is left, the queue stays stopping (and the sweep agrees)
        time.sleep(1)
        assert queue_state(client, queue)["status"] == "stopping"
    assert client("stop").post("/sweep").json()["data"]["stopped"] == []
    [pod] = kube.queue_pods(queue)
    assert pod.metadata.deletion_timestamp is not None and queue_state(client, queue)["status"] == "stopping"

    rest = [f for f in pod.metadata.finalizers if f != hold]
    kube.core.patch_namespaced_pod(held, kube.namespace, [{"op": "replace", "path": "/metadata/finalizers",
                                                           "value": rest}])
    # The stop function's own confirmation loop (no sweep) sees the last pod go.
    state = kube.wait("stopped", lambda: (s := queue_state(client, queue))["status"] == "stopped" and s, timeout=20)
    assert kube.queue_pods(queue) == [] and kube.queue_jobs(queue) == []
    assert state["stop_reason"] == "admission test" and {j["status"] for j in state["jobs"]} == {"stopped"}


def test_overlapping_start_is_409_naming_the_first_queue(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    configure()
    first = start(client, legacy("ETHUSDT"))
    overlapping = legacy("ETHUSDT", time_range="2024-01-03:2024-01-09")
    r = client("start").post("/queues/start", json=overlapping)
    assert r.status_code == 409, r.text
    assert first in r.json()["message"] and "loader-producer/api_trades" in r.json()["message"]
    assert owners(kube) == [first]  # nothing launched for the refused start
    second = start(client, {**overlapping, "allow_overlap": True})
    assert owners(kube) == sorted([first, second])


def priority_class(kube: Kube, name: str, value: int) -> None:
    k8s.SchedulingV1Api(kube.api).create_priority_class(
        k8s.V1PriorityClass(metadata=k8s.V1ObjectMeta(name=name), value=value))


def test_priority_classes_reach_the_pods(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    low, high = f"{kube.namespace}-low", f"{kube.namespace}-high"  # cluster-scoped: one per test
    scheduling = k8s.SchedulingV1Api(kube.api)
    priority_class(kube, low, 100)
    priority_class(kube, high, 100000)
    try:
        configure(JOB_PRIORITY_CLASSES=json.dumps({"1-4": low, "8-10": high}))
        queues = {p: start(client, legacy(s, p)) for p, s in ((9, "BTCUSDT"), (5, "ETHUSDT"), (2, "SOLUSDT"))}
        expected = {9: (high, 100000), 5: (None, 0), 2: (low, 100)}
        for p, queue in queues.items():
            [created] = kube.queue_jobs(queue)
            assert created.spec.template.spec.priority_class_name == expected[p][0]
            [pod] = kube.wait(f"the pod of priority {p}", lambda q=queue: kube.queue_pods(q))
            assert (pod.spec.priority_class_name, pod.spec.priority or 0) == expected[p]
    finally:
        for name in (low, high):
            scheduling.delete_priority_class(name)


def failed_creates(kube: Kube, job_name: str) -> list[str]:
    events = kube.core.list_namespaced_event(kube.namespace, field_selector=f"involvedObject.name={job_name}")
    return [e.message for e in events.items if e.reason == "FailedCreate"]


def test_missing_priority_class_the_job_is_accepted_its_pods_are_not(configure: Any, kube_env: Kube,
                                                                      client: Any) -> None:
    """Why the launcher checks the class: the API server takes such a Job and refuses its pods."""
    kube = kube_env
    missing = f"{kube.namespace}-missing"
    configure(JOB_PRIORITY_CLASSES=json.dumps({"8-10": missing}))
    plan = client("start").post("/queues/plan", json=legacy("BTCUSDT", 9)).json()["data"]
    manifest = plan["jobs"][0]["manifest"]
    assert manifest["spec"]["template"]["spec"]["priorityClassName"] == missing
    created = kube.batch.create_namespaced_job(kube.namespace, manifest)  # the API server takes the Job ...
    name = created.metadata.name
    # ... and the Priority admission plugin refuses each pod the Job controller tries to create.
    [message, *_] = kube.wait("a FailedCreate event on the Job", lambda: failed_creates(kube, name))
    assert f"no PriorityClass with name {missing} was found" in message


def test_missing_priority_class_is_reported_not_silently_stuck(configure: Any, kube_env: Kube, client: Any) -> None:
    kube = kube_env
    missing = f"{kube.namespace}-missing"
    configure(JOB_PRIORITY_CLASSES=json.dumps({"8-10": missing}))
    r = client("start").post("/queues/start", json=legacy("BTCUSDT", 9))
    if r.status_code != 200:  # refusing the start, naming the class, is one acceptable answer
        assert missing in r.text
        return
    queue = r.json()["data"]["queue_id"]
    kube.wait("a FailedCreate event on the Job", lambda: failed_creates(kube, job(client, queue)["job_name"]))

    def told() -> bool:  # ... saying so in the queue (job error or waiting reason, or drift) is the other
        drift = client("status").get(f"/queues/{queue}/drift").json()["data"]
        return missing in json.dumps(queue_state(client, queue)) or not drift["in_sync"]

    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not told():
        time.sleep(0.5)
    assert told(), queue_state(client, queue)
