"""Admission control: how many unfinished tasks a queue may hold, and when to try again."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_RETRY_AFTER_S = 60  # also the answer when nothing finished lately (no worker, say)
_ENTRY = re.compile(r"(?P<name>[A-Za-z0-9._:-]+)=(?P<limit>\d{1,12})")


@dataclass(frozen=True, slots=True)
class DepthLimits:
    """The most unfinished tasks (waiting, delayed and active) each queue may hold: a
    queue's own limit, else `default`; 0 is no limit."""

    default: int = 0
    per_queue: Mapping[str, int] = field(default_factory=dict)

    def of(self, queue: str) -> int:
        return self.per_queue.get(queue, self.default)

    @property
    def any(self) -> bool:
        return self.default > 0 or any(self.per_queue.values())

    @staticmethod
    def parse(spec: str) -> dict[str, int]:
        """`reports=1000,emails=50000` (blank: none); ValueError saying what is wrong."""
        limits: dict[str, int] = {}
        for entry in (part.strip() for part in spec.split(",") if part.strip()):
            match = _ENTRY.fullmatch(entry)
            if match is None:
                raise ValueError(f"{entry!r} is not queue=limit (a whole number, 0 = no limit)")
            if match["name"] in limits:
                raise ValueError(f"queue {match['name']!r} is named twice")
            limits[match["name"]] = int(match["limit"])
        return limits


def finished_last_minute(this_minute: int, previous_minute: int, now_ms: int) -> float:
    """Tasks finished in the minute before `now_ms`, from per-minute counters: this
    minute's, plus the part of the previous one the window still covers."""
    return this_minute + previous_minute * (1 - (now_ms % 60_000) / 60_000)


def retry_after_s(excess: int, finished_per_minute: float) -> int:
    """Seconds until `excess` tasks have likely finished at the recent pace, 1 to 60."""
    if finished_per_minute <= 0:
        return MAX_RETRY_AFTER_S
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(excess * 60 / finished_per_minute)))
