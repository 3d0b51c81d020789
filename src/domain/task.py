"""The Task entity: its statuses, its retry policy, and the transitions it decides."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import StrEnum
from random import Random
from typing import Any

from domain.errors import InvalidTask, InvalidTransition

JSONObject = dict[str, Any]

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
RESERVED_IDS = frozenset({"bulk", "export", "stats", ".", ".."})  # route words, path steps
PRIORITY_LIMIT = 1_000_000  # the score packing in the queue leaves 21 bits for priority


class TaskStatus(StrEnum):
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class Interruption(StrEnum):
    """Why a running handler was stopped before it returned."""

    SHUTDOWN = "shutdown"  # the worker is stopping: give the task back
    LOCK_LOST = "lock_lost"  # someone else may own it now: record nothing
    TIMEOUT = "timeout"  # the attempt took longer than the task's timeout
    CANCELLED = "cancelled"  # an operator cancelled it: record it cancelled
    KILLED = "killed"  # an operator force-failed it: already recorded, record nothing


class Action(StrEnum):
    """What an operator may do to one task."""

    CANCEL = "cancel"
    KILL = "kill"
    RETRY = "retry"


class StopKind(StrEnum):
    """What the worker running a task is told to do with its handler."""

    CANCEL = "cancel"  # stop the handler and record the task cancelled
    KILL = "kill"  # stop the handler; the task was already failed by the operator


@dataclass(frozen=True, slots=True)
class Change:
    """An operator's action, decided: the state to write (None: nothing, the worker will
    record it), and what the worker running the task must do."""

    task: Task | None
    stop: StopKind | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff, optionally with full jitter; factor 1 makes it fixed."""

    delay_ms: int = 1_000
    factor: float = 2.0
    max_delay_ms: int = 300_000
    jitter: bool = True

    def delay_for(self, attempt: int, rng: Random) -> int:
        try:
            grown = self.delay_ms * self.factor ** max(attempt - 1, 0)
        except OverflowError:  # a long series with a large factor: the cap applies anyway
            grown = math.inf
        ceiling = min(float(self.max_delay_ms), grown)
        return int(rng.uniform(0, ceiling)) if self.jitter else int(ceiling)


