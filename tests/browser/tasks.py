"""A task type for the dashboard's browser tests: fails while its marker file exists.

Loaded by the API and the worker through CONVEYOR_TASK_MODULES. A test enqueues it with a
marker in place, sees it fail, removes the marker, and retries it from the task's page.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from application.tasks import TaskContext, TaskType


class Flaky(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marker: str  # a file's path: the task fails while that file exists


def flaky(payload: Flaky, ctx: TaskContext) -> dict[str, str]:
    """Sync, so it looks at the disk in the worker's thread, not in its event loop."""
    if Path(payload.marker).exists():
        raise RuntimeError(f"marker {payload.marker} is still there")
    return {"marker": "gone"}


# One attempt: the task fails at once, so only an operator's retry runs it again.
TASKS = [TaskType("flaky", Flaky, flaky, attempts=1)]
