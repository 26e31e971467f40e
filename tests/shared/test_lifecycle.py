import itertools

from shared.core import lifecycle
from shared.core.models import JobStatus, QueueStart, QueueStatus, Telemetry

NOW = "2024-01-01T00:00:00Z"


def _queue(payload):
    return lifecycle.new_queue(queue_id="q-1", command=QueueStart.parse(payload), now=NOW)


def _t(**kw):
    return Telemetry(queue_id="q-1", **kw)


def test_job_statuses_only_move_forward():
    order = [JobStatus.PENDING, JobStatus.LAUNCHED, JobStatus.RUNNING, JobStatus.FINISHED]
    for a, b in itertools.combinations(order, 2):
        assert lifecycle.rank(a) < lifecycle.rank(b)
    for terminal in lifecycle.TERMINAL_JOB:
        assert lifecycle.rank(terminal) == 3


def test_every_order_of_the_same_messages_gives_the_same_state(legacy):
    msgs = [_t(status="loading", records_written=5), _t(status="loading", records_written=9),
            _t(status="finished", records_written=12, finished_at="2024-01-02T00:00:00Z")]
    results = set()
    for perm in itertools.permutations(msgs):
        state = _queue(legacy)
        for m in perm:
            lifecycle.apply_telemetry(state, m, NOW)
        results.add((state.status, state.records_written, state.jobs[0].finished_at))
    assert results == {(QueueStatus.FINISHED, 12, "2024-01-02T00:00:00Z")}


def test_apply_reports_whether_anything_changed(legacy):
    state = _queue(legacy)
    assert lifecycle.apply_telemetry(state, _t(status="loading", records_written=1), NOW)
    assert not lifecycle.apply_telemetry(state, _t(status="loading", records_written=1), NOW)
    assert not lifecycle.apply_telemetry(state, _t(status="launched"), NOW)


def test_stop_is_terminal_and_idempotent(historical):
    state = _queue(historical)
    assert lifecycle.request_stop(state, None, NOW)
    assert not lifecycle.request_stop(state, None, NOW)
    assert state.status == QueueStatus.STOPPING
    lifecycle.apply_telemetry(state, _t(status="loading", records_written=4), NOW)
    assert state.status == QueueStatus.STOPPING and state.records_written == 4
    assert lifecycle.finish_stop(state, NOW)
    assert not lifecycle.finish_stop(state, NOW)
    assert state.status == QueueStatus.STOPPED
    lifecycle.apply_telemetry(state, _t(status="finished"), NOW)
    assert state.status == QueueStatus.STOPPED


def test_queue_finishes_only_when_every_job_has(historical):
    state = _queue(historical)
    for job in state.jobs[:-1]:
        lifecycle.apply_telemetry(state, _t(job_id=job.id, status="finished"), NOW)
        assert state.status == QueueStatus.LOADING
    lifecycle.apply_telemetry(state, _t(job_id=state.jobs[-1].id, status="finished"), NOW)
    assert state.status == QueueStatus.FINISHED


def test_every_model_has_its_docstring_for_the_openapi_document():
    """A docstring after `model_config` is no docstring: the schema loses its description."""
    import inspect

    import pydantic

    from shared.api import operations
    from shared.api.openapi import document
    from shared.core import documents, models

    classes = [c for m in (models, documents, operations) for c in vars(m).values() if inspect.isclass(c)
               and issubclass(c, pydantic.BaseModel) and c.__module__ == m.__name__]
    assert len(classes) >= 9
    assert [c.__name__ for c in classes if not c.__doc__] == []
    schemas = document()["components"]["schemas"]
    described = [n for n in ("QueueState", "JobState", "Need", "Envelope") if schemas.get(n, {}).get("description")]
    assert described == [n for n in ("QueueState", "JobState", "Need", "Envelope") if n in schemas]
    assert described, sorted(schemas)


def test_the_manager_fails_a_job_without_a_made_up_report(historical):
    """fail_job: the job ends in error with the message, and the failure policy runs (its
    dependents are skipped), the same as a Job's own error report but without faking one."""
    state = lifecycle.new_queue(queue_id="00000000-0000-0000-0000-0000000000aa",
                                command=QueueStart.parse(historical), now="2024-01-01T00:00:00Z")
    assert lifecycle.fail_job(state, state.jobs[0].id, "launch refused: name taken", "2024-01-01T00:00:01Z")
    assert state.jobs[0].status == JobStatus.ERROR and state.jobs[0].error_message == "launch refused: name taken"
    assert state.status == QueueStatus.ERROR  # on_failure stop: the queue goes down
    assert not lifecycle.fail_job(state, state.jobs[0].id, "again", "2024-01-01T00:00:02Z")  # once
    assert not lifecycle.fail_job(state, "no-such-job", "x", "2024-01-01T00:00:02Z")


def test_closing_is_ended_or_stopping():
    assert {s for s in QueueStatus if lifecycle.closing(s)} == lifecycle.TERMINAL_QUEUE | {QueueStatus.STOPPING}
    assert not lifecycle.closing(QueueStatus.LOADING) and not lifecycle.closing(QueueStatus.PENDING)


