"""Domain errors: one base, a few leaves that the interfaces map to statuses."""

from __future__ import annotations


class SchedulerError(Exception):
    """Base of every error Conveyor raises on purpose."""


class TaskNotFound(SchedulerError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found")
        self.task_id = task_id


class DuplicateTask(SchedulerError):
    """The id is taken by another request's task (or a recently removed one): another name,
    payload, queue or creator. The message says no more, whoever asks."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task id {task_id!r} is already used by another task")
        self.task_id = task_id


class TaskActive(SchedulerError):
    """The task is running; it cannot be removed until it settles."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} is active")
        self.task_id = task_id


class InvalidTask(SchedulerError):
    """A request that cannot become a task; `field` names the culprit on the wire."""

    def __init__(self, field: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.fields = fields or {field: message}


class UnknownTaskType(InvalidTask):
    def __init__(self, name: str) -> None:
        super().__init__("taskName", f"unknown task type {name!r}")
        self.name = name


class InvalidTransition(SchedulerError):
    """The task's status does not allow what was asked (retrying a completed task, say)."""

    def __init__(self, task_id: str, status: str, action: str) -> None:
        super().__init__(f"task {task_id!r} is {status}: it cannot be {action}")
        self.task_id = task_id
        self.status = status
        self.action = action


class TaskChanged(SchedulerError):
    """The task changed between reading it and writing the change: read it again."""


class LockNotAcquired(SchedulerError):
    """Another holder has the lock (or no quorum of lock servers answered)."""


class LockLost(SchedulerError):
    """The lease or fencing token is no longer ours: someone else may own the task now."""


class QueueUnavailable(SchedulerError):
    """The queue's storage cannot be reached right now."""


class NotReplicated(QueueUnavailable):
    """Stored on the master, but fewer replicas than asked confirmed it in time: the
    caller is not told it was accepted, and enqueues again with the same id."""


class TooManyStreams(SchedulerError):
    """This process already serves as many live feeds as it may: retry later."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this API process already serves {limit} event streams; retry later")
        self.limit = limit


class TemplateNotFound(SchedulerError):
    def __init__(self, template_id: str) -> None:
        super().__init__(f"template {template_id!r} not found")
        self.template_id = template_id


class ScheduleNotFound(SchedulerError):
    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} not found")
        self.name = name


class DuplicateSchedule(SchedulerError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} exists already")
        self.name = name


class QueueFull(SchedulerError):
    """The queue holds as many unfinished tasks as its depth limit allows: nothing of the
    request was stored; `retry_after_s` is when room is likely, at the recent pace."""

    def __init__(self, queue: str, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"queue {queue!r} is full: it holds its limit of {limit} unfinished tasks "
            f"(waiting, delayed or running); retry in about {retry_after_s} s"
        )
        self.queue = queue
        self.limit = limit
        self.retry_after_s = retry_after_s


class StoreFull(QueueUnavailable):
    """The store refuses writes (Redis out of memory, with maxmemory and noeviction):
    nothing of the call was written."""
