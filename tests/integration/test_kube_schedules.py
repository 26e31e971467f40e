"""Schedules ticked by Knative's real PingSource adapter (mtping) on the real control plane.

The PingSource of eventing/schedules.yaml is created as it is (in the test's namespace) under
upstream's CRD, given the status the eventing controller writes once its sink resolves (the
`start` function, a real functions-framework process, plus the spec's uri), and mtping runs as
its ServiceAccount with the controller's environment (tests/infra/ping_source.py). Its ticks,
one a minute, start one queue per fire time; a duplicate of a tick starts nothing, nor does a
tick once the schedule is paused. Three real ticks: 2-3 minutes of wall time (the first
comes at the next whole minute).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from shared.core import clock
from tests.conftest import ROOT
from tests.infra import ping_source as ps
from tests.infra.apiserver_source import AdapterError
from tests.infra.missing import unavailable
from tests.integration.kubeutil import Kube, yaml_documents
from tests.servers import FunctionServer

pytestmark = pytest.mark.kube

MANIFEST = ROOT / "eventing" / "schedules.yaml"
SCHEDULE = {"name": "every-minute", "cron": "* * * * *",
            "queue": {"symbol": "BTCUSDT", "time_range": "yesterday", "allow_overlap": True,
                      "requests": [{"target": "loader-producer", "type": "api_candles_1d"}]}}
LEASE = f"{ps.COMPONENT}.knative.dev.eventing.pkg.adapter.mtping.reconciler.00-of-01"
TICK_WAIT_S = 75  # one minute, the adapter's random delay (< 0.5 s) and the delivery


def ping_source() -> dict[str, Any]:
    [source] = [d for d in yaml_documents(MANIFEST) if d["kind"] == "PingSource"]
    return source


class Ticked:
    """The `start` and `status` functions, and mtping delivering the PingSource's ticks."""

    def __init__(self, kube: Kube, start: FunctionServer, status: FunctionServer,
                 adapter: ps.PingSourceAdapter, source: dict[str, Any]) -> None:
        self.kube, self.start, self.status, self.adapter, self.source = kube, start, status, adapter, source

    def next_tick(self, after: dt.datetime) -> dict[str, str]:
        """The first tick mtping began after ``after``, once it is delivered."""
        deadline = time.monotonic() + TICK_WAIT_S
        while time.monotonic() < deadline:
            assert self.adapter.alive(), self.adapter.log_tail()
            later = [t for t in self.adapter.sent() if stamp(t["ts"]) > after]
            if later and later[0]["id"] in self.adapter.finished():
                return later[0]
            time.sleep(0.2)
        raise AssertionError(f"no tick delivered within {TICK_WAIT_S}s after {after}:\n{self.adapter.log_tail()}")

    def runs(self) -> list[dict[str, Any]]:
        code, body = self.status.call("GET", f"/schedules/{SCHEDULE['name']}")
        assert code == 200, body
        return list(body["data"]["runs"])

    def queues(self) -> list[dict[str, Any]]:
        code, body = self.status.call("GET", "/queues?symbol=BTCUSDT&limit=500")
        assert code == 200, body
        return list(body["data"])

    def again(self, tick: dict[str, str]) -> dict[str, Any]:
        """The same tick delivered once more (same CloudEvent id), as a retry would be."""
        spec = self.source["spec"]
        headers = {"ce-specversion": "1.0", "ce-id": tick["id"], "ce-type": ps.EVENT_TYPE,
                   "ce-source": tick["source"], "content-type": spec["contentType"]}
        code, body = self.start.call("POST", spec["sink"]["uri"], headers=headers, raw=spec["data"].encode())
        assert code == 200, body
        return dict(body["data"])


