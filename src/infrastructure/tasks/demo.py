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


class ShipOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    order_id: str = Field(alias="orderId", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    carrier: str = Field(min_length=1, max_length=64)


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


async def ship_order(payload: ShipOrder, ctx: TaskContext) -> dict[str, Any]:
    """Effects that a stale execution cannot make, both ways.

    A service outside Redis gets the task's id as its idempotency key and `ctx.fence`
    beside it, and keeps the highest fence it has seen, so a request from an execution
    that lost its task is dropped there (in SQL: `UPDATE shipments SET carrier = :carrier,
    fence = :fence WHERE order_id = :order AND fence < :fence`). The order's own record
    is a fenced write: Redis applies it only while this execution holds the task.
    """
    order = payload.order_id
    await ctx.checkpoint()  # a stopped or stale execution goes no further than here
    ctx.log.info(
        "demo.shipment_requested",
        order_id=order,
        carrier=payload.carrier,
        idempotency_key=ctx.task_id,
        fence=ctx.fence,
    )
    fields: dict[str, str | int] = {
        "status": "shipped",
        "carrier": payload.carrier,
        "fence": ctx.fence,
    }
    await ctx.fenced.hset(f"order:{order}", fields)
    await ctx.fenced.rpush(f"order:{order}:log", f"shipped by {ctx.task_id} under {ctx.fence}")
    return {"orderId": order, "record": ctx.fenced.key(f"order:{order}"), "fence": ctx.fence}


TASKS: list[TaskType] = [
    TaskType("sleep", Sleep, sleep),
    TaskType("sleep_sync", Sleep, sleep_sync),
    TaskType("echo", Echo, echo),
    TaskType("fail", Fail, fail),
    TaskType("sendEmail", SendEmailDemo, send_email_demo),
    TaskType("email", EmailDemo, email_demo),
    TaskType("ship_order", ShipOrder, ship_order),
]
