"""The telemetry merge is order-free: any permutation of a job's reports, each delivered at
least once and some more than once, ends in the state in-order delivery ends in.

Properties over the pure core (`lifecycle.apply_telemetry`); the same through the service and
the embedded SQLite store is in test_merge_properties_service.py. Each delivery gets its own
receive time (`now`), later than every time the reports carry, so a field that depends on when
a report arrived shows up as a difference; those fields are named, and left out, in `_settled`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core import lifecycle, progress, scheduling
from shared.core.models import JobStatus, QueueStart, QueueState, QueueStatus, Telemetry

QUEUE = "q-merge"
CREATED = "2024-07-01T00:00:00Z"
RANGE_START = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
PROPERTIES = settings(derandomize=True, max_examples=200, deadline=None, print_blob=True)

TYPES = {False: ("api_candles_5m", "api_trades", "api_book", "api_funding"),
         True: ("ws_candles_1m", "ws_trades", "ws_book", "ws_funding")}
PROGRESS_WORDS = ("running", "loading", None)  # None: a report that only counts
ENDINGS = {False: ("finished", "completed", "done", "error", "failed", "stopped", "cancelled", None),
           True: ("error", "stopped", None)}  # a streaming job never finishes; None: still running
FAILURES = frozenset({"error", "failed"})


def at(minutes: int) -> str:
    return (RANGE_START + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def arrival(tick: int) -> str:
    """The receive time of the tick-th delivery: after every time a Job puts in a report."""
    return (dt.datetime(2024, 9, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=tick)).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def job_story(draw: st.DrawFn, *, streaming: bool) -> list[dict[str, Any]]:
    """What one Job sends, in the order it sends it: maybe a first word, progress reports with
    rising counts and load times, then (unless it is still running) one final report."""
    n = draw(st.integers(0, 5))
    counts = sorted(draw(st.lists(st.integers(0, 10**6), min_size=n + 1, max_size=n + 1)))
    minutes = sorted(draw(st.lists(st.integers(0, 29 * 1440), min_size=n + 1, max_size=n + 1, unique=True)))
    story: list[dict[str, Any]] = []
    if draw(st.booleans()):
        story.append({"status": draw(st.sampled_from(("pending", "launched", "started")))})
    for i in range(n):
        report: dict[str, Any] = {"status": draw(st.sampled_from(PROGRESS_WORDS))}
        if draw(st.booleans()):
            report["records_written"] = counts[i]
        if draw(st.booleans()):
            report["last_loaded_timestamp"] = at(minutes[i])
        story.append(report)
    ending = draw(st.sampled_from(ENDINGS[streaming]))
    if ending is not None:
        final: dict[str, Any] = {"status": ending}
        if draw(st.booleans()):
            final["records_written"] = counts[n]
        if draw(st.booleans()):
            final["last_loaded_timestamp"] = at(minutes[n])
        if draw(st.booleans()):
            final["finished_at"] = at(30 * 1440 + minutes[n] % 60)
        if ending in FAILURES and draw(st.booleans()):
            final["error_message"] = draw(st.sampled_from(("exchange 429", "exchange 500", "disk full")))
        story.append(final)
    return story


@st.composite
def deliveries(draw: st.DrawFn, n: int) -> list[int]:
    """Indexes into n reports: every one at least once, some again, in any order."""
    again = draw(st.lists(st.integers(0, n - 1), max_size=n)) if n else []
    return draw(st.permutations(list(range(n)) + again))


def queue(kinds: list[bool], *, on_failure: str = "stop", launched: bool = True) -> QueueState:
    """A queue of independent loaders (streaming where `kinds` says so), launched as the
    launcher does it before any of them can report."""
    per_kind = {False: iter(TYPES[False]), True: iter(TYPES[True])}
    requests = [{"target": "loader-producer", "type": next(per_kind[k])} for k in kinds]
    command = QueueStart.parse({"symbol": "BTCUSDT", "time_range": "2024-06-01:2024-06-30",
                                "requests": requests, "on_failure": on_failure})
    state = lifecycle.new_queue(queue_id=QUEUE, command=command, now=CREATED)
    if launched:
        claimed: list[str] = []
        scheduling.admit(state, CREATED, claimed)
        scheduling.mark_created(state, set(claimed))
        assert len(claimed) == len(kinds)
    return state


def telemetry(job_id: str | None, report: dict[str, Any]) -> Telemetry:
    return Telemetry(queue_id=QUEUE, job_id=job_id, **report)


def replay(state: QueueState, reports: list[Telemetry], order: list[int]) -> QueueState:
    """Deliver reports[i] for i in order, each at its own receive time. A copy of a report
    already merged is news no more: it must change nothing."""
    seen: set[int] = set()
    for tick, i in enumerate(order):
        effect = lifecycle.apply_telemetry(state, reports[i], arrival(tick))
        assert not (i in seen and effect), f"a second copy of report {i} changed the state: {effect}"
        seen.add(i)
    return state


def _settled(state: QueueState, *, timed_ends: bool) -> dict[str, Any]:
    """The state with what depends on arrival left out:

    - queue `updated_at`: the receive time of the last report that changed anything;
    - job `started_at`: the receive time of the first report that moved the job to running
      (`Telemetry.started_at` is not read), and never set when the final report came first;
    - job `launched_at`: the same for a "launched" report, when the launcher had not set it;
    - job and queue `finished_at` when a final report carries no `finished_at`: then a job
      ends at its final report's receive time (`_advance`'s ``telemetry.finished_at or now``)
      and the queue at the latest of those.
    Everything else (statuses, counts, load times, progress, error messages, cleanup) must be equal.
    """
    dump = progress.annotate(state, state.model_dump(mode="json", exclude={"updated_at"}))
    for job in dump["jobs"]:
        del job["started_at"], job["launched_at"]
        if not timed_ends:
            del job["finished_at"]
    if not timed_ends:
        del dump["finished_at"]
    return dump


def _ends_are_stamped(state: QueueState) -> None:
    """What `_settled` may leave out is still there where it must be."""
    for job in state.jobs:
        assert (job.finished_at is not None) == (job.status in lifecycle.TERMINAL_JOB), job
    assert (state.finished_at is not None) == (state.status in lifecycle.TERMINAL_QUEUE), state


def _timed(stories: list[list[dict[str, Any]]]) -> bool:
    return all("finished_at" in s[-1] for s in stories if s and s[-1]["status"] in lifecycle.TELEMETRY_STATUS
               and lifecycle.TELEMETRY_STATUS[s[-1]["status"]] in lifecycle.TERMINAL_JOB)


@st.composite
def one_job(draw: st.DrawFn) -> tuple[bool, bool, list[Telemetry], list[dict[str, Any]]]:
    """A single-job queue's reports; a single job may report without naming itself."""
    streaming, launched = draw(st.booleans()), draw(st.booleans())
    story = draw(job_story(streaming=streaming))
    state = queue([streaming], launched=launched)
    names = (state.jobs[0].id, "0", None)
    return streaming, launched, [telemetry(draw(st.sampled_from(names)), r) for r in story], story


