"""GetStats: counts, durations and throughput across queues, from the queue's counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from application.clock import Clock
from domain.ports import ITaskViews
from domain.task import TaskStatus
from domain.values import MINUTE_MS, MINUTES_KEPT, MinuteCount, QueueStats


@dataclass(frozen=True, slots=True)
class TypeStats:
    counts: dict[TaskStatus, int]
    p50_ms: int | None
    p95_ms: int | None


@dataclass(frozen=True, slots=True)
class Stats:
    totals: dict[TaskStatus, int]
    queues: list[QueueStats]
    task_types: dict[str, TypeStats] = field(default_factory=dict)
    last_minute: int = 0
    last_hour: int = 0
    per_minute: list[MinuteCount] = field(default_factory=list)  # oldest first, all queues


class GetStats:
    """Totals over every queue, per task type with p50/p95 of recent durations."""

    def __init__(self, queue: ITaskViews, clock: Clock) -> None:
        self._queue = queue
        self._clock = clock

    async def execute(self) -> Stats:
        now = self._clock()
        queues = await self._queue.stats(now)
        totals = {status: sum(q.counts.get(status, 0) for q in queues) for status in TaskStatus}
        counts: dict[str, dict[TaskStatus, int]] = {}
        durations: dict[str, list[int]] = {}
        for stats in queues:
            for name, by_status in stats.type_counts.items():
                merged = counts.setdefault(name, dict.fromkeys(TaskStatus, 0))
                for status, count in by_status.items():
                    merged[status] += count
                durations.setdefault(name, []).extend(stats.durations_ms.get(name, []))
        types = {
            name: TypeStats(
                counts[name], percentile(durations[name], 50), percentile(durations[name], 95)
            )
            for name in sorted(counts)
        }
        return Stats(
            totals=totals,
            queues=queues,
            task_types=types,
            last_minute=sum(q.finished_last_minute for q in queues),
            last_hour=sum(q.finished_last_hour for q in queues),
            per_minute=summed_minutes(queues, now),
        )


def summed_minutes(queues: list[QueueStats], now: int) -> list[MinuteCount]:
    """The minutes up to `now`'s, every one of them, each summed over the queues."""
    current = now // MINUTE_MS
    sums = {m * MINUTE_MS: [0, 0] for m in range(current - MINUTES_KEPT, current + 1)}
    for stats in queues:
        for minute in stats.per_minute:
            if (counts := sums.get(minute.at)) is not None:
                counts[0] += minute.finished
                counts[1] += minute.failed
    return [MinuteCount(at, finished, failed) for at, (finished, failed) in sums.items()]


def percentile(values: list[int], pct: int) -> int | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[rank - 1]
