"""What a task handler sees: its context, and the errors it may raise to steer retries."""

from __future__ import annotations

import asyncio
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

    __slots__ = (
        "_cancelled", "_lease_valid", "_on_progress", "attempt", "fence", "log", "queue",
        "task_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        task_id: str,
        queue: str,
        attempt: int,
        fence: int,
        log: Logger,
        on_progress: Callable[[Any], None],
        lease_valid: Callable[[], bool] = lambda: True,
    ) -> None:
        self.task_id = task_id
        self.queue = queue
        self.attempt = attempt
        self.fence = fence
        self.log = log
        self._on_progress = on_progress
        self._lease_valid = lease_valid
        # A plain flag: a sync handler's thread reads what the worker's thread wrote (the
        # interpreter's lock orders them), and no handler ever waits on it.
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def lease_valid(self) -> bool:
        """Whether this execution still holds the task: not aborted, and its lease not run
        out by the monotonic clock (which keeps counting while the worker is stopped).
        Ask just before a write outside the task; then write with `fence`."""
        return not self._cancelled and self._lease_valid()

    def raise_if_cancelled(self) -> None:
        """Call this often in a sync handler: it stops there once the task is aborted or
        its lease has run out (a worker stopped past it, say)."""
        if not self.lease_valid():
            raise TaskCancelled(self.task_id)

    async def checkpoint(self) -> None:
        """Await this in an async handler just before a write outside the task: it lets
        a pending stop reach the handler, then raises TaskCancelled if the execution no
        longer holds the task."""
        await asyncio.sleep(0)
        self.raise_if_cancelled()

    def report_progress(self, progress: Any) -> None:
        """Record progress (any JSON value); safe to call from a sync handler's thread."""
        self._on_progress(progress)

    def cancel(self) -> None:
        self._cancelled = True
