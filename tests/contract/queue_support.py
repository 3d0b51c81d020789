"""Shared helpers of the TaskStore contract suites."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from domain.ports import ITaskFeed, ITaskTransitions, ITaskViews
from domain.task import Backoff, Failure, Task, TaskError, TaskStatus
from domain.values import LeaseState

T0 = 1_700_000_000_000  # 20 s into its minute: T0 % 60_000 == 20_000
LEASE_MS = 1_000
WINDOW_MS = 60_000
# Pub/sub channels are server-wide (not per database), so a concurrent run of this suite
# on another database of the same server would otherwise see this run's events.
RUN = f"{os.getpid():x}"
QUEUE = f"contract-{RUN}"
OTHER = f"other-{RUN}"
OPS_OTHER = f"contract-other-{RUN}"
PROBED = f"xdb-probe-{RUN}"
QA, QB, QC = f"list-a-{RUN}", f"list-b-{RUN}", f"list-c-{RUN}"
# The queues both adapters are configured with: listings and stats cover these alone.
CONFIGURED = (QUEUE, OTHER, OPS_OTHER, PROBED, QA, QB, QC)
WAIT_S = 5.0  # bound on every wait for something pushed


class TaskStore(ITaskTransitions, ITaskViews, ITaskFeed, Protocol):
    """What the contract suite drives: one adapter in every part (the fake, or Redis)."""


MakeQueue = Callable[[int], TaskStore]


def make_task(task_id: str, **changes: Any) -> Task:
    fields: dict[str, Any] = {
        "name": "echo",
        "payload": {"n": 1},
        "created_at": T0,
        "run_at": T0,
        "queue": QUEUE,
        "backoff": Backoff(delay_ms=100, jitter=False),
    }
    fields.update(changes)
    if fields["run_at"] > fields["created_at"] and "status" not in changes:
        fields["status"] = TaskStatus.DELAYED
    return Task(id=task_id, **fields)


async def claim(queue: TaskStore, limit: int = 1, now: int = T0, name: str = QUEUE) -> list[Task]:
    return (await queue.claim(name, "worker-1", limit, LEASE_MS, now)).tasks


async def claim_one(queue: TaskStore, now: int = T0, name: str = QUEUE) -> Task:
    (task,) = await claim(queue, 1, now, name)
    return task


async def enqueue_claimed(task_queue: TaskStore, task_id: str = "t1", **changes: Any) -> Task:
    """Enqueue a task and claim it: it must be the first waiting one of its queue."""
    task = make_task(task_id, **changes)
    await task_queue.enqueue([task])
    claimed = await claim_one(task_queue, name=task.queue)
    assert claimed.id == task_id
    return claimed


def failure(retryable: bool = True) -> Failure:
    return Failure(TaskError("RuntimeError", "boom"), retryable=retryable)


async def renew(queue: TaskStore, task: Task, at: int) -> LeaseState:
    """One task's lease renewed on its own."""
    (state,) = await queue.extend_leases([(task, None)], LEASE_MS, at)
    return state
