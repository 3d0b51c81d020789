"""Execution: the worker's handle on one running task, through which it can be stopped."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from domain.task import Interruption, Task
from domain.values import Lease


class Execution:
    """One claimed task on its way through ProcessTask; the first interruption wins.

    While a handler runs, `abort` also interrupts it, through the hook its runner sets.
    `lease` is the task's lock once held, and `valid_until` when it runs out unless it is
    renewed (the LeaseKeeper renews it and moves this on), on the worker's clock.
    `ends_at` is the same moment on the monotonic clock, which keeps counting while the
    process is stopped (SIGSTOP, a paused VM): `lease_valid` reads it, so a handler that
    resumes past it is stopped before it goes on (see `run_handler`), even before any
    renewal has run.
    """

    __slots__ = (
        "_interrupt",
        "detail",
        "ends_at",
        "lease",
        "reason",
        "settling",
        "task",
        "valid_until",
    )

    def __init__(self, task: Task, lease: Lease | None = None, now: int | None = None) -> None:
        """`now`: the worker's clock as the execution is made (the lease began at the
        claim, `task.started_at`); None counts the lease from this moment."""
        self.task = task
        self.lease = lease
        self.valid_until = (task.started_at or 0) + (lease.ttl_ms if lease else 0)
        self.ends_at = math.inf
        if lease is not None:
            self._ends(self.valid_until, (task.started_at or 0) if now is None else now)
        self.reason: Interruption | None = None
        self.detail = ""
        self._interrupt: Callable[[], object] | None = None
        # The handler is done and its outcome on its way to the store: a renewal that
        # finds the task settled already is no loss (the settle is fenced on its own).
        self.settling = False

    def hold(self, lease: Lease, since: int) -> None:
        """The lock is ours, from `since` (now, on the worker's clock) for its TTL."""
        self.lease = lease
        self.extend(since + lease.ttl_ms, since)

    def extend(self, valid_until: int, now: int) -> None:
        """The lease now runs until `valid_until`; `now` is the worker's clock at this call."""
        self.valid_until = valid_until
        self._ends(valid_until, now)

    def _ends(self, valid_until: int, now: int) -> None:
        self.ends_at = time.monotonic() + (valid_until - now) / 1000

    def lease_valid(self) -> bool:
        """Whether the lease is still this worker's by the monotonic clock (no lease: yes)."""
        return self.lease is None or time.monotonic() < self.ends_at

    def holds(self) -> bool:
        """`lease_valid`; when it is not, the execution is interrupted as LOCK_LOST (unless
        something else interrupted it first), for its runner to stop the handler."""
        if self.lease_valid():
            return True
        self.lose("the lease ran out before the handler could go on")
        return False

    def lose(self, detail: str) -> None:
        """The task is not this execution's any more: LOCK_LOST (unless something else
        interrupted it first). Unlike `abort`, the handler is not interrupted from here:
        the caller is in the handler's way already."""
        if self.reason is None:
            self.reason = Interruption.LOCK_LOST
            self.detail = detail

    def abort(self, reason: Interruption, detail: str = "") -> None:
        if self.reason is not None:
            return
        self.reason = reason
        self.detail = detail
        if self._interrupt is not None:
            self._interrupt()

    def on_abort(self, interrupt: Callable[[], object] | None) -> None:
        self._interrupt = interrupt
