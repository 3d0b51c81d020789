"""Every HTTP route that takes a send_email payload refuses header injection, storing nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from infrastructure.redis.templates import RedisTemplateStore

Client = AsyncTestClient[Any]
Route = Callable[[Client, Redis, dict[str, Any]], Awaitable[Any]]

GOOD = {"to": "user@example.com", "subject": "Hello", "message": "This is a test email"}
BAD_VALUES = [
    ("subject", "=?utf-8?q?Hi=0D=0ABcc:_evil@example.net?="),
    ("subject", "=?UTF-8?B?SGkNCkJjYzogZXZpbEBleGFtcGxlLm5ldA==?="),
    ("subject", "Hi\r\nBcc: evil@example.net"),
    ("subject", "Hi\u2028Bcc: evil@example.net"),
    ("subject", "Hi\x85Bcc: evil@example.net"),
    ("to", "=?utf-8?q?a=2C_evil=40example.net?=@example.com"),
    ("to", "Bob <user@example.com>, evil@example.net"),
    ("to", "user@example.com\nBcc: evil@example.net"),
]


async def native(client: Client, redis: Redis, data: dict[str, Any]) -> Any:
    return await client.post("/api/tasks", json={"taskName": "send_email", "payload": data})


async def native_bulk(client: Client, redis: Redis, data: dict[str, Any]) -> Any:
    tasks = [{"taskName": "send_email", "payload": body} for body in (GOOD, data)]
    return await client.post("/api/tasks/bulk", json={"tasks": tasks})


async def seed000(client: Client, redis: Redis, data: dict[str, Any]) -> Any:
    return await client.post("/tasks", json={"taskName": "send_email", "payload": data})


async def seed001(client: Client, redis: Redis, data: dict[str, Any]) -> Any:
    return await client.post("/api/job", json={"task": {"type": "send_email", "data": data}})


async def seed003(client: Client, redis: Redis, data: dict[str, Any]) -> Any:
    return await client.post("/jobs/enqueue", json={"type": "send_email", "payload": data})


async def template_create(client: Client, redis: Redis, data: dict[str, Any]) -> Any:
    body = {"name": "bad", "task": {"type": "send_email", "data": data}}
    return await client.post("/api/templates", json=body)


async def template_use(client: Client, redis: Redis, data: dict[str, Any]) -> Any:
    # A template saved before these rules: straight into the store, unvalidated.
    template = await RedisTemplateStore(redis).add("old", "send_email", data, 0)
    return await client.post(f"/api/templates/{template.id}/use", json={})


ROUTES: list[tuple[Route, str]] = [
    (native, "payload"),
    (native_bulk, "payload"),
    (seed000, "payload"),
    (seed001, "task.data"),
    (seed003, "payload"),
    (template_create, "task.data"),
    (template_use, "task.data"),
]


async def stored_keys(redis: Redis) -> list[str]:
    """Every key but the templates a test put there itself."""
    keys = [str(key) for key in await redis.keys("*")]
    return [key for key in keys if "template" not in key]


@pytest.mark.parametrize(("route", "prefix"), ROUTES, ids=lambda r: getattr(r, "__name__", r))
@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
async def test_header_injection_is_422_naming_the_field_and_stores_nothing(
    client: Client, redis: Redis, route: Route, prefix: str, bad: tuple[str, str]
) -> None:
    field, value = bad
    response = await route(client, redis, {**GOOD, field: value})

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert f"{prefix}.{field}" in body["fields"], body
    assert await stored_keys(redis) == []
    listing = await client.get("/api/tasks")
    assert listing.json()["total"] == 0


async def test_a_template_refused_at_creation_is_not_stored(client: Client, redis: Redis) -> None:
    await template_create(client, redis, {**GOOD, "subject": BAD_VALUES[0][1]})
    assert (await client.get("/api/templates")).json() == []


@pytest.mark.parametrize(("route", "prefix"), ROUTES, ids=lambda r: getattr(r, "__name__", r))
async def test_a_legitimate_non_ascii_subject_is_accepted(
    client: Client, redis: Redis, route: Route, prefix: str
) -> None:
    response = await route(client, redis, {**GOOD, "subject": "Café ☕ naïve"})
    assert response.status_code in (200, 201, 202), response.text
    if route is not template_create:  # the check above is not vacuous: a task is stored
        assert await stored_keys(redis) != []
