"""The facts a queue document is indexed by (shared/core/facts.py)."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core import facts, lifecycle, lineage
from shared.core.models import JobStatus, QueueStart, QueueStatus, WaitReason
from shared.examples import load


def _queue(name="historical", queue_id="q-facts"):
    command = QueueStart.parse(load(name))
    return lifecycle.new_queue(queue_id=queue_id, command=command, now="2024-01-01T00:00:00.000Z",
                               needs=lineage.plan(command))


def test_counter_names_are_arangodb_keys_and_read_back():
    name = facts.job_counter("my target/x", "running")
    assert name == "j.my%20target%2Fx.running"
    assert facts.parse_job_counter(name) == ("my target/x", "running")
    assert facts.parse_job_counter(facts.queue_counter("loading", "BTCUSDT")) is None
    assert facts.queue_counter(None) == "q" and facts.queue_counter(None, "BTCUSDT") == "s.BTCUSDT"


def test_rank_orders_as_admission_does():
    ranks = [facts.rank(9, "2024-01-02"), facts.rank(9, "2024-01-01"), facts.rank(10, "2024-01-03"),
             facts.rank(1, "2023-01-01")]
    assert sorted(ranks) == [ranks[2], ranks[1], ranks[0], ranks[3]]


def test_an_active_queue_counts_its_live_jobs_and_holds_its_requests():
    state = _queue()
    state.status = QueueStatus.LOADING
    state.jobs[0].status = JobStatus.RUNNING
    state.jobs[1].wait, state.jobs[1].waiting = WaitReason.SLOT, "waiting for slot: x"
    got = json.loads(facts.of(state))
    assert got["c"]["q.loading.BTCUSDT"] == 1 and got["c"][facts.job_counter(state.jobs[0].target, "running")] == 1
    assert got["w"] == [state.jobs[1].target] and got["r"] == f"{facts.rank(state.priority, state.started_at)}|q-facts"
    assert got["t"] == state.time_range and got["e"] is None and got["d"] == []
    assert f"{state.jobs[0].target}/{state.jobs[0].type}" in got["l"]


def test_an_ended_queue_counts_no_jobs_and_names_what_it_wrote():
    state = _queue()
    state.status, state.finished_at = QueueStatus.FINISHED, "2024-01-02T00:00:00.000Z"
    for job in state.jobs:
        job.status = JobStatus.FINISHED
    got = json.loads(facts.of(state))
    assert not [n for n in got["c"] if n.startswith("j.")] and got["w"] == [] and got["l"] == []
    assert got["e"] == "2024-01-02T00:00:00.000Z" and "btc_candles_5m_2024_06" in got["d"]
    state.outbox = [{"id": "e"}]
    assert json.loads(facts.of(state))["e"] is None, "not archived before its events are out"


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_remembered_facts_are_the_facts_rendered_afresh(rng: random.Random):
    """`of` remembers facts by signature: after any change, what it returns is what rendering
    the state anew gives."""
    state = _queue(rng.choice(["historical", "realtime", "legacy"]), queue_id=f"q{rng.randint(0, 3)}")
    for _ in range(rng.randint(1, 6)):
        job = rng.choice(state.jobs)
        job.status = rng.choice(list(JobStatus))
        job.wait = rng.choice([None, WaitReason.SLOT])
        state.status = rng.choice(list(QueueStatus))
        state.priority = rng.randint(1, 10)
        state.outbox = rng.choice([[], [{"id": "x"}]])
        state.finished_at = rng.choice([None, "2024-01-05T00:00:00.000Z"])
        remembered = facts.of(state)
        facts._rendered.clear()
        facts._written.clear()
        assert remembered == facts.of(state)
