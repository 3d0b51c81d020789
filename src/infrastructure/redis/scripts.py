"""The Lua scripts, loaded once from package data, and their return codes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from domain.errors import (
    LockLost,
    SchedulerError,
    TaskActive,
    TaskChanged,
    TaskNotFound,
)


class Code(IntEnum):
    OK = 0
    EXISTS = 1
    REMOVED = 2
    STALE = -1  # not active, or the fencing token is no longer current
    LEASE_VALID = -2
    ACTIVE = -3


def raise_for(code: int, task_id: str) -> None:
    """Turn a script's negative return code into the domain error it stands for (for a
    worker's own task: a changed task means its lease is lost)."""
    if code >= 0:
        return
    if code == Code.STALE:
        raise LockLost(f"task {task_id!r}: fencing token is stale or the task is not active")
    if code == Code.LEASE_VALID:
        raise LockLost(f"task {task_id!r}: the lease has not expired")
    if code == Code.ACTIVE:
        raise TaskActive(task_id)
    raise SchedulerError(f"task {task_id!r}: unexpected script result {code}")


def raise_for_change(code: int, task_id: str) -> None:
    """The same for an operator's change: a changed task is to be read again."""
    if code == Code.STALE:
        raise TaskChanged(f"task {task_id!r} changed meanwhile")
    raise_for(code, task_id)


def raise_for_remove(code: int, task_id: str) -> None:
    if code == Code.STALE:
        raise TaskNotFound(task_id)
    raise_for(code, task_id)


def _source(name: str, db: int) -> str:
    lua = resources.files(__package__).joinpath("lua")
    header = f"local DB = '{db}'\n"  # the database the channels are named for
    return header + lua.joinpath("_lib.lua").read_text() + lua.joinpath(f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    enqueue_tasks: AsyncScript
    claim_tasks: AsyncScript
    move_task: AsyncScript
    extend_lease: AsyncScript
    set_progress: AsyncScript
    remove_task: AsyncScript
    sweep_tasks: AsyncScript
    request_cancel: AsyncScript

    @classmethod
    def register(cls, client: Redis, db: int) -> Scripts:
        """Bind every script to `client`, publishing on database `db`'s channels; each is
        sent once, then called by its SHA."""
        names = cls.__dataclass_fields__
        return cls(**{name: client.register_script(_source(name, db)) for name in names})
