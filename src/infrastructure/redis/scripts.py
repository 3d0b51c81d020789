"""The Lua scripts, loaded once from package data, and the one table of their return codes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from importlib import resources

from domain.errors import LockLost, SchedulerError, TaskActive, TaskChanged, TaskNotFound
from infrastructure.redis.keys import lua_layout
from infrastructure.redis.lane import Script


class Code(IntEnum):
    """What a script answers; each code means one thing in every script (see _lib.lua)."""

    OK = 0
    EXISTS = 1  # there already, the same: an enqueued id's task, a settled outcome
    REMOVED = 2  # an enqueue of an id removed within the idempotency window, the same
    CANCEL_REQUESTED = 3  # a renewed lease whose task an operator asked to cancel
    NOT_FOUND = -1  # no such task
    CHANGED = -2  # the task is not as the caller read it (status or fencing token)
    LEASE_VALID = -3  # a stall's recovery: the lease has not run out after all
    ACTIVE = -4  # a removal: the task is running
    CONFLICT = -5  # an enqueue: the id is held by another request's task
    WRONG_TYPE = -6  # a fenced write: Redis refused the command (the key holds another type)
    QUEUE_FULL = -7  # an enqueue: the queue is at its depth limit; nothing was stored


def worker_error(code: int, task_id: str) -> SchedulerError | None:
    """For the holder of a task's token: anything but success means it is not its own."""
    if code >= 0:
        return None
    if code in (Code.NOT_FOUND, Code.CHANGED):
        return LockLost(f"task {task_id!r}: fencing token is stale or the task is not active")
    if code == Code.LEASE_VALID:
        return LockLost(f"task {task_id!r}: the lease has not expired")
    return _unexpected(code, task_id)


def operator_error(code: int, task_id: str) -> SchedulerError | None:
    """For an operator's change: a changed task is to be read again, a gone one is gone."""
    if code >= 0:
        return None
    if code == Code.NOT_FOUND:
        return TaskNotFound(task_id)
    if code == Code.CHANGED:
        return TaskChanged(f"task {task_id!r} changed meanwhile")
    if code == Code.ACTIVE:
        return TaskActive(task_id)
    return _unexpected(code, task_id)


def raise_for(code: int, task_id: str, *, operator: bool = False) -> None:
    error = operator_error(code, task_id) if operator else worker_error(code, task_id)
    if error is not None:
        raise error


def _unexpected(code: int, task_id: str) -> SchedulerError:
    return SchedulerError(f"task {task_id!r}: unexpected script result {code}")


def _source(name: str, db: int) -> str:
    lua = resources.files(__package__).joinpath("lua")
    header = f"local DB = '{db}'\n{lua_layout()}"  # the channels' database, the key layout
    return header + lua.joinpath("_lib.lua").read_text() + lua.joinpath(f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    """Every script, by name; called through a Lane by SHA (loaded on first use)."""

    enqueue_tasks: Script
    claim_tasks: Script
    claim_queues: Script
    settle_task: Script
    recover_task: Script
    change_task: Script
    extend_leases: Script
    set_progress: Script
    write_fenced: Script
    set_limits: Script
    remove_task: Script
    sweep_tasks: Script
    request_cancel: Script

    @classmethod
    def load(cls, db: int) -> Scripts:
        """The scripts, publishing on database `db`'s channels."""
        names = cls.__dataclass_fields__
        return cls(**{name: Script(_source(name, db)) for name in names})
