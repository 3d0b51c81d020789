"""An in-memory ISchedules with the Redis adapter's semantics, kept so by tests/contract."""

from __future__ import annotations

import copy
from dataclasses import replace

from domain.errors import DuplicateSchedule, ScheduleNotFound
from domain.schedule import Schedule


class InMemorySchedules:
    def __init__(self) -> None:
        self._schedules: dict[str, Schedule] = {}

    async def add(self, schedule: Schedule) -> None:
        if schedule.name in self._schedules:
            raise DuplicateSchedule(schedule.name)
        self._schedules[schedule.name] = replace(
            copy.deepcopy(schedule), last_slot=None, last_task_id=None, fired=0, skipped=0
        )

    async def replace(self, schedule: Schedule) -> None:
        current = self._schedules.get(schedule.name)
        if current is None:
            raise ScheduleNotFound(schedule.name)
        self._schedules[schedule.name] = replace(  # the definition; the record stays
            copy.deepcopy(schedule),
            created_at=current.created_at,
            last_slot=current.last_slot,
            last_task_id=current.last_task_id,
            fired=current.fired,
            skipped=current.skipped,
        )

    async def get(self, name: str) -> Schedule:
        try:
            return self._schedules[name]
        except KeyError:
            raise ScheduleNotFound(name) from None

    async def list_all(self) -> list[Schedule]:
        return sorted(self._schedules.values(), key=lambda s: (s.created_at, s.name))

    async def due(self, now: int, limit: int) -> list[Schedule]:
        return self._by_next_slot(lambda s: s.next_at is not None and s.next_at <= now)[:limit]

    async def earliest(self, skip: frozenset[str] = frozenset()) -> int | None:
        active = self._by_next_slot(lambda s: s.next_at is not None and s.name not in skip)
        return active[0].next_at if active else None

    async def advance(
        self,
        name: str,
        *,
        expected: int,
        next_at: int,
        fired: list[int],
        task_id: str | None,
        skipped: int,
    ) -> bool:
        current = self._schedules.get(name)
        if current is None or current.next_at != expected:
            return False
        last = {"last_slot": fired[-1], "last_task_id": task_id} if fired else {}
        self._schedules[name] = replace(
            current,
            next_at=next_at,
            fired=current.fired + len(fired),
            skipped=current.skipped + skipped,
            **last,  # type: ignore[arg-type]
        )
        return True

    async def remove(self, name: str) -> None:
        if self._schedules.pop(name, None) is None:
            raise ScheduleNotFound(name)

    def _by_next_slot(self, keep: object) -> list[Schedule]:
        chosen = [s for s in self._schedules.values() if keep(s)]  # type: ignore[operator]
        return sorted(chosen, key=lambda s: (s.next_at or 0, s.name))
