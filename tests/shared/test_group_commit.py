"""Telemetry's group commit: reports merged together answer exactly as if merged one by one, on
both state backends (SQLite's transaction, ArangoDB's stream transaction on the stand-in)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared import runtime
from shared.adapters.state import forget
from shared.adapters.state.arango import ArangoStore
from shared.adapters.state.base import GroupConflict
from shared.adapters.state.sqlite import SqliteStore
from shared.core.config import ArangoSettings
from shared.core.errors import BackendUnavailable, InvalidInput, NotFound
from shared.core.models import QueueStart, Telemetry
from shared.examples import load
from shared.services.intake import Intake
from shared.services.service import QueueService
from tests.arango_standin import ArangoStandIn
from tests.backends import BACKENDS, PASSWORD, state_env
from tests.servers import FunctionServer, base_env


@pytest.fixture(params=BACKENDS)
def service_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., QueueService]]:
    """service_on(name) -> a QueueService on the store called ``name`` (same name, same store)."""
    server = None
    if request.param == "arango":
        server = ArangoStandIn(password=PASSWORD, databases=("main", "one", "batch")).start()

    def make(name: str = "main") -> QueueService:
        rt = runtime.get()
        store = (SqliteStore.at_dir(str(tmp_path / name)) if server is None
                 else ArangoStore(ArangoSettings(url=server.url, db=name, password=PASSWORD)))
        return QueueService(rt.settings, store, rt.bus)

    yield make
    if server is not None:
        server.stop()


def _queues(service: QueueService) -> tuple[str, list[str], str, list[str]]:
    """A historical queue and a real-time one, with ids fixed by idempotency keys."""
    hist = service.start(QueueStart.parse(load("historical")), idempotency_key="group-hist").state
    live = service.start(QueueStart.parse({**load("realtime"), "allow_overlap": True}),
                         idempotency_key="group-live").state
    return hist.id, [j.id for j in hist.jobs], live.id, [j.id for j in live.jobs]


def _launched(service: QueueService, queue_id: str) -> list[str]:
    return [j.id for j in service.get(queue_id).jobs if j.status.value == "launched"]


def _reports(hist: str, hist_jobs: list[str], live: str, live_jobs: list[str]) -> list[Telemetry]:
    """What real Jobs would send: only the launched ones report (plus the usual strays)."""
    raw = []
    for n, job in enumerate(live_jobs):
        raw += [{"queue_id": live, "job_id": job, "status": "loading", "records_written": 10 * n},
                {"queue_id": hist, "job_id": hist_jobs[n % 2], "status": "loading", "records_written": n}]
    raw += [
        {"queue_id": live, "job_id": live_jobs[3], "status": "loading", "records_written": 3},  # stale count
        {"queue_id": hist, "job_id": hist_jobs[0], "status": "finished", "records_written": 500},
        {"queue_id": hist, "job_id": hist_jobs[0], "status": "loading", "records_written": 400},  # late
        {"queue_id": hist, "job_id": "no-such-job", "status": "finished"},
        {"queue_id": "00000000-0000-0000-0000-00000000beef", "status": "finished"},
        {"queue_id": live, "job_id": live_jobs[1], "status": "exploded"},  # unknown status word
        {"queue_id": hist, "job_id": hist_jobs[1], "status": "error", "error_message": "exchange 500"},
        {"queue_id": hist, "job_id": hist_jobs[1], "status": "error", "error_message": "exchange 500"},
    ]
    return [Telemetry.model_validate({"type": "telemetry", **r}) for r in raw]


def _summary(service: QueueService, queue_id: str) -> dict:
    state = service.get(queue_id)
    return {"status": state.status.value, "records": state.records_written, "error": state.error_message,
            "jobs": [(j.id, j.status.value, j.records_written, j.error_message) for j in state.jobs],
            # every transition is an event, in order, as if each report had come alone
            "events": [(h["seq"], h["type"], h["data"]) for h in state.history]}


def _outcome(result: object) -> str:
    return type(result).__name__ if isinstance(result, Exception) else str(result)


def test_a_batch_answers_and_ends_exactly_like_one_by_one(service_on):
    one, batch = service_on("one"), service_on("batch")
    ids = _queues(one)
    assert _queues(batch) == ids
    hist, _, live, _ = ids
    assert len(_launched(one, live)) == 4 and len(_launched(one, hist)) == 4  # loaders and their connectors
    reports = _reports(hist, _launched(one, hist), live, _launched(one, live))

    singly = []
    for report in reports:
        try:
            singly.append(one.telemetry(report))
        except InvalidInput as e:
            singly.append(e)
    together = batch.telemetry_batch(reports)

    assert [_outcome(r) for r in together] == [_outcome(r) for r in singly]
    assert Counter(map(_outcome, together)) == {"applied": 10, "duplicate": 3, "unknown_job": 1,
                                                "unknown_queue": 1, "InvalidInput": 1}
    for queue_id in (hist, live):
        assert _summary(batch, queue_id) == _summary(one, queue_id)
    assert _summary(batch, hist)["status"] == "error"  # on_failure=stop took the whole queue down


def test_one_write_per_queue_and_one_commit(service_on, monkeypatch):
    service = service_on()
    hist, hist_jobs, live, live_jobs = _queues(service)
    service.telemetry_batch([Telemetry(queue_id=live, job_id=j, status="loading") for j in live_jobs])
    writes: Counter[str] = Counter()
    commits = []
    replace, batch = service.store.replace, service.store.batch

    def counting_replace(key, doc, **kw):
        writes[key] += 1
        return replace(key, doc, **kw)

    def counting_batch():
        commits.append(1)
        return batch()

    monkeypatch.setattr(service.store, "replace", counting_replace)
    monkeypatch.setattr(service.store, "batch", counting_batch)
    counts = [Telemetry(queue_id=live, job_id=job, status="loading", records_written=100 + n)
              for n in range(5) for job in live_jobs]
    outcomes = service.telemetry_batch(counts)
    assert outcomes == ["applied"] * len(counts)
    assert writes == {live: 1} and len(commits) == 1
    assert service.get(live).records_written == 104 * len(live_jobs)


def test_a_failed_batch_stores_nothing_and_is_redelivered_whole(service_on, monkeypatch):
    service = service_on()
    hist, hist_jobs, live, live_jobs = _queues(service)
    assert service.telemetry(Telemetry(queue_id=hist, job_id=hist_jobs[1], status="loading")) == "applied"
    before = {q: service.store.get(q)[0] for q in (hist, live)}
    reports = [Telemetry(queue_id=hist, job_id=hist_jobs[0], status="loading", records_written=7),
               Telemetry(queue_id=live, job_id=live_jobs[0], status="loading", records_written=9)]
    replace = service.store.replace

    def failing_second(key, doc, **kw):
        if key == live:
            raise BackendUnavailable("state", "disk full")
        return replace(key, doc, **kw)

    monkeypatch.setattr(service.store, "replace", failing_second)
    outcomes = service.telemetry_batch(reports)
    assert [type(o) for o in outcomes] == [BackendUnavailable, BackendUnavailable]
    assert {q: service.store.get(q)[0] for q in (hist, live)} == before  # the first write rolled back
    monkeypatch.setattr(service.store, "replace", replace)
    # Another instance writes once meanwhile: the revision the rolled-back write had claimed.
    other = service_on()
    assert other.telemetry(Telemetry(queue_id=hist, job_id=hist_jobs[1], status="loading",
                                     records_written=5)) == "applied"
    redelivered = [r.model_copy(update={"records_written": r.records_written + 1}) for r in reports]
    assert service.telemetry_batch(redelivered) == ["applied", "applied"]  # nothing remembered from the failure
    jobs = service.get(hist).jobs
    assert (jobs[0].records_written, jobs[1].records_written) == (8, 5)
    assert service.get(live).jobs[0].records_written == 10


@pytest.mark.parametrize("offload", [False, True], ids=["on-loop", "in-thread"])
def test_intake_merges_what_arrives_in_one_turn(offload):
    groups: list[list[str]] = []
    thread_ids: set[int] = set()

    def merge(batch):
        groups.append([t.queue_id for t in batch])
        thread_ids.add(threading.get_ident())
        return [NotFound(f"queue {t.queue_id}") if t.queue_id == "bad" else f"ok:{t.queue_id}" for t in batch]

    intake = Intake(merge, offload=offload)

    async def scenario():
        ids = ["a", "b", "bad", "c"]
        first = await asyncio.gather(*(intake.submit(Telemetry(queue_id=i)) for i in ids),
                                     return_exceptions=True)
        alone = await intake.submit(Telemetry(queue_id="d"))
        return first, alone

    first, alone = asyncio.run(scenario())
    assert first[:2] == ["ok:a", "ok:b"] and first[3] == "ok:c"
    assert isinstance(first[2], NotFound)
    assert alone == "ok:d"
    assert groups == [["a", "b", "bad", "c"], ["d"]]
    assert (threading.get_ident() in thread_ids) is not offload


def test_intake_survives_a_merge_that_breaks():
    def merge(batch):
        raise ZeroDivisionError("bug")

    async def scenario():
        intake = Intake(merge, offload=False)
        return await asyncio.gather(intake.submit(Telemetry(queue_id="a")), intake.submit(Telemetry(queue_id="b")),
                                    return_exceptions=True)

    assert [type(r) for r in asyncio.run(scenario())] == [ZeroDivisionError, ZeroDivisionError]


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_deliveries_to_the_real_server_are_all_applied(tmp_path, backend):
    """Many in flight at once, as KafkaSource sends without ordering: no report lost, none counted twice."""
    with state_env(backend) as env, FunctionServer("all", base_env(tmp_path / "state", **env), tmp_path) as server:
        code, reply = server.call("POST", "/queues/start", {**load("realtime"), "allow_overlap": True})
        assert code == 200, reply
        queue_id, jobs = reply["data"]["queue_id"], [j["id"] for j in reply["data"]["jobs"]]
        results: list[tuple[int, str]] = []
        lock = threading.Lock()

        def send(job: str, counts: range) -> None:
            for n in counts:
                code, reply = server.call("POST", "/telemetry", {"type": "telemetry", "queue_id": queue_id,
                                                                 "job_id": job, "status": "loading",
                                                                 "records_written": n})
                with lock:
                    results.append((code, reply["data"].get("outcome") if code == 200 else reply["message"]))

        threads = [threading.Thread(target=send, args=(job, range(1, 41))) for job in jobs for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 2 * 40 * len(jobs)
        assert {code for code, _ in results} == {200}, Counter(m for c, m in results if c != 200)
        outcomes = Counter(o for _, o in results)
        assert set(outcomes) <= {"applied", "duplicate"} and outcomes["applied"] >= 40
        code, reply = server.call("GET", f"/queues/{queue_id}")
        state = reply["data"]
        assert [j["records_written"] for j in state["jobs"]] == [40] * len(jobs)
        assert state["records_written"] == 40 * len(jobs)
        assert all(j["status"] == "running" for j in state["jobs"])
        json.dumps(state)  # the stored document reads back whole


# SQLite's write lock makes the other writer wait instead: there is no conflict to lose there.
@pytest.mark.parametrize("service_on", ["arango"], indirect=True)
def test_a_group_that_loses_a_write_conflict_is_merged_again(service_on, monkeypatch):
    """ArangoDB: another instance writes a queue of the group after the group's transaction read
    it. The group's write is a write-write conflict (409, errorNum 1200), nothing of it is
    stored, and the group is merged again on the fresh state: both writes count."""
    from shared.services import reports

    service = service_on()
    hist, hist_jobs, live, live_jobs = _queues(service)
    attempts: list[str] = []
    merge_group = reports._merge_group

    def counted(*args, **kw):
        try:
            merged = merge_group(*args, **kw)
        except GroupConflict:
            attempts.append("conflict")
            raise
        attempts.append("merged")
        return merged

    monkeypatch.setattr(reports, "_merge_group", counted)
    other = service_on()
    get, interfered = service.store.get, []

    def read_then_interfere(key):
        found = get(key)
        if not interfered:
            interfered.append(key)
            assert other.telemetry(Telemetry(queue_id=hist, job_id=hist_jobs[1], status="loading",
                                             records_written=5)) == "applied"
        return found

    forget(service.store, [hist])  # the group reads the document, not a cached copy
    monkeypatch.setattr(service.store, "get", read_then_interfere)
    outcomes = service.telemetry_batch([Telemetry(queue_id=hist, job_id=hist_jobs[0], status="loading",
                                                  records_written=7)])
    assert interfered == [hist] and outcomes == ["applied"]
    assert attempts == ["merged", "conflict", "merged"]  # the other's own group, then ours twice
    jobs = service.get(hist).jobs
    assert (jobs[0].records_written, jobs[1].records_written) == (7, 5)


# a transaction of SQLite's, in the process itself, never expires
@pytest.mark.parametrize("service_on", ["arango"], indirect=True)
def test_a_group_whose_transaction_expired_stores_nothing_and_is_a_503(service_on, monkeypatch):
    """ArangoDB aborts a stream transaction idle for longer than its timeout; the group's next
    call finds it unknown (404, errorNum 1655): the group is a 503, redelivered whole."""
    from tests import arango_standin_trx

    service = service_on()
    hist, hist_jobs, live, live_jobs = _queues(service)
    before = {q: service.store.get(q)[0] for q in (hist, live)}
    monkeypatch.setattr(arango_standin_trx, "IDLE_TIMEOUT_S", 0.2)
    replace = service.store.replace

    def slow_replace(key, doc, **kw):
        import time

        time.sleep(0.3)  # longer than the idle timeout
        return replace(key, doc, **kw)

    monkeypatch.setattr(service.store, "replace", slow_replace)
    outcomes = service.telemetry_batch([
        Telemetry(queue_id=hist, job_id=hist_jobs[0], status="loading", records_written=7),
        Telemetry(queue_id=live, job_id=live_jobs[0], status="loading", records_written=9)])
    assert [type(o) for o in outcomes] == [BackendUnavailable, BackendUnavailable]
    assert {q: service.store.get(q)[0] for q in (hist, live)} == before
