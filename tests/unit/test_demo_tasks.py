"""The demo task module: its payloads, and what each handler does when run by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from application.handlers import NonRetryableError, TaskCancelled, TaskContext
from application.registry import TaskRegistry
from domain.errors import InvalidTask
from infrastructure.tasks import demo


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    debug = info = warning = error = exception = _record


@pytest.fixture
def registry() -> TaskRegistry:
    registry = TaskRegistry()
    registry.load(["infrastructure.tasks.demo"])
    return registry


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def progress() -> list[Any]:
    return []


@pytest.fixture
def ctx(log: RecordingLog, progress: list[Any]) -> TaskContext:
    return TaskContext(
        task_id="t1", queue="default", attempt=1, fence=1, log=log, on_progress=progress.append
    )


def parse(registry: TaskRegistry, name: str, payload: Any) -> Any:
    return registry.parse(registry.get(name), payload)


async def run(registry: TaskRegistry, name: str, payload: Any, ctx: TaskContext) -> Any:
    task_type = registry.get(name)
    result = task_type.handler(registry.parse(task_type, payload), ctx)
    return await result if task_type.is_async else result


def test_the_module_registers_every_demo_type_on_the_default_queue(
    registry: TaskRegistry,
) -> None:
    expected = ["echo", "email", "fail", "sendEmail", "ship_order", "sleep", "sleep_sync"]
    assert registry.names == expected
    assert all(task_type.queue == "default" for task_type in demo.TASKS)


def test_only_sleep_sync_has_a_sync_handler() -> None:
    sync = [task_type.name for task_type in demo.TASKS if not task_type.is_async]
    assert sync == ["sleep_sync"]


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("sleep", {}, "payload.ms"),
        ("sleep", {"ms": -1}, "payload.ms"),
        ("sleep", {"ms": "soon"}, "payload.ms"),
        ("sleep", {"ms": 10, "extra": 1}, "payload.extra"),
        ("echo", ["not", "an", "object"], "payload"),
        ("fail", {}, "payload.message"),
        ("sendEmail", {"template": "welcome"}, "payload.userId"),
        ("email", {"to": "not an address"}, "payload.to"),
        ("email", {"to": "a@b.com\r\nBcc: x@y.com"}, "payload.to"),
    ],
)
def test_invalid_payloads_name_their_field(
    registry: TaskRegistry, name: str, payload: Any, field: str
) -> None:
    with pytest.raises(InvalidTask) as caught:
        parse(registry, name, payload)
    assert caught.value.field == field


def test_send_email_demo_keeps_the_seed_field_names(registry: TaskRegistry) -> None:
    payload = {"userId": 123, "template": "welcome"}
    assert registry.normalize(registry.get("sendEmail"), payload) == payload


async def test_sleep_reports_progress_up_to_100(
    registry: TaskRegistry, ctx: TaskContext, progress: list[Any]
) -> None:
    assert await run(registry, "sleep", {"ms": 250}, ctx) == {"sleptMs": 250}
    assert progress == [40, 80, 100]


async def test_sleep_of_zero_returns_at_once(registry: TaskRegistry, ctx: TaskContext) -> None:
    assert await run(registry, "sleep", {"ms": 0}, ctx) == {"sleptMs": 0}


async def test_sleep_is_cancelled_at_its_next_await(
    registry: TaskRegistry, ctx: TaskContext
) -> None:
    running = asyncio.create_task(run(registry, "sleep", {"ms": 60_000}, ctx))
    await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_sleep_sync_runs_in_a_thread_and_reports_progress(
    registry: TaskRegistry, ctx: TaskContext, progress: list[Any]
) -> None:
    task_type = registry.get("sleep_sync")
    payload = registry.parse(task_type, {"ms": 150})
    assert await asyncio.to_thread(task_type.handler, payload, ctx) == {"sleptMs": 150}
    assert progress == [66, 100]


async def test_sleep_sync_stops_once_cancelled(registry: TaskRegistry, ctx: TaskContext) -> None:
    task_type = registry.get("sleep_sync")
    payload = registry.parse(task_type, {"ms": 60_000})
    running = asyncio.create_task(asyncio.to_thread(task_type.handler, payload, ctx))
    await asyncio.sleep(0.05)
    ctx.cancel()
    with pytest.raises(TaskCancelled):
        await asyncio.wait_for(running, timeout=2)


async def test_echo_returns_its_payload(registry: TaskRegistry, ctx: TaskContext) -> None:
    payload = {"a": 1, "nested": {"list": [1, "two", None]}}
    assert await run(registry, "echo", payload, ctx) == payload
    assert await run(registry, "echo", {}, ctx) == {}


async def test_fail_is_retryable_by_default(registry: TaskRegistry, ctx: TaskContext) -> None:
    with pytest.raises(RuntimeError, match="boom") as caught:
        await run(registry, "fail", {"message": "boom"}, ctx)
    assert not isinstance(caught.value, NonRetryableError)


async def test_fail_can_be_final(registry: TaskRegistry, ctx: TaskContext) -> None:
    with pytest.raises(NonRetryableError, match="bad input"):
        await run(registry, "fail", {"message": "bad input", "retryable": False}, ctx)


async def test_send_email_demo_logs_instead_of_sending(
    registry: TaskRegistry, ctx: TaskContext, log: RecordingLog
) -> None:
    result = await run(registry, "sendEmail", {"userId": 123, "template": "welcome"}, ctx)
    assert result == {"userId": 123, "template": "welcome", "demo": True}
    assert log.events == [("demo.email", {"user_id": 123, "template": "welcome"})]


async def test_email_demo_logs_instead_of_sending(
    registry: TaskRegistry, ctx: TaskContext, log: RecordingLog
) -> None:
    result = await run(registry, "email", {"to": "user@example.com"}, ctx)
    assert result == {"to": "user@example.com", "demo": True}
    assert log.events == [("demo.email", {"to": "user@example.com"})]