@dataclass(frozen=True, slots=True)
class TaskError:
    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One execution of a task's handler, as the history records it: `fence` is the token
    that execution held (0 in entries recorded before tokens were kept in the history)."""

    worker_id: str
    started_at: int
    finished_at: int
    outcome: str
    fence: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong in one attempt, and what the handler asked for."""

    error: TaskError
    retryable: bool = True
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A unit of work. Times are milliseconds since the Unix epoch (UTC)."""

    id: str
    name: str
    payload: JSONObject
    created_at: int
    run_at: int
    queue: str = "default"
    priority: int = 0
    status: TaskStatus = TaskStatus.WAITING
    attempts: int = 0
    max_attempts: int = 3
    stalls: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    timeout_ms: int = 300_000
    started_at: int | None = None
    finished_at: int | None = None
    result: Any = None
    error: TaskError | None = None
    progress: Any = None
    worker_id: str | None = None
    fence: int = 0
    history: tuple[Attempt, ...] = ()
    created_by: str | None = None
    group: str | None = None  # a tenant: the queue serves its groups in turn

    def __post_init__(self) -> None:
        check_task_id(self.id)
        check_queue_name(self.queue)
        if self.group is not None:
            check_group_name(self.group)
        if not -PRIORITY_LIMIT <= self.priority <= PRIORITY_LIMIT:
            raise InvalidTask("priority", f"must be between {-PRIORITY_LIMIT} and {PRIORITY_LIMIT}")
        if self.max_attempts < 1:
            raise InvalidTask("attempts", "must be at least 1")
        if self.timeout_ms < 1:
            raise InvalidTask("timeoutMs", "must be at least 1")

    @property
    def attempt(self) -> int:
        """The number of the attempt running now (or next), counting from 1."""
        return self.attempts + 1

    def is_due(self, now: int) -> bool:
        return self.run_at <= now

    @staticmethod
    def status_for(run_at: int, now: int) -> TaskStatus:
        """A new task due later waits as delayed; one due now (or earlier) is waiting."""
        return TaskStatus.DELAYED if run_at > now else TaskStatus.WAITING

    def complete(self, result: Any, now: int) -> Task:
        return self._settle(
            TaskStatus.COMPLETED, now, "completed", result=result, error=None, attempts=self.attempt
        )

    def fail(self, failure: Failure, now: int, rng: Random) -> Task:
        """Record a failed attempt: retry after a backoff, or fail for good."""
        attempts = self.attempt
        if failure.retryable and attempts < self.max_attempts:
            delay = failure.retry_after_ms
            if delay is None:
                delay = self.backoff.delay_for(attempts, rng)
            return self._retry(now, delay, "retry", error=failure.error, attempts=attempts)
        return self._settle(
            TaskStatus.FAILED, now, "failed", error=failure.error, attempts=attempts
        )

    def returned(self, now: int) -> Task:
        """The worker gave the task back (shutdown): neither an attempt nor a stall."""
        return self._requeue(now, "returned")

    def interrupted(self, reason: Interruption, now: int, rng: Random) -> Task | None:
        """The state a handler stopped for `reason` leaves its task in; None when there
        is nothing to record (the lock was lost, or an operator already recorded it)."""
        if reason is Interruption.TIMEOUT:
            error = TaskError(
                "TaskTimeout", f"the attempt exceeded its timeout of {self.timeout_ms} ms"
            )
            return self.fail(Failure(error), now, rng)
        if reason is Interruption.SHUTDOWN:
            return self.returned(now)
        if reason is Interruption.CANCELLED:
            return self.cancelled(now)
        return None

    def operator(self, action: Action, now: int) -> Change:
        """What an operator's `action` does: a running task is cancelled by its worker (it
        is told to stop, and records the outcome), killed at once (and its worker told)."""
        if action is Action.CANCEL and self.status is TaskStatus.ACTIVE:
            return Change(None, StopKind.CANCEL)
        changed = {Action.CANCEL: self.cancelled, Action.KILL: self.killed,
                   Action.RETRY: self.retried}[action](now)  # fmt: skip
        return Change(changed, StopKind.KILL if self.status is TaskStatus.ACTIVE else None)

    def lock_denied(self, now: int, retry_ms: int) -> Task:
        """Another holder had the lock: try again later without spending an attempt."""
        return replace(self, status=TaskStatus.DELAYED, run_at=now + retry_ms, worker_id=None)

    def stalled(self, now: int, max_stalls: int, rng: Random) -> Task:
        """The worker vanished mid-run: count a stall. The first goes straight back to
        waiting, for a live worker to take over at once (a worker dies or freezes for
        reasons of its own); a task that stalls again goes through the backoff, so one
        that kills its worker cannot hammer the fleet."""
        stalls = self.stalls + 1
        error = TaskError("Stalled", f"worker {self.worker_id} stopped renewing its lock")
        if stalls > max_stalls:
            return self._settle(TaskStatus.FAILED, now, "stalled", error=error, stalls=stalls)
        if stalls == 1:
            return self._requeue(now, "stalled", error=error, stalls=stalls)
        delay = self.backoff.delay_for(self.attempts + stalls - 1, rng)
        return self._retry(now, delay, "stalled", error=error, stalls=stalls)

    def cancelled(self, now: int) -> Task:
        """An operator cancels: a waiting or delayed task at once, an active one once its
        worker has stopped the handler (the worker records this outcome)."""
        self._require({TaskStatus.WAITING, TaskStatus.DELAYED, TaskStatus.ACTIVE}, "cancelled")
        history = self.history
        if self.status is TaskStatus.ACTIVE:
            history = (*history, self._entry(now, "cancelled"))
        return replace(
            self,
            status=TaskStatus.CANCELLED,
            finished_at=now,
            worker_id=None if self.status is not TaskStatus.ACTIVE else self.worker_id,
            history=history,
        )

    def killed(self, now: int) -> Task:
        """An operator force-fails a task that has not finished (seed 003's kill)."""
        self._require({TaskStatus.WAITING, TaskStatus.DELAYED, TaskStatus.ACTIVE}, "killed")
        history = self.history
        if self.status is TaskStatus.ACTIVE:
            history = (*history, self._entry(now, "killed"))
        return replace(
            self,
            status=TaskStatus.FAILED,
            finished_at=now,
            error=TaskError("Killed", "killed by an operator"),
            history=history,
        )

    def retried(self, now: int) -> Task:
        """An operator retries a failed or cancelled task: a fresh set of attempts."""
        self._require({TaskStatus.FAILED, TaskStatus.CANCELLED}, "retried")
        return replace(
            self,
            status=TaskStatus.WAITING,
            run_at=now,
            attempts=0,
            stalls=0,
            finished_at=None,
            error=None,
            result=None,
            worker_id=None,
        )

    def copy_as(
        self, task_id: str, now: int, run_at: int | None = None, created_by: str | None = None
    ) -> Task:
        """A new task with this one's work and options (the API's duplicate), created by
        whoever asked for the copy."""
        due = max(run_at if run_at is not None else now, now)
        return Task(
            id=task_id,
            name=self.name,
            payload=self.payload,
            created_at=now,
            run_at=due,
            status=Task.status_for(due, now),
            queue=self.queue,
            priority=self.priority,
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            timeout_ms=self.timeout_ms,
            created_by=created_by,
            group=self.group,
        )

    def _require(self, allowed: set[TaskStatus], action: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(self.id, self.status.value, action)

    def _entry(self, now: int, outcome: str) -> Attempt:
        return Attempt(self.worker_id or "", self.started_at or now, now, outcome, self.fence)

    def _requeue(self, now: int, outcome: str, **changes: Any) -> Task:
        """Back to waiting at once, the attempt that ended recorded as `outcome`."""
        return replace(
            self,
            status=TaskStatus.WAITING,
            run_at=now,
            worker_id=None,
            history=(*self.history, self._entry(now, outcome)),
            **changes,
        )

    def _retry(self, now: int, delay_ms: int, outcome: str, **changes: Any) -> Task:
        return replace(
            self,
            status=TaskStatus.DELAYED,
            run_at=now + max(delay_ms, 0),
            worker_id=None,
            history=(*self.history, self._entry(now, outcome)),
            **changes,
        )

    def _settle(self, status: TaskStatus, now: int, outcome: str, **changes: Any) -> Task:
        return replace(
            self,
            status=status,
            finished_at=now,
            history=(*self.history, self._entry(now, outcome)),
            **changes,
        )


def check_task_id(task_id: str) -> None:
    if not ID_PATTERN.fullmatch(task_id):
        raise InvalidTask("customJobId", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    if task_id in RESERVED_IDS:
        raise InvalidTask("customJobId", f"{task_id!r} is reserved by the API's routes")


def check_queue_name(queue: str) -> None:
    if not ID_PATTERN.fullmatch(queue):
        raise InvalidTask("queue", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")


def check_group_name(group: str) -> None:
    if not ID_PATTERN.fullmatch(group):
        raise InvalidTask("group", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")


def check_configured_queue(queue: str, configured: Collection[str]) -> None:
    """Queues are configured, not created by requests: any other name is refused."""
    check_queue_name(queue)
    if queue not in configured:
        raise InvalidTask("queue", f"{queue!r} is not a configured queue")
