"""A full queue over HTTP: 429 `queue_full` with Retry-After on every route that enqueues,
nothing stored, repeats still answered; the OpenAPI schema says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from domain.admission import MAX_RETRY_AFTER_S
from domain.task import TaskStatus
from infrastructure.redis.keys import keys_of
from tests.conftest import api_client

Client = AsyncTestClient[Any]


@pytest.fixture
async def client(redis: Redis, redis_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    """`default` holds at most 2 unfinished tasks, `reports` 1."""
    async with api_client(
        redis_url,
        tmp_path / "files",
        queues="default,reports",
        max_queue_depth=2,
        queue_max_depths="reports=1",
    ) as made:
        yield made


def echo(n: int, **extra: Any) -> dict[str, Any]:
    return {"taskName": "echo", "payload": {"n": n}, **extra}


def assert_queue_full(response: Any, queue: str) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"] == "queue_full"
    assert f"queue {queue!r} is full" in body["detail"]
    assert response.headers["retry-after"] == str(MAX_RETRY_AFTER_S)  # no worker ran


async def test_a_full_queue_answers_429_and_stores_nothing(client: Client, redis: Redis) -> None:
    for n in range(2):
        assert (await client.post("/api/tasks", json=echo(n))).status_code == 202

    late = await client.post("/api/tasks", json=echo(9, customJobId="late"))

    assert_queue_full(late, "default")
    assert (await client.get("/api/tasks/late")).status_code == 404
    assert await redis.zcard(keys_of("default").state(TaskStatus.WAITING)) == 2


async def test_a_repeated_id_still_answers_200_when_full(client: Client) -> None:
    first = await client.post("/api/tasks", json=echo(1, customJobId="job-1", queue="reports"))
    assert first.status_code == 202

    again = await client.post("/api/tasks", json=echo(1, customJobId="job-1", queue="reports"))
    other = await client.post("/api/tasks", json=echo(2, customJobId="job-2", queue="reports"))

    assert again.status_code == 200
    assert again.json()["id"] == "job-1"
    assert_queue_full(other, "reports")


async def test_a_bulk_enqueue_past_the_limit_is_refused_whole(client: Client) -> None:
    tasks = [echo(n, customJobId=f"b{n}") for n in range(3)]

    refused = await client.post("/api/tasks/bulk", json={"tasks": tasks})
    fits = await client.post("/api/tasks/bulk", json={"tasks": tasks[:2]})

    assert_queue_full(refused, "default")
    assert fits.status_code == 202
    assert (await client.get("/api/tasks/b2")).status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tasks", {"taskName": "echo", "payload": {"n": 1}}),
        ("/api/job", {"task": {"type": "echo", "data": {"n": 1}}}),
        ("/jobs/enqueue", {"type": "echo", "payload": {"n": 1}}),
    ],
    ids=["seed000", "seed001", "seed003"],
)
async def test_the_seed_routes_answer_429_too(client: Client, path: str, body: Any) -> None:
    for _ in range(2):
        assert (await client.post(path, json=body)).status_code in (200, 202)

    assert_queue_full(await client.post(path, json=body), "default")


async def test_a_duplicate_of_a_task_into_a_full_queue_is_a_429(client: Client) -> None:
    await client.post("/api/tasks", json=echo(1, customJobId="one"))
    await client.post("/api/tasks", json=echo(2))

    assert_queue_full(await client.post("/api/tasks/one/duplicate"), "default")


async def test_the_schema_lists_429_where_an_enqueue_can_be_refused(client: Client) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]

    for path in ("/api/tasks", "/api/tasks/bulk", "/tasks", "/api/job", "/jobs/enqueue",
                 "/api/tasks/{task_id}/duplicate", "/api/templates/{template_id}/use"):  # fmt: skip
        assert "Retry-After" in paths[path]["post"]["responses"]["429"]["description"], path
    assert "429" not in paths["/api/tasks/{task_id}/retry"]["post"]["responses"]
