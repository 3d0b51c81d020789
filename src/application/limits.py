"""Flow limits: read a queue's limits and usage, replace them at run time."""

from __future__ import annotations

from collections.abc import Collection

from application.clock import Clock
from application.registry import TaskRegistry
from domain.audit import AuditEntry
from domain.errors import InvalidTask, UnknownTaskType
from domain.limits import ANY_GROUP, MAX_LIMITED_TYPES, LimitsView, QueueLimits, check_limit
from domain.ports import IAuditLog, IFlowLimits
from domain.task import check_configured_queue, check_group_name


class ManageLimits:
    """A queue's limits hold across every worker from their next claim on; a task held
    back by one waits (waiting, no attempt spent) and starts once there is room."""

    def __init__(
        self,
        store: IFlowLimits,
        registry: TaskRegistry,
        queues: Collection[str],
        clock: Clock,
        audit: IAuditLog | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._queues = frozenset(queues)
        self._clock = clock
        self._audit = audit

    async def get(self, queue: str) -> LimitsView:
        check_configured_queue(queue, self._queues)
        return await self._store.get(queue, self._clock())

    async def set(self, queue: str, limits: QueueLimits, actor: str) -> LimitsView:
        check_configured_queue(queue, self._queues)
        check_limit(limits.queue, "queue")
        if len(limits.task_types) > MAX_LIMITED_TYPES:
            raise InvalidTask("taskTypes", f"at most {MAX_LIMITED_TYPES} task types")
        for name, limit in limits.task_types.items():
            try:
                self._registry.get(name)
            except UnknownTaskType:
                raise InvalidTask(f"taskTypes.{name}", f"unknown task type {name!r}") from None
            check_limit(limit, f"taskTypes.{name}")
        if len(limits.groups) > MAX_LIMITED_TYPES:
            raise InvalidTask("groups", f"at most {MAX_LIMITED_TYPES} groups")
        for name, limit in limits.groups.items():
            if name != ANY_GROUP:
                try:
                    check_group_name(name)
                except InvalidTask as error:
                    raise InvalidTask(f"groups.{name}", error.message) from None
            check_limit(limit, f"groups.{name}")
        kept = QueueLimits(
            limits.queue,
            {n: limit for n, limit in limits.task_types.items() if not limit.empty},
            {n: limit for n, limit in limits.groups.items() if not limit.empty},
        )
        await self._store.set(queue, kept)
        if self._audit is not None:
            await self._audit.record(AuditEntry(self._clock(), actor, "limits", queue, {}))
        return await self._store.get(queue, self._clock())
