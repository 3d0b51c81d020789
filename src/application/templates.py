"""Task templates: save a task definition, list and delete them, enqueue one as a task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from application.clock import Clock
from application.enqueue_task import EnqueueRequest, EnqueueTask
from application.registry import TaskRegistry
from domain.errors import InvalidTask, UnknownTaskType
from domain.ports import ITemplateStore
from domain.task import JSONObject
from domain.templates import Template
from domain.values import Enqueued


@contextmanager
def template_fields() -> Iterator[None]:
    """Name the culprit as a template's body does: `task.type`, `task.data.<field>`."""
    try:
        yield
    except UnknownTaskType as exc:
        raise InvalidTask("task.type", exc.message) from None
    except InvalidTask as exc:
        fields = {_data_field(name): message for name, message in exc.fields.items()}
        raise InvalidTask(_data_field(exc.field), exc.message, fields) from None


def _data_field(name: str) -> str:
    head, dot, rest = name.partition(".")
    if head != "payload":
        return name
    return f"task.data{dot}{rest}"


class CreateTemplate:
    """Save a task definition once its type is known and its data valid for that type.

    The data is stored as a task's payload would be: validated, defaults filled in.
    """

    def __init__(self, store: ITemplateStore, registry: TaskRegistry, clock: Clock) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock

    async def execute(self, name: str, task_type: str, data: JSONObject) -> Template:
        with template_fields():
            known = self._registry.get(task_type)
            normalized = self._registry.normalize(known, data)
        return await self._store.add(name, known.name, normalized, self._clock())


class ListTemplates:
    """Every saved template, newest first."""

    def __init__(self, store: ITemplateStore) -> None:
        self._store = store

    async def execute(self) -> list[Template]:
        return await self._store.list()


class DeleteTemplate:
    """Forget a template; tasks already created from it are not touched."""

    def __init__(self, store: ITemplateStore) -> None:
        self._store = store

    async def execute(self, template_id: str) -> None:
        await self._store.remove(template_id)


class UseTemplate:
    """Enqueue a task of the template's type and data, due at `run_at` (None or past: now).

    The data is validated again, since the task type may have changed since it was saved.
    """

    def __init__(self, store: ITemplateStore, enqueue_task: EnqueueTask) -> None:
        self._store = store
        self._enqueue_task = enqueue_task

    async def execute(
        self, template_id: str, run_at: int | None = None, created_by: str | None = None
    ) -> Enqueued:
        template = await self._store.get(template_id)
        request = EnqueueRequest(
            template.task_type, template.data, run_at=run_at, created_by=created_by
        )
        with template_fields():
            return await self._enqueue_task.execute(request)
