"""The HTTP API against a real Redis: enqueue, read, delete, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app
from tests.conftest import LOCAL

Client = AsyncTestClient[Any]


async def enqueue(client: Client, **body: Any) -> Any:
    return await client.post("/api/tasks", json=body)


async def test_enqueue_answers_202_with_the_bare_task(client: Client) -> None:
    response = await enqueue(
        client, taskName="sendEmail", payload={"userId": 123, "template": "welcome"},
        delayMs=5000, priority=1, customJobId="unique-id-123",
    )  # fmt: skip
    assert response.status_code == 202
    task = response.json()
    assert task["id"] == "unique-id-123"
    assert task["taskName"] == "sendEmail"
    assert task["status"] == "delayed"
    assert task["priority"] == 1
    assert task["payload"] == {"userId": 123, "template": "welcome"}
    assert task["maxAttempts"] == 3
    assert task["runAt"] > task["createdAt"]


async def test_a_task_is_read_back_by_id(client: Client) -> None:
    created = (await enqueue(client, taskName="echo", payload={"a": 1})).json()
    response = await client.get(f"/api/tasks/{created['id']}")
    assert response.status_code == 200
    assert response.json()["status"] == "waiting"
    assert response.json()["payload"] == {"a": 1}


async def test_unknown_id_is_404_in_the_uniform_error_shape(client: Client) -> None:
    response = await client.get("/api/tasks/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "task 'nothing-here' not found"}


async def test_repeated_custom_id_is_200_with_the_existing_task(client: Client) -> None:
    first = await enqueue(client, taskName="echo", payload={"n": 1}, customJobId="same")
    again = await enqueue(client, taskName="echo", payload={"n": 1}, customJobId="same")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["createdAt"] == first.json()["createdAt"]


@pytest.mark.parametrize(
    "body",
    [
        {"taskName": "echo", "payload": {"n": 2}},
        {"taskName": "sleep", "payload": {"ms": 1}},
    ],
)
async def test_same_custom_id_with_other_content_is_409(client: Client, body: Any) -> None:
    await enqueue(client, taskName="echo", payload={"n": 1}, customJobId="taken")
    response = await enqueue(client, **body, customJobId="taken")
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


async def test_a_removed_id_stays_reserved(client: Client) -> None:
    await enqueue(client, taskName="echo", payload={"n": 1}, customJobId="gone")
    assert (await client.delete("/api/tasks/gone")).status_code == 204
    assert (await client.get("/api/tasks/gone")).status_code == 404
    same = await enqueue(client, taskName="echo", payload={"n": 1}, customJobId="gone")
    assert same.status_code == 200
    assert same.json() == {"id": "gone", "status": "removed"}
    other = await enqueue(client, taskName="echo", payload={"n": 2}, customJobId="gone")
    assert other.status_code == 409


async def test_malformed_json_is_400(client: Client) -> None:
    response = await client.post(
        "/api/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


async def test_missing_body_is_400(client: Client) -> None:
    response = await client.post("/api/tasks")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"taskName": "no_such_type", "payload": {}}, "taskName"),
        ({"taskName": "sleep", "payload": {"ms": "soon"}}, "payload.ms"),
        ({"taskName": "sleep", "payload": {}}, "payload.ms"),
        ({"taskName": "echo", "payload": {}, "customJobId": "has space"}, "customJobId"),
        ({"taskName": "echo", "payload": {}, "customJobId": "stats"}, "customJobId"),
        ({"taskName": "echo", "payload": {}, "delayMs": -1}, "delayMs"),
        ({"taskName": "echo", "payload": {}, "priority": 10**9}, "priority"),
        ({"taskName": "echo", "payload": {}, "attempts": 0}, "attempts"),
        ({"taskName": "echo", "payload": []}, "payload"),
        ({"payload": {}}, "taskName"),
        ({"taskName": "write_file", "payload": {"path": "../x", "content": ""}}, "payload.path"),
        ({"taskName": "create_folder", "payload": {"path": "/a/../../b"}}, "payload.path"),
    ],
)
async def test_bad_input_is_422_naming_the_field(client: Client, body: Any, field: str) -> None:
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]


async def test_nothing_is_stored_for_a_rejected_request(client: Client, redis: Redis) -> None:
    await enqueue(client, taskName="sleep", payload={"ms": "x"}, customJobId="never")
    assert (await client.get("/api/tasks/never")).status_code == 404
    assert await redis.keys("conveyor:*task:never") == []


async def test_health_ready_and_schema(client: Client) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/tasks" in schema["paths"]


@pytest.mark.single_redis
async def test_ready_is_503_when_redis_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", files_base_dir=tmp_path)
    container = Container()
    container.settings.override(providers.Object(settings))
    async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as unreachable:
        response = await unreachable.get("/ready")
        assert response.status_code == 503
        enqueue_response = await enqueue(unreachable, taskName="echo", payload={})
        assert enqueue_response.status_code == 503
        assert enqueue_response.json()["error"] == "unavailable"
