"""The merge's order-freedom through the service: reports delivered one by one and in groups
to a queue kept in the embedded SQLite store, against the same reports in order to a twin
queue in the same store (the pure-core properties are in test_merge_properties.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import runtime
from shared.adapters.state.sqlite import SqliteStore
from shared.core.models import Outcome, QueueStart, QueueState, Telemetry
from shared.services.service import QueueService
from tests.shared.test_merge_properties import (
    TERMINAL,
    _failing,
    _settled,
    _timed,
    assert_same_end,
    deliveries,
    job_story,
)

# Independent loaders: no job waits for another, so the launcher has nothing to decide
# between reports (what a job waiting for a failed one becomes depends on when it could
# launch, which is arrival by design, not the merge).
KINDS = (False, False, True)
TYPES = ("api_candles_5m", "api_trades", "ws_trades")
COMMAND = {"symbol": "BTCUSDT", "time_range": "2024-06-01:2024-06-30", "allow_overlap": True,
           "requests": [{"target": "loader-producer", "type": t} for t in TYPES]}
# One store for every example, on purpose: each example starts two queues of its own.
SERVICE = settings(derandomize=True, max_examples=100, deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def service(tmp_path: Path) -> Iterator[QueueService]:
    rt = runtime.get()
    yield QueueService(rt.settings, SqliteStore.at_dir(str(tmp_path / "state")), rt.bus)


def _start(service: QueueService, on_failure: str) -> QueueState:
    state = service.start(QueueStart.parse({**COMMAND, "on_failure": on_failure})).state
    assert [j.status.value for j in state.jobs] == ["launched"] * len(KINDS) and all(j.created for j in state.jobs)
    assert all(not j.needs for j in state.jobs)
    return state


def _reports(state: QueueState, stories: list[list[dict[str, Any]]]) -> list[Telemetry]:
    return [Telemetry(queue_id=state.id, job_id=state.jobs[n].id, **r)
            for n, story in enumerate(stories) for r in story]


def _normal(service: QueueService, queue_id: str, *, timed: bool) -> dict[str, Any]:
    """`_settled`, without what differs between two queues whatever the order: ids and Job
    names (made from the queue id), start and launch times, and the change log (`seq`,
    `history`: a report that is news in one order may be stale in another, so the number of
    changes differs while the end does not)."""
    state = service.get(queue_id)
    names = {j.job_name: j.index for j in state.jobs}
    dump = _settled(state, timed_ends=timed)
    for field in ("id", "started_at", "seq", "history", "outbox", "idempotency_key"):
        dump.pop(field)
    dump["cleanup"] = sorted(names[n] for n in dump["cleanup"])
    for job in dump["jobs"]:
        del job["id"], job["job_name"]
    return dump


@SERVICE
@given(stories=st.tuples(*(job_story(streaming=k) for k in KINDS)).map(list),
       on_failure=st.sampled_from(("stop", "continue")), data=st.data())
def test_reports_in_any_order_and_grouping_end_as_in_order_in_the_store(service, stories, on_failure, data):
    ordered, mixed = _start(service, on_failure), _start(service, on_failure)
    for report in _reports(ordered, stories):
        service.telemetry(report)
    reports = _reports(mixed, stories)
    order = data.draw(deliveries(len(reports)), label="order")
    # Where the deliveries are cut into groups merged together (`telemetry_batch`).
    cuts = sorted(data.draw(st.sets(st.integers(1, len(order) - 1), max_size=min(4, len(order) - 1))
                            if len(order) > 1 else st.just(set()), label="group cuts"))
    seen: set[int] = set()
    for lo, hi in zip([0, *cuts], [*cuts, len(order)], strict=True):
        group = order[lo:hi]
        outcomes = service.telemetry_batch([reports[i] for i in group])
        for position, (i, outcome) in enumerate(zip(group, outcomes, strict=True)):
            # A copy of a report merged before, or earlier in its own group, is no news.
            if i in seen or i in group[:position]:
                assert outcome == Outcome.DUPLICATE, (i, outcome)
            assert outcome in (Outcome.APPLIED, Outcome.DUPLICATE), outcome
        seen |= set(group)
    failing = _failing(stories)
    # A job the failure policy stopped ends at the receive time of the failure.
    timed = _timed(stories) and not (failing and on_failure == "stop")
    shuffled, in_order = _normal(service, mixed.id, timed=timed), _normal(service, ordered.id, timed=timed)
    assert_same_end(shuffled, in_order, failing=failing, on_failure=on_failure)
    if failing and on_failure == "stop":
        # The Jobs the failure stopped were deleted (the launcher empties `cleanup`).
        assert all(j["status"] in TERMINAL for j in shuffled["jobs"]) and shuffled["cleanup"] == []
