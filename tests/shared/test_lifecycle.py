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

    from shared.api.openapi import document
    from shared.core import models

    classes = [c for c in vars(models).values() if inspect.isclass(c) and issubclass(c, pydantic.BaseModel)
               and c.__module__ == models.__name__]
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
