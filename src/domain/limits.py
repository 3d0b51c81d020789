"""Flow limits of a queue, held by every worker alike: how many tasks may start per window
(rate) and how many may run at once (concurrency), for the queue and per task type."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.errors import InvalidTask

MAX_LIMIT = 1_000_000
MAX_WINDOW_MS = 86_400_000
MAX_LIMITED_TYPES = 100


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `max` starts in any `window_ms` (a sliding window)."""

    max: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class Limit:
    """None: no limit of that kind."""

    rate: Rate | None = None
    concurrency: int | None = None

    @property
    def empty(self) -> bool:
        return self.rate is None and self.concurrency is None


ANY_GROUP = "*"  # the group limits' key for every group not named


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The queue's own limit, one per task type (a task must pass both), and its groups':
    under `*` for every group, under a group's name for that one (each kind of limit it
    gives replaces the default's)."""

    queue: Limit = field(default_factory=Limit)
    task_types: dict[str, Limit] = field(default_factory=dict)
    groups: dict[str, Limit] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        limits = [self.queue, *self.task_types.values(), *self.groups.values()]
        return all(limit.empty for limit in limits)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a limit is measured against now: tasks running, starts in the rate window."""

    running: int
    started_in_window: int


def check_limit(limit: Limit, where: str) -> None:
    if limit.rate is not None:
        if not 1 <= limit.rate.max <= MAX_LIMIT:
            raise InvalidTask(f"{where}.rate.max", f"must be from 1 to {MAX_LIMIT}")
        if not 1 <= limit.rate.window_ms <= MAX_WINDOW_MS:
            raise InvalidTask(f"{where}.rate.windowMs", f"must be from 1 to {MAX_WINDOW_MS}")
    if limit.concurrency is not None and not 1 <= limit.concurrency <= MAX_LIMIT:
        raise InvalidTask(f"{where}.concurrency", f"must be from 1 to {MAX_LIMIT}")


@dataclass(frozen=True, slots=True)
class LimitsView:
    """A queue's limits and where it stands against them: per task type (the limited
    ones), and how many ready tasks of each type wait parked at their type's limit."""

    limits: QueueLimits
    queue: Usage
    task_types: dict[str, Usage]
    parked: dict[str, int]