@PROPERTIES
@given(case=one_job(), on_failure=st.sampled_from(("stop", "continue")), data=st.data())
def test_one_job_any_order_with_duplicates_ends_as_in_order(case, on_failure, data):
    """A single job's reports, launched or not, named or not: any order, copies included."""
    streaming, launched, reports, story = case
    order = data.draw(deliveries(len(reports)), label="order")
    in_order = replay(queue([streaming], on_failure=on_failure, launched=launched), reports,
                      list(range(len(reports))))
    shuffled = replay(queue([streaming], on_failure=on_failure, launched=launched), reports, order)
    _ends_are_stamped(shuffled)
    timed = _timed([story])
    assert _settled(shuffled, timed_ends=timed) == _settled(in_order, timed_ends=timed)
    assert shuffled.status == in_order.status


@st.composite
def several_jobs(draw: st.DrawFn) -> tuple[list[bool], list[list[dict[str, Any]]], list[Telemetry]]:
    kinds = draw(st.lists(st.booleans(), min_size=2, max_size=4))
    stories = [draw(job_story(streaming=k)) for k in kinds]
    ids = [j.id for j in queue(kinds).jobs]
    reports = [telemetry(ids[n], r) for n, story in enumerate(stories) for r in story]
    # Counts that name no job (`unattributed_records`), rising as well.
    unnamed = sorted(draw(st.lists(st.integers(0, 10**6), max_size=2)))
    return kinds, stories, reports + [telemetry(None, {"records_written": c}) for c in unnamed]