def stamp(text: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def minute_of(tick: dict[str, str]) -> dt.datetime:
    return stamp(tick["ts"]).astimezone(dt.UTC).replace(second=0, microsecond=0)


def key(run: dict[str, Any]) -> tuple[Any, ...]:
    return run["fire"], run["outcome"], run.get("queue_id")


def clear_of_the_minute() -> None:
    """Not within a second of a tick: a schedule created then could miss its first fire time."""
    s = dt.datetime.now(dt.UTC)
    second = s.second + s.microsecond / 1e6
    if second >= 59.0 or second < 0.8:
        time.sleep((60.8 - second) % 60)


@pytest.fixture
def ticked(kube_env: Kube, tmp_path: Any) -> Iterator[Ticked]:
    kube = kube_env
    try:
        ps.binary()
        ps.module_dir()  # upstream's CRD, RBAC and ConfigMaps
    except AdapterError as e:
        unavailable(f"Knative's PingSource adapter unavailable: {e}")
    ps.install(kube.api)
    env = dict(os.environ)
    with FunctionServer("start", env, tmp_path) as start, FunctionServer("status", env, tmp_path) as status:
        source = ping_source()
        body = copy.deepcopy(source)
        body["metadata"]["namespace"] = kube.namespace
        name = body["metadata"]["name"]
        k8s.CustomObjectsApi(kube.api).create_namespaced_custom_object(
            ps.GROUP, ps.VERSION, kube.namespace, ps.PLURAL, body)
        stored = ps.mark_ready(kube.api, kube.namespace, name, start.url + source["spec"]["sink"]["uri"])
        assert stored["status"]["sinkUri"] == f"{start.url}/schedules/tick"
        token = kube.cp.service_account_token(ps.SYSTEM_NAMESPACE, ps.ACCOUNT, create=False)
        adapter = ps.PingSourceAdapter(server=kube.cp.server, ca_path=kube.cp.ca_path, token=token,
                                       workdir=tmp_path)
        adapter.start(f"{kube.namespace}/{name}")
        try:
            yield Ticked(kube, start, status, adapter, source)
        finally:
            adapter.stop()


def test_real_ping_source_ticks_start_one_queue_per_fire_time_and_none_once_paused(ticked: Ticked) -> None:
    t, kube = ticked, ticked.kube
    t0 = time.monotonic()
    lease: Any = k8s.CoordinationV1Api(kube.api).read_namespaced_lease(LEASE, ps.SYSTEM_NAMESPACE)
    assert lease.spec.holder_identity, lease  # HA on: it leads the one bucket of its reconciler

    clear_of_the_minute()
    code, body = t.start.call("POST", "/schedules", SCHEDULE)
    assert code == 201, body
    created = dt.datetime.now(dt.UTC)
    fires = [clock.parse(f) for f in body["data"]["next_fire_times"][:2]]
    target = f"{t.start.url}{t.source['spec']['sink']['uri']}"
    source = f"/apis/v1/namespaces/{kube.namespace}/pingsources/{t.source['metadata']['name']}"

    ticks: list[dict[str, str]] = []
    for n in (1, 2):
        tick = t.next_tick(stamp(ticks[-1]["ts"]) if ticks else created)
        ticks.append(tick)
        assert (tick["source"], tick["target"]) == (source, target), tick
        assert minute_of(tick) == fires[n - 1], (tick, fires)
        runs = t.runs()
        assert len(runs) == n, runs
        assert (clock.parse(runs[0]["fire"]), runs[0]["outcome"]) == (fires[n - 1], "started"), runs
        assert t.again(tick)["runs"] == [], "a duplicate of the tick started something"
        assert len(t.runs()) == n
        print(f"tick {n}: {tick['ts']} id {tick['id']} -> queue {runs[0]['queue_id']} "
              f"({time.monotonic() - t0:.1f}s into the test)")

    runs = t.runs()
    assert len({r["queue_id"] for r in runs}) == 2, runs
    assert {q["id"] for q in t.queues()} == {r["queue_id"] for r in runs}
    # JOB_LAUNCHER=kubernetes: each queue's Job is in the cluster
    kube.wait("a Job per queue", lambda: [len(kube.queue_jobs(r["queue_id"])) for r in runs] == [1, 1])

    code, body = t.start.call("POST", f"/schedules/{SCHEDULE['name']}/pause")
    assert code == 200 and body["data"]["paused"] is True, body
    paused = dt.datetime.now(dt.UTC)
    third = t.next_tick(max(paused, stamp(ticks[-1]["ts"])))
    assert minute_of(third) > minute_of(ticks[-1]), third
    assert [key(r) for r in t.runs()] == [key(r) for r in runs], "a paused schedule started something"
    assert len(t.queues()) == 2
    assert t.adapter.failed() == [], t.adapter.failed()
    print(f"3 real ticks in {time.monotonic() - t0:.1f}s")
