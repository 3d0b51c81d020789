"""BulkChange: one operator action on many tasks, with an outcome per id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from application.change_task import Action, ChangeTask
from domain.errors import InvalidTransition, TaskChanged, TaskNotFound


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    task_id: str
    outcome: str  # "ok", "not_found", "conflict"
    status: str | None = None  # the task's status afterwards, when known
    detail: str | None = None


class BulkChange:
    """Apply `action` to each id in turn; one failing id does not stop the others."""

    def __init__(self, change: ChangeTask) -> None:
        self._change = change

    async def execute(
        self, action: Action, task_ids: Sequence[str], actor: str = "anonymous"
    ) -> list[BulkOutcome]:
        return [await self._one(action, task_id, actor) for task_id in dict.fromkeys(task_ids)]

    async def _one(self, action: Action, task_id: str, actor: str) -> BulkOutcome:
        try:
            task = await self._change.execute(action, task_id, actor=actor)
        except TaskNotFound:
            return BulkOutcome(task_id, "not_found")
        except (InvalidTransition, TaskChanged) as exc:
            return BulkOutcome(task_id, "conflict", detail=str(exc))
        return BulkOutcome(task_id, "ok", task.status.value)