def _failing(stories: list[list[dict[str, Any]]]) -> list[int]:
    return [n for n, s in enumerate(stories) if s and s[-1]["status"] in FAILURES]


@PROPERTIES
@given(case=several_jobs(), on_failure=st.sampled_from(("stop", "continue")), data=st.data())
def test_jobs_of_one_queue_interleaved_end_as_in_order(case, on_failure, data):
    """Each job's reports in order, job after job, against every job's reports mixed and
    repeated. Under `on_failure: stop` the first failure the manager learns of stops the rest
    then and there, so which other jobs had finished by then, which of two failures counts,
    and when the queue ended follow arrival: there only what does not is compared."""
    kinds, stories, reports = case
    order = data.draw(deliveries(len(reports)), label="order")
    in_order = replay(queue(kinds, on_failure=on_failure), reports, list(range(len(reports))))
    shuffled = replay(queue(kinds, on_failure=on_failure), reports, order)
    _ends_are_stamped(shuffled)
    timed = _timed(stories)
    assert_same_end(_settled(shuffled, timed_ends=timed), _settled(in_order, timed_ends=timed),
                    failing=_failing(stories), on_failure=on_failure)


TERMINAL = {s.value for s in lifecycle.TERMINAL_JOB}


def assert_same_end(shuffled: dict[str, Any], in_order: dict[str, Any], *, failing: list[int],
                    on_failure: str) -> None:
    """Two `_settled` states; `failing`: the indexes of the jobs whose final report is a failure."""
    assert shuffled["status"] == in_order["status"]
    if on_failure == "continue" or not failing:
        assert shuffled == in_order
        return
    assert shuffled["status"] == QueueStatus.ERROR
    assert all(j["status"] in TERMINAL for j in shuffled["jobs"])
    counted = ("records_written", "last_loaded_timestamp", "unattributed_records")
    assert [shuffled.get(f) for f in counted] == [in_order.get(f) for f in counted]
    assert ([(j["records_written"], j["last_loaded_timestamp"]) for j in shuffled["jobs"]]
            == [(j["records_written"], j["last_loaded_timestamp"]) for j in in_order["jobs"]])
    if len(failing) == 1:
        only = failing[0]
        assert shuffled["jobs"][only]["status"] == JobStatus.ERROR == in_order["jobs"][only]["status"]
        for field in ("error_message", "progress"):
            assert shuffled["jobs"][only][field] == in_order["jobs"][only][field], field
        assert shuffled["error_message"] == in_order["error_message"]


@PROPERTIES
@given(several=st.booleans(), on_failure=st.sampled_from(("stop", "continue")), data=st.data())
def test_a_report_merged_twice_is_merged_once(several, on_failure, data):
    """Whatever was merged before, a report merged a second time changes nothing and says so."""
    if several:
        kinds, _, reports = data.draw(several_jobs(), label="jobs")
        launched = True
    else:
        streaming, launched, reports, _ = data.draw(one_job(), label="job")
        kinds = [streaming]
    reports = reports or [telemetry(None, {"status": "loading", "records_written": 1})]
    before = data.draw(st.lists(st.sampled_from(range(len(reports)))), label="merged before")
    again = data.draw(st.sampled_from(range(len(reports))), label="report")
    once = replay(queue(kinds, on_failure=on_failure, launched=launched), reports, before)
    twice = once.model_copy(deep=True)
    first = lifecycle.apply_telemetry(once, reports[again], arrival(len(before)))
    assert lifecycle.apply_telemetry(twice, reports[again], arrival(len(before))) == first
    second = lifecycle.apply_telemetry(twice, reports[again], arrival(len(before) + 1))
    assert not second and second.moved == () and second.ended == ()
    assert twice.model_dump() == once.model_dump()  # updated_at included: nothing was touched
