"""The task registry: each task type's name, payload model, defaults and handler."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from application.handlers import TaskContext
from domain.errors import InvalidTask, UnknownTaskType
from domain.task import Backoff, JSONObject

Handler = Callable[[Any, TaskContext], Any]
"""`async def h(payload, ctx)` or `def h(payload, ctx)`; a sync one runs in a thread, or in
a child process with `executor="process"`."""

Executor = Literal["inline", "process"]
EXECUTORS: tuple[Executor, ...] = ("inline", "process")


@dataclass(frozen=True)
class TaskType:
    """A kind of task. The defaults apply unless the enqueue request overrides them."""

    name: str
    payload: type[BaseModel]
    handler: Handler
    queue: str = "default"
    attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    timeout_ms: int | None = None  # None: the worker's configured default
    priority: int = 0
    # inline: in the worker (async in its event loop, sync in a thread); process: a sync
    # handler in one of the worker's child processes, away from its event loop and its GIL.
    executor: Executor = "inline"

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"task type {self.name!r}: unknown executor {self.executor!r}"
                f" (one of: {', '.join(EXECUTORS)})"
            )
        if self.executor == "process":
            _check_child_handler(self.name, self.handler)

    @cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    @cached_property
    def in_child(self) -> bool:
        return self.executor == "process"


def _check_child_handler(name: str, handler: Handler) -> None:
    """A child process finds its handler again by importing its module: it must be a
    module-level sync function (no coroutine, lambda, closure or bound method)."""
    if inspect.iscoroutinefunction(handler):
        raise ValueError(
            f"task type {name!r}: executor='process' runs sync handlers only;"
            f" {handler.__qualname__} is async (use the inline executor for it)"
        )
    qualname = getattr(handler, "__qualname__", "")
    if not inspect.isfunction(handler) or "<" in qualname or "." in qualname:
        raise ValueError(
            f"task type {name!r}: executor='process' needs a module-level function as its"
            f" handler, not {handler!r}"
        )


class TaskRegistry:
    """Every task type the process knows, by name.

    `context` is handed to pydantic while validating payloads, for models whose rules
    depend on configuration (the file tasks' base folder, say).
    """

    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        self._types: dict[str, TaskType] = {}
        self._context = dict(context or {})
        self._child_modules: dict[str, str] = {}  # a process type's name: its module

    def add(self, *task_types: TaskType, module: str | None = None) -> None:
        """`module` is where the types' TASKS list lives (a child process imports it to
        find them); by default, their handler's module."""
        for task_type in task_types:
            if task_type.name in self._types:
                raise ValueError(f"task type {task_type.name!r} is registered twice")
            self._types[task_type.name] = task_type
            if task_type.in_child:
                self._child_modules[task_type.name] = module or task_type.handler.__module__

    def load(self, module_paths: Iterable[str]) -> None:
        """Import each module and register the task types in its `TASKS` list."""
        for path in module_paths:
            module = importlib.import_module(path)
            task_types = getattr(module, "TASKS", None)
            if task_types is None:
                raise ValueError(f"task module {path!r} defines no TASKS list")
            self.add(*task_types, module=path)

    def get(self, name: str) -> TaskType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownTaskType(name) from None

    @property
    def names(self) -> list[str]:
        return sorted(self._types)

    @property
    def queues(self) -> list[str]:
        """The queues the task types send their tasks to unless a request says otherwise."""
        return sorted({task_type.queue for task_type in self._types.values()})

    @property
    def context(self) -> dict[str, Any]:
        return dict(self._context)

    @property
    def child_modules(self) -> list[str]:
        """The modules a child process imports to find the process task types (empty:
        this registry needs no child processes)."""
        return sorted(set(self._child_modules.values()))

    def parse(self, task_type: TaskType, payload: Any) -> BaseModel:
        """Validate a payload against its type's model; `InvalidTask` names the field."""
        try:
            return task_type.payload.model_validate(payload, context=self._context)
        except ValidationError as exc:
            fields = {
                _field_name(error["loc"]): error["msg"].removeprefix("Value error, ")
                for error in exc.errors()
            }
            first = next(iter(fields))
            raise InvalidTask(first, fields[first], fields) from None

    def normalize(self, task_type: TaskType, payload: Any) -> JSONObject:
        """The payload as it is stored: validated, defaults filled in, JSON-ready."""
        return self.parse(task_type, payload).model_dump(mode="json")


def _field_name(location: tuple[int | str, ...]) -> str:
    return ".".join(["payload", *(str(part) for part in location)])
