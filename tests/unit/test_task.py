"""The Task entity decides its own transitions: completion, retries, stalls, validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from random import Random
from typing import Any

import pytest

from domain.errors import InvalidTask, InvalidTransition
from domain.task import (
    PRIORITY_LIMIT,
    Attempt,
    Backoff,
    Failure,
    Task,
    TaskError,
    TaskStatus,
)

T0 = 1_700_000_000_000
ERROR = TaskError("RuntimeError", "boom", "Traceback ...")


def make_task(**changes: Any) -> Task:
    fields: dict[str, Any] = {
        "id": "t1",
        "name": "echo",
        "payload": {"n": 1},
        "created_at": T0,
        "run_at": T0,
        "backoff": Backoff(delay_ms=1_000, factor=2.0, max_delay_ms=10_000, jitter=False),
    }
    fields.update(changes)
    return Task(**fields)


def running(task: Task | None = None, started_at: int = T0, fence: int = 7) -> Task:
    """The task as a claim hands it to a worker."""
    task = task or make_task()
    return replace(
        task, status=TaskStatus.ACTIVE, worker_id="w1", started_at=started_at, fence=fence
    )


def fail(task: Task, now: int, retryable: bool = True, after: int | None = None) -> Task:
    return task.fail(Failure(ERROR, retryable=retryable, retry_after_ms=after), now, Random(0))


def test_defaults() -> None:
    task = make_task()

    assert (task.queue, task.priority, task.status) == ("default", 0, TaskStatus.WAITING)
    assert (task.attempts, task.max_attempts, task.attempt) == (0, 3, 1)
    assert Task(id="x", name="n", payload={}, created_at=T0, run_at=T0).backoff == Backoff(
        delay_ms=1_000, factor=2.0, max_delay_ms=300_000, jitter=True
    )


def test_is_due_from_run_at_on() -> None:
    task = make_task(run_at=T0 + 10)

    assert not task.is_due(T0 + 9)
    assert task.is_due(T0 + 10)


def test_complete_records_result_attempt_and_history() -> None:
    task = running(started_at=T0 + 5)

    done = task.complete({"ok": True}, T0 + 50)

    assert done.status is TaskStatus.COMPLETED
    assert done.result == {"ok": True}
    assert done.error is None
    assert done.attempts == 1
    assert done.finished_at == T0 + 50
    assert done.history == (Attempt("w1", T0 + 5, T0 + 50, "completed", 7),)
    assert task.status is TaskStatus.ACTIVE  # immutable: the original is unchanged


def test_a_completion_after_a_failure_clears_the_error() -> None:
    retried = running(fail(running(), T0 + 1))

    done = retried.complete(None, T0 + 5_000)

    assert done.error is None
    assert done.attempts == 2
    assert [entry.outcome for entry in done.history] == ["retry", "completed"]


def test_each_history_entry_keeps_the_token_of_its_own_execution() -> None:
    retried = fail(running(fence=7), T0 + 1)
    stalled = running(retried, fence=8).stalled(T0 + 2_000, 3, Random(0))

    done = running(stalled, fence=9).complete(None, T0 + 3_000)

    assert [(entry.outcome, entry.fence) for entry in done.history] == [
        ("retry", 7),
        ("stalled", 8),
        ("completed", 9),
    ]


def test_a_failure_with_attempts_left_retries_after_the_backoff() -> None:
    retry = fail(running(), T0 + 100)

    assert retry.status is TaskStatus.DELAYED
    assert retry.run_at == T0 + 100 + 1_000
    assert retry.attempts == 1
    assert retry.error == ERROR
    assert retry.worker_id is None
    assert retry.finished_at is None
    assert retry.history == (Attempt("w1", T0, T0 + 100, "retry", 7),)


def test_the_backoff_grows_exponentially_up_to_its_cap() -> None:
    task = make_task(max_attempts=10)
    delays = []
    for _ in range(6):
        now = T0 + 1_000_000 * (task.attempts + 1)
        task = fail(running(task, started_at=now), now)
        delays.append(task.run_at - now)

    assert delays == [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]


def test_a_factor_of_one_is_a_fixed_delay() -> None:
    backoff = Backoff(delay_ms=250, factor=1, jitter=False)

    assert [backoff.delay_for(attempt, Random(0)) for attempt in (1, 2, 5)] == [250, 250, 250]


@pytest.mark.parametrize("attempt", [1, 2, 3, 8])
def test_full_jitter_stays_between_zero_and_the_exponential_ceiling(attempt: int) -> None:
    backoff = Backoff(delay_ms=1_000, factor=2.0, max_delay_ms=60_000, jitter=True)
    rng = Random(42)
    ceiling = min(60_000, 1_000 * 2 ** (attempt - 1))

    delays = [backoff.delay_for(attempt, rng) for _ in range(500)]

    assert all(0 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 100  # spread out, not one value
    assert min(delays) < ceiling * 0.1
    assert max(delays) > ceiling * 0.9


def test_jitter_is_reproducible_with_a_seeded_random() -> None:
    backoff = Backoff()

    first = [backoff.delay_for(3, rng) for rng in [Random(7)] for _ in range(5)]
    second = [backoff.delay_for(3, rng) for rng in [Random(7)] for _ in range(5)]

    assert first == second


@pytest.mark.parametrize(("factor", "attempt"), [(2.0, 1_100), (100.0, 156)])
def test_the_backoff_stays_capped_for_very_many_attempts(factor: float, attempt: int) -> None:
    backoff = Backoff(delay_ms=1_000, factor=factor, max_delay_ms=300_000, jitter=False)

    assert backoff.delay_for(attempt, Random(0)) == 300_000


def test_the_last_attempt_fails_for_good() -> None:
    task = make_task(max_attempts=2)
    task = fail(running(task), T0 + 1)
    assert task.status is TaskStatus.DELAYED

    failed = fail(running(task, started_at=T0 + 2_000), T0 + 2_500)

    assert failed.status is TaskStatus.FAILED
    assert failed.attempts == 2
    assert failed.finished_at == T0 + 2_500
    assert failed.error == ERROR
    assert [entry.outcome for entry in failed.history] == ["retry", "failed"]


def test_a_single_attempt_task_fails_at_once() -> None:
    failed = fail(running(make_task(max_attempts=1)), T0 + 1)

    assert failed.status is TaskStatus.FAILED
    assert failed.attempts == 1


def test_a_non_retryable_failure_fails_with_attempts_left() -> None:
    failed = fail(running(make_task(max_attempts=5)), T0 + 1, retryable=False)

    assert failed.status is TaskStatus.FAILED
    assert failed.attempts == 1
    assert failed.history[-1].outcome == "failed"


def test_retry_after_replaces_the_backoff() -> None:
    retry = fail(running(), T0 + 10, after=123_456)

    assert retry.status is TaskStatus.DELAYED
    assert retry.run_at == T0 + 10 + 123_456


def test_retry_after_zero_is_due_at_once() -> None:
    assert fail(running(), T0 + 10, after=0).run_at == T0 + 10


def test_retry_after_does_not_grant_an_extra_attempt() -> None:
    failed = fail(running(make_task(max_attempts=1)), T0 + 10, after=5)

    assert failed.status is TaskStatus.FAILED


def test_returned_spends_no_attempt() -> None:
    task = running(make_task(attempts=1, run_at=T0 - 1), started_at=T0 + 5)

    back = task.returned(T0 + 20)

    assert back.status is TaskStatus.WAITING
    assert back.attempts == 1
    assert back.stalls == 0
    assert back.run_at == T0 + 20
    assert back.worker_id is None
    assert back.finished_at is None
    assert back.history == (Attempt("w1", T0 + 5, T0 + 20, "returned", 7),)


def test_lock_denied_spends_no_attempt_and_writes_no_history() -> None:
    task = running(make_task(attempts=1))

    deferred = task.lock_denied(T0 + 100, 5_000)

    assert deferred.status is TaskStatus.DELAYED
    assert deferred.run_at == T0 + 5_100
    assert deferred.attempts == 1
    assert deferred.stalls == 0
    assert deferred.history == ()
    assert deferred.worker_id is None
    assert deferred.fence == task.fence  # settled by the same claim


def test_a_first_stall_counts_a_stall_not_an_attempt_and_waits_no_backoff() -> None:
    stalled = running().stalled(T0 + 100, 3, Random(0))

    assert stalled.status is TaskStatus.WAITING  # a live worker takes it over at once
    assert stalled.stalls == 1
    assert stalled.attempts == 0
    assert stalled.run_at == T0 + 100
    assert stalled.worker_id is None
    assert stalled.error is not None
    assert stalled.error.type == "Stalled"
    assert "w1" in stalled.error.message
    assert stalled.history[-1].outcome == "stalled"


def test_repeated_stalls_go_through_a_growing_backoff() -> None:
    task = make_task()
    delays = []
    for _ in range(4):
        now = T0 + 1_000_000 * (task.stalls + 1)
        task = running(task).stalled(now, 4, Random(0))
        delays.append((task.status, task.run_at - now))

    waiting, delayed = TaskStatus.WAITING, TaskStatus.DELAYED
    assert delays == [(waiting, 0), (delayed, 1_000), (delayed, 2_000), (delayed, 4_000)]
    assert task.stalls == 4


def test_more_stalls_than_allowed_fail_with_reason_stalled() -> None:
    task = running(make_task(stalls=2, attempts=1))

    failed = task.stalled(T0 + 100, 2, Random(0))

    assert failed.status is TaskStatus.FAILED
    assert failed.stalls == 3
    assert failed.attempts == 1
    assert failed.finished_at == T0 + 100
    assert failed.error is not None
    assert failed.error.type == "Stalled"
    assert failed.history[-1].outcome == "stalled"


# --- operators' transitions ---------------------------------------------------------------

NOT_FINISHED: dict[str, Callable[[], Task]] = {
    "waiting": make_task,
    "delayed": lambda: make_task(status=TaskStatus.DELAYED, run_at=T0 + 500, attempts=1),
}
FINISHED: dict[str, Callable[[], Task]] = {
    "completed": lambda: running().complete("ok", T0 + 9),
    "failed": lambda: fail(running(make_task(max_attempts=1)), T0 + 9),
    "cancelled": lambda: make_task().cancelled(T0 + 9),
}


@pytest.mark.parametrize("status", NOT_FINISHED)
def test_a_waiting_or_delayed_task_is_cancelled_at_once(status: str) -> None:
    task = NOT_FINISHED[status]()

    cancelled = task.cancelled(T0 + 100)

    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.finished_at == T0 + 100
    assert (cancelled.attempts, cancelled.run_at) == (task.attempts, task.run_at)
    assert (cancelled.history, cancelled.worker_id) == ((), None)  # no attempt ran


def test_a_running_task_cancelled_by_its_worker_records_the_attempt() -> None:
    task = running(make_task(attempts=1), started_at=T0 + 5)

    cancelled = task.cancelled(T0 + 50)

    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.finished_at == T0 + 50
    assert cancelled.attempts == 1  # cut short, not spent
    assert cancelled.history == (Attempt("w1", T0 + 5, T0 + 50, "cancelled", 7),)
    assert (cancelled.worker_id, cancelled.fence) == ("w1", task.fence)


@pytest.mark.parametrize("status", FINISHED)
@pytest.mark.parametrize("action", ["cancelled", "killed"])
def test_a_finished_task_cannot_be_cancelled_or_killed(status: str, action: str) -> None:
    task = FINISHED[status]()

    with pytest.raises(InvalidTransition) as raised:
        getattr(task, action)(T0 + 100)

    assert (raised.value.task_id, raised.value.status, raised.value.action) == (
        "t1",
        status,
        action,
    )


@pytest.mark.parametrize("status", NOT_FINISHED)
def test_a_task_killed_before_it_ran_fails_without_an_attempt(status: str) -> None:
    task = NOT_FINISHED[status]()

    killed = task.killed(T0 + 100)

    assert killed.status is TaskStatus.FAILED
    assert killed.finished_at == T0 + 100
    assert killed.error == TaskError("Killed", "killed by an operator")
    assert (killed.attempts, killed.history) == (task.attempts, ())


def test_a_running_task_killed_records_the_attempt_as_killed() -> None:
    task = running(started_at=T0 + 5)

    killed = task.killed(T0 + 70)

    assert killed.status is TaskStatus.FAILED
    assert killed.error == TaskError("Killed", "killed by an operator")
    assert killed.history == (Attempt("w1", T0 + 5, T0 + 70, "killed", 7),)
    assert killed.attempts == 0
    assert killed.fence == task.fence


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_retried_task_waits_again_with_fresh_attempts(status: str) -> None:
    task = replace(FINISHED[status](), stalls=2, attempts=3, result="stale")

    retried = task.retried(T0 + 1_000)

    assert retried.status is TaskStatus.WAITING
    assert retried.run_at == T0 + 1_000
    assert (retried.attempts, retried.stalls) == (0, 0)
    assert (retried.finished_at, retried.error, retried.result, retried.worker_id) == (
        None,
        None,
        None,
        None,
    )
    assert retried.history == task.history  # the past attempts stay on record
    assert (retried.id, retried.payload) == ("t1", {"n": 1})
    assert retried.max_attempts == task.max_attempts
    assert retried.attempt == 1


@pytest.mark.parametrize("status", ["waiting", "delayed", "active", "completed"])
def test_only_a_failed_or_cancelled_task_can_be_retried(status: str) -> None:
    task = {
        "waiting": make_task,
        "delayed": NOT_FINISHED["delayed"],
        "active": running,
        "completed": FINISHED["completed"],
    }[status]()

    with pytest.raises(InvalidTransition) as raised:
        task.retried(T0)

    assert (raised.value.status, raised.value.action) == (status, "retried")


@pytest.mark.parametrize("source", ["waiting", "active", "failed"])
def test_a_copy_has_the_work_and_options_but_none_of_the_history(source: str) -> None:
    original = {
        "waiting": lambda: make_task(priority=3, created_by="alice"),
        "active": lambda: running(make_task(priority=3, created_by="alice")),
        "failed": lambda: fail(running(make_task(priority=3, created_by="alice")), T0 + 9),
    }[source]()
    original = replace(original, queue="mail", max_attempts=5, timeout_ms=999, progress=50)

    copy = original.copy_as("t2", T0 + 100, created_by="bob")

    assert (copy.id, copy.name, copy.payload, copy.queue) == ("t2", "echo", {"n": 1}, "mail")
    assert (copy.priority, copy.max_attempts, copy.backoff, copy.timeout_ms) == (
        3,
        5,
        original.backoff,
        999,
    )
    assert copy.created_by == "bob"  # whoever asked for the copy
    assert (copy.status, copy.created_at, copy.run_at) == (TaskStatus.WAITING, T0 + 100, T0 + 100)
    assert (copy.attempts, copy.stalls, copy.fence, copy.history) == (0, 0, 0, ())
    assert (copy.started_at, copy.finished_at, copy.worker_id) == (None, None, None)
    assert (copy.result, copy.error, copy.progress) == (None, None, None)
    assert original.id == "t1"


@pytest.mark.parametrize(
    ("run_at", "status", "due"),
    [
        (T0 + 5_000, TaskStatus.DELAYED, T0 + 5_000),
        (T0, TaskStatus.WAITING, T0),
        (T0 - 5_000, TaskStatus.WAITING, T0),  # in the past: now
    ],
)
def test_a_copy_can_be_due_later(run_at: int, status: TaskStatus, due: int) -> None:
    copy = make_task().copy_as("t2", T0, run_at=run_at)

    assert (copy.status, copy.run_at) == (status, due)


def test_a_copy_needs_a_valid_id() -> None:
    with pytest.raises(InvalidTask) as raised:
        make_task().copy_as("not valid", T0)

    assert raised.value.field == "customJobId"


@pytest.mark.parametrize(
    "task_id", ["a", "A-z_0.9:x", "0" * 128, "01J9ZQ8K3V6W8X5Y4Z2A1B0C9D", "bulk-1", "Stats"]
)
def test_valid_ids(task_id: str) -> None:
    assert make_task(id=task_id).id == task_id


@pytest.mark.parametrize(
    "task_id",
    ["", "a" * 129, "has space", "slash/", "é", "a\n", "bulk", "export", "stats", ".", ".."],
)
def test_invalid_ids_name_the_custom_job_id_field(task_id: str) -> None:
    with pytest.raises(InvalidTask) as raised:
        make_task(id=task_id)

    assert raised.value.field == "customJobId"
    assert raised.value.fields == {"customJobId": raised.value.message}


@pytest.mark.parametrize("queue", ["", "a b", "q/1", "x" * 129])
def test_invalid_queue_names_name_the_queue_field(queue: str) -> None:
    with pytest.raises(InvalidTask) as raised:
        make_task(queue=queue)

    assert raised.value.field == "queue"


@pytest.mark.parametrize("priority", [-PRIORITY_LIMIT, -1, 0, 1, PRIORITY_LIMIT])
def test_priorities_within_bounds(priority: int) -> None:
    assert make_task(priority=priority).priority == priority


@pytest.mark.parametrize("priority", [-PRIORITY_LIMIT - 1, PRIORITY_LIMIT + 1, 2**40])
def test_priorities_out_of_bounds(priority: int) -> None:
    with pytest.raises(InvalidTask) as raised:
        make_task(priority=priority)

    assert raised.value.field == "priority"


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"max_attempts": 0}, "attempts"), ({"timeout_ms": 0}, "timeoutMs")],
)
def test_attempts_and_timeout_must_be_positive(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidTask) as raised:
        make_task(**changes)

    assert raised.value.field == field


def test_terminal_statuses() -> None:
    terminal = {status for status in TaskStatus if status.is_terminal}

    assert terminal == {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
