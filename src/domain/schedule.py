"""Schedules: recurring tasks, fired slot by slot, each slot exactly once.

A schedule names a cadence (a cron expression in a time zone, or a fixed interval) and the
task each firing enqueues. Its slots are the moments the cadence gives; the task fired for
a slot has the id `schedule:<name>:<slot ms>`, so firing a slot twice (two processes, or
one retrying) finds the task already there and creates nothing.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from domain.errors import InvalidTask
from domain.task import Backoff, JSONObject

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
MIN_EVERY_MS = 100
MAX_EVERY_MS = 366 * 86_400_000
MISSED_GRACE_MS = 60_000  # a slot is missed once it is this late, or half a period if less
CATCH_UP_LIMIT = 100  # the default bound of missedPolicy "all"
MAX_CATCH_UP = 1_000
UPCOMING = 5  # next fire times shown with a schedule


class MissedPolicy(StrEnum):
    """What happens to slots that passed while nothing could fire them (all down, paused
    processes): dropped, one run for all of them, or a run for each (the latest
    `catch_up_limit` of them)."""

    SKIP = "skip"
    ONCE = "once"
    ALL = "all"


class OverlapPolicy(StrEnum):
    """What a slot does while the previous run's task has not finished: fire anyway
    (runs may overlap), be skipped, or wait for it and fire as soon as it finishes (one
    run waits at most; the slots that pass meanwhile are missed slots)."""

    ALLOW = "allow"
    SKIP = "skip"
    QUEUE = "queue"


class ScheduleState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class Cadence(Protocol):
    """The slots of a schedule: the first strictly after a moment (ms since the epoch)."""

    def next_after(self, moment: int) -> int: ...


@dataclass(frozen=True, slots=True)
class Every:
    """Slots `anchor + k * every_ms`."""

    every_ms: int
    anchor: int

    def next_after(self, moment: int) -> int:
        if moment < self.anchor:
            return self.anchor
        return self.anchor + ((moment - self.anchor) // self.every_ms + 1) * self.every_ms


@dataclass(frozen=True, slots=True)
class ScheduledTask:
    """What each firing enqueues; None means the task type's default."""

    task_name: str
    payload: JSONObject = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    attempts: int | None = None
    backoff: Backoff | None = None
    timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring task and where its firing stands.

    `next_at` is the next slot to fire (None while paused); `anchor` is where an interval
    schedule counts from (its creation, or its last change of interval).
    """

    name: str
    task: ScheduledTask
    cron: str | None = None
    every_ms: int | None = None
    timezone: str = "UTC"
    missed_policy: MissedPolicy = MissedPolicy.ONCE
    catch_up_limit: int = CATCH_UP_LIMIT
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW
    state: ScheduleState = ScheduleState.ACTIVE
    created_at: int = 0
    updated_at: int = 0
    anchor: int = 0
    created_by: str | None = None
    next_at: int | None = None
    last_slot: int | None = None
    last_task_id: str | None = None
    fired: int = 0
    skipped: int = 0

    @property
    def paused(self) -> bool:
        return self.state is ScheduleState.PAUSED

    def task_id(self, slot: int) -> str:
        return slot_task_id(self.name, slot)

    def with_definition(self, other: Schedule, now: int) -> Schedule:
        """This schedule, its definition replaced by `other`'s; its record kept. A new
        interval counts from now."""
        anchor = self.anchor if other.every_ms == self.every_ms else now
        return replace(
            other,
            state=self.state,
            created_at=self.created_at,
            created_by=self.created_by,
            updated_at=now,
            anchor=anchor,
            last_slot=self.last_slot,
            last_task_id=self.last_task_id,
            fired=self.fired,
            skipped=self.skipped,
        )


def slot_task_id(name: str, slot: int) -> str:
    return f"schedule:{name}:{slot}"


def manual_task_id(name: str, now: int) -> str:
    """The id of a run triggered by hand: not a slot, so it never stands for one."""
    return f"schedule:{name}:now-{now}"


def check_schedule_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidTask("name", "must be 1-64 characters of A-Z a-z 0-9 . _ -")


def check_cadence(cron: str | None, every_ms: int | None) -> None:
    if (cron is None) == (every_ms is None):
        raise InvalidTask("cron", "give either cron or everyMs, not both nor neither")
    if every_ms is not None and not MIN_EVERY_MS <= every_ms <= MAX_EVERY_MS:
        raise InvalidTask("everyMs", f"must be from {MIN_EVERY_MS} to {MAX_EVERY_MS} ms")


@dataclass(frozen=True, slots=True)
class Firing:
    """What one look at a due schedule decided: the slots to fire now, how many slots it
    skipped, and the slot to look at next (None: wait for the previous run, look again)."""

    fire: list[int]
    skipped: int
    next_at: int | None


def plan_firing(
    schedule: Schedule,
    cadence: Cadence,
    now: int,
    previous_running: bool,
) -> Firing:
    """Decide which of a due schedule's slots fire at `now`.

    The due slots run from `schedule.next_at` to `now`. The latest is on time if it is
    less late than half a period (at most `MISSED_GRACE_MS`); the others are missed and
    follow the missed policy. While the previous run is unfinished the overlap policy decides.
    """
    first = schedule.next_at
    if first is None or first > now:
        return Firing([], 0, first)
    keep = schedule.catch_up_limit + 1 if schedule.missed_policy is MissedPolicy.ALL else 2
    walk = walk_slots(cadence, first, now, keep)
    latest = walk.last[-1]
    grace = min(MISSED_GRACE_MS, (walk.following - latest) // 2)
    on_time = [latest] if now - latest <= grace else []
    missed = walk.last[: len(walk.last) - len(on_time)]
    if previous_running and schedule.overlap_policy is OverlapPolicy.SKIP:
        return Firing([], walk.count, walk.following)
    if previous_running and schedule.overlap_policy is OverlapPolicy.QUEUE:
        return Firing([], 0, None)
    if schedule.overlap_policy is OverlapPolicy.QUEUE:
        fire = [latest]  # one run stands for every slot that waited behind the previous
    elif schedule.missed_policy is MissedPolicy.ALL:
        fire = missed[-schedule.catch_up_limit :] + on_time
    elif schedule.missed_policy is MissedPolicy.ONCE:
        fire = on_time or missed[-1:]
    else:
        fire = on_time
    return Firing(fire, walk.count - len(fire), walk.following)


WALK_LIMIT = 10_000  # slots walked one by one; a longer outage is crossed in one jump


@dataclass(frozen=True, slots=True)
class Walk:
    """The slots from a first one to a moment: the last few, how many in all (estimated
    past `WALK_LIMIT`), and the first slot after the moment."""

    last: list[int]
    count: int
    following: int


def walk_slots(cadence: Cadence, first: int, now: int, keep: int) -> Walk:
    """Walk the slots from `first` (due) to `now`, keeping the last `keep`."""
    last: deque[int] = deque(maxlen=keep)
    count = 0
    slot = first
    while slot <= now:
        last.append(slot)
        count += 1
        slot = cadence.next_after(slot)
        if count == WALK_LIMIT and slot <= now:
            # A fine cadence after a long outage: only the last few slots matter, so go
            # on from a little before `now`, a few periods of the latest spacing back.
            period = max(slot - last[-1], 1)
            restart = max(slot, now - period * (keep + 1))
            count += -(-(restart - slot) // period)  # the slots passed over
            slot = restart if restart == slot else cadence.next_after(restart - 1)
    return Walk(list(last), count, slot)


def upcoming(cadence: Cadence, after: int, count: int = UPCOMING) -> list[int]:
    """The next `count` slots strictly after `after`."""
    slots: list[int] = []
    moment = after
    for _ in range(count):
        moment = cadence.next_after(moment)
        slots.append(moment)
    return slots


CadenceOf = Callable[[Schedule], Cadence]