def test_a_report_says_what_it_changed(historical):
    """The state machine returns the effect (applied, which jobs moved, which ended) instead of
    leaving callers to compare statuses before and after."""
    state = _queue(historical)
    loader = state.jobs[0]
    counted = lifecycle.apply_telemetry(state, _t(job_id=loader.id, status="loading", records_written=3), NOW)
    assert counted and counted.moved == (loader.id,) and counted.ended == ()  # pending -> running
    again = lifecycle.apply_telemetry(state, _t(job_id=loader.id, status="loading", records_written=3), NOW)
    assert not again and again.moved == ()
    more = lifecycle.apply_telemetry(state, _t(job_id=loader.id, status="loading", records_written=9), NOW)
    assert more and more.moved == ()  # a count, no status change
    failed = lifecycle.apply_telemetry(state, _t(job_id=loader.id, status="error", error_message="x"), NOW)
    # on_failure stop: the loader ends in error, every other unfinished job is skipped
    assert failed.ended == failed.moved and loader.id in failed.ended
    assert set(failed.moved) == {j.id for j in state.jobs}


def _pipeline(payload):
    from shared.core import lineage
    command = QueueStart.parse(payload)
    return lifecycle.new_queue(queue_id="q-1", command=command, now=NOW, needs=lineage.plan(command))


def _report(state, index, status, **kw):
    lifecycle.apply_telemetry(state, _t(job_id=state.jobs[index].id, status=status, **kw), NOW)


def test_a_late_failure_skips_what_waits_downstream_even_behind_a_job_that_ran(historical):
    """Loader 0 fails after its connector finished and the graph builder launched: the graph
    was built from incomplete candles, so the trainer waiting for it is skipped (and a retry
    runs it again) whichever arrived first."""
    state = _pipeline({**historical, "on_failure": "continue"})
    assert state.jobs[5].needs and state.jobs[4].needs
    for index in (0, 1):
        _report(state, index, "running")
    for index in (1, 2, 3):
        _report(state, index, "finished")
    _report(state, 4, "launched")
    _report(state, 0, "error", error_message="exchange down")
    assert state.jobs[5].status == JobStatus.SKIPPED
    assert state.jobs[5].error_message == "skipped: input loader-producer/api_candles_5m failed"
    _report(state, 4, "finished")
    assert state.status == QueueStatus.ERROR


def test_an_early_failure_skips_everything_downstream(historical):
    state = _pipeline({**historical, "on_failure": "continue"})
    _report(state, 0, "error", error_message="exchange down")
    assert [j.status for j in state.jobs][2:] == [JobStatus.SKIPPED, JobStatus.PENDING, JobStatus.SKIPPED,
                                                   JobStatus.SKIPPED]


def test_load_times_are_compared_as_times():
    from shared.core.statuses import latest
    assert latest("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z") == "2024-01-01T00:00:00.5Z"
    assert latest("2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00Z") == "2024-01-01T00:00:00.5Z"
    assert latest("2024-01-01T01:00:00+02:00", "2024-01-01T00:00:00Z") == "2024-01-01T00:00:00Z"
    assert latest("not a time", "2024-01-01T00:00:00Z") == latest("2024-01-01T00:00:00Z", "not a time") \
        == "2024-01-01T00:00:00Z"
    assert latest(None, "x") == latest("x", None) == "x"


def test_a_job_waiting_for_one_that_ended_short_of_its_need_is_skipped():
    """The connector stops (cancelled) while its loader runs on: the graph builder waiting for
    the connector to finish can never launch, so it is skipped, and the queue ends."""
    from shared.core.models import Need
    command = QueueStart.parse({"symbol": "BTCUSDT", "time_range": "2024-06-01:2024-06-02", "on_failure": "continue",
                                "requests": [{"target": "loader-producer", "type": "api_trades"},
                                             {"target": "arango-connector", "type": "api_trades"},
                                             {"target": "graph-builder", "type": "g1"}]})
    needs = [[], [Need(job=0, until="launched", reason="co")], [Need(job=1, until="finished", reason="ds")]]
    state = lifecycle.new_queue(queue_id="q-1", command=command, now=NOW, needs=needs)
    for index, status in ((0, "running"), (1, "running"), (1, "cancelled"), (0, "finished")):
        _report(state, index, status)
    assert state.jobs[2].status == JobStatus.SKIPPED
    assert state.jobs[2].error_message == "skipped: input arango-connector/api_trades stopped"
    assert state.status == QueueStatus.STOPPED


def test_load_time_comparison_is_the_same_in_any_order():
    from shared.core.statuses import latest
    stamps = ["ZZZZ-ZZ-ZZTZZ:ZZ:ZZZ", "2024-06-02T00:00:00Z", "2024-06-01T00:00:00.5Z", "2024-06-01T00:00:00Z"]
    results = set()
    for order in itertools.permutations(stamps):
        newest = None
        for stamp in order:
            newest = latest(newest, stamp)
        results.add(newest)
    assert results == {"2024-06-02T00:00:00Z"}
