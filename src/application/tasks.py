"""The task author's API: all a task module imports, from one place.

    from application.tasks import NonRetryableError, RetryAfter, TaskContext, TaskType

A task module lists its task types in `TASKS`; each names a payload model (pydantic) and a
handler, `async def handler(payload, ctx)` or a plain `def` (run in a thread). The handler
raises `NonRetryableError` to fail at once, `RetryAfter` to choose its next delay, and calls
`ctx.raise_if_cancelled()` (sync handlers) so an abort stops it; `ctx.fence` orders its
executions, and `ctx.fenced` writes Redis keys only while the execution holds the task.
`application.handlers` and `application.registry` still export the same names
for modules written against them.
"""

from application.handlers import (
    FenceLost,
    Logger,
    NonRetryableError,
    RetryAfter,
    TaskCancelled,
    TaskContext,
)
from application.registry import Handler, TaskType
from domain.task import Backoff

__all__ = [
    "Backoff",
    "FenceLost",
    "Handler",
    "Logger",
    "NonRetryableError",
    "RetryAfter",
    "TaskCancelled",
    "TaskContext",
    "TaskType",
]
