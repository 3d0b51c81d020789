"""A task type whose payload check fails unexpectedly: the API's path to a 500.

Loaded by the API through CONVEYOR_TASK_MODULES. pydantic turns only ValueError and
AssertionError into validation errors, so a RuntimeError from the validator escapes the
enqueue route as an unexpected error, the one way a real process can be made to answer 500.
"""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from application.tasks import TaskContext, TaskType


class Faulty(BaseModel):
    note: str = ""

    @field_validator("note")
    @classmethod
    def explode(cls, note: str) -> str:
        # The message quotes the payload, so a caller can make an exception carry any text.
        raise RuntimeError(f"cannot check {note}")


async def faulty(payload: Faulty, ctx: TaskContext) -> None:
    """Never runs: no payload passes the check."""


TASKS = [TaskType("faulty", Faulty, faulty)]
