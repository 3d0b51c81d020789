"""Process task types for tests/integration/test_child_pool.py: a spinning handler, one
that ignores SIGTERM, and (in BROKEN_MODULE) a module that cannot be imported."""

from __future__ import annotations

import os
import signal
import time

from pydantic import BaseModel, Field

from application.handlers import TaskContext
from application.registry import TaskType


class Spin(BaseModel):
    ms: int = Field(default=0, ge=0)
    ignore_sigterm: bool = False


def spin(payload: Spin, ctx: TaskContext) -> dict[str, int]:
    if payload.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    deadline = time.monotonic() + payload.ms / 1000
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        ctx.report_progress(rounds)
    return {"pid": os.getpid(), "rounds": rounds}


TASKS = [TaskType("spin", Spin, spin, executor="process")]
