"""Demo task types, loadable through CONVEYOR_TASK_MODULES: sleep, echo, fail and friends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from application.tasks import NonRetryableError, TaskContext, TaskType
from infrastructure.tasks.email import EmailAddress

_STEP_MS = 100  # how long a sleep runs between progress reports and cancellation checks
_MAX_SLEEP_MS = 3_600_000


class Sleep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ms: int = Field(ge=0, le=_MAX_SLEEP_MS)


class Echo(BaseModel):
    model_config = ConfigDict(extra="allow")


class Fail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str
    retryable: bool = True


class SendEmailDemo(BaseModel):
    # Serialized by alias: the stored payload keeps seed 002's camelCase names.
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    user_id: int | str = Field(alias="userId")
    template: str


class EmailDemo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: EmailAddress


def _steps(ms: int) -> Iterator[tuple[float, int]]:
    """(seconds to sleep, percent done after it) for a sleep of `ms` in short steps."""
    slept = 0
    while slept < ms:
        step = min(_STEP_MS, ms - slept)
        slept += step
        yield step / 1000, slept * 100 // ms


async def sleep(payload: Sleep, ctx: TaskContext) -> dict[str, int]:
    for seconds, percent in _steps(payload.ms):
        await asyncio.sleep(seconds)
        ctx.report_progress(percent)
    return {"sleptMs": payload.ms}


def sleep_sync(payload: Sleep, ctx: TaskContext) -> dict[str, int]:
    for seconds, percent in _steps(payload.ms):
        # A thread cannot be interrupted: it stops only where it looks at the flag.
        ctx.raise_if_cancelled()
        time.sleep(seconds)
        ctx.report_progress(percent)
    return {"sleptMs": payload.ms}


async def echo(payload: Echo, ctx: TaskContext) -> dict[str, Any]:
    return payload.model_dump(mode="json")


async def fail(payload: Fail, ctx: TaskContext) -> None:
    if payload.retryable:
        raise RuntimeError(payload.message)
    raise NonRetryableError(payload.message)


async def send_email_demo(payload: SendEmailDemo, ctx: TaskContext) -> dict[str, Any]:
    ctx.log.info("demo.email", user_id=payload.user_id, template=payload.template)
    return {"userId": payload.user_id, "template": payload.template, "demo": True}


async def email_demo(payload: EmailDemo, ctx: TaskContext) -> dict[str, Any]:
    ctx.log.info("demo.email", to=payload.to)
    return {"to": payload.to, "demo": True}


TASKS: list[TaskType] = [
    TaskType("sleep", Sleep, sleep),
    TaskType("sleep_sync", Sleep, sleep_sync),
    TaskType("echo", Echo, echo),
    TaskType("fail", Fail, fail),
    TaskType("sendEmail", SendEmailDemo, send_email_demo),
    TaskType("email", EmailDemo, email_demo),
]
