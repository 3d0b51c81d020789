"""What a task handler sees: its context, and the errors it may raise to steer retries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Logger(Protocol):
    """The slice of a structured logger that handlers and use cases call."""

    def debug(self, event: str, **fields: Any) -> Any: ...
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...
    def error(self, event: str, **fields: Any) -> Any: ...
    def exception(self, event: str, **fields: Any) -> Any: ...


class NonRetryableError(Exception):
    """Raise from a handler to fail the task at once, whatever attempts remain."""


class RetryAfter(Exception):
    """Raise from a handler to retry after `delay_ms` instead of the configured backoff."""

    def __init__(self, delay_ms: int, reason: str = "") -> None:
        super().__init__(reason or f"retry requested in {delay_ms} ms")
        self.delay_ms = delay_ms


class TaskCancelled(Exception):
    """Raised by `raise_if_cancelled()` once the task's execution has been aborted."""


class TaskContext:
    """Handed to every handler: who the task is, and ways to talk back to the worker.

    `fence` is this execution's fencing token: strictly greater than any earlier
    execution's, so a handler can use it to make its own writes idempotent.
    """

    __slots__ = ("_cancelled", "_on_progress", "attempt", "fence", "log", "queue", "task_id")

    def __init__(
        self,
        *,
        task_id: str,
        queue: str,
        attempt: int,
        fence: int,
        log: Logger,
        on_progress: Callable[[Any], None],
    ) -> None:
        self.task_id = task_id
        self.queue = queue
        self.attempt = attempt
        self.fence = fence
        self.log = log
        self._on_progress = on_progress
        # A plain flag: a sync handler's thread reads what the worker's thread wrote (the
        # interpreter's lock orders them), and no handler ever waits on it.
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        """Call this often in a sync handler: it stops there once the task is aborted."""
        if self._cancelled:
            raise TaskCancelled(self.task_id)

    def report_progress(self, progress: Any) -> None:
        """Record progress (any JSON value); safe to call from a sync handler's thread."""
        self._on_progress(progress)

    def cancel(self) -> None:
        self._cancelled = True
