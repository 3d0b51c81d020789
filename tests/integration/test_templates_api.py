"""The template routes against a real Redis: seed 001's requests verbatim, and bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from tests.conftest import api_client

Client = AsyncTestClient[Any]

SEED_TASK = {
    "type": "send_email",
    "data": {"to": "user@example.com", "subject": "Hello", "message": "This is a test email"},
}
SEED_SCHEDULED_AT = "2026-02-20T10:00:00Z"


async def create(client: Client, name: str = "Welcome email", task: Any = None) -> Any:
    response = await client.post("/api/templates", json={"name": name, "task": task or SEED_TASK})
    assert response.status_code == 201, response.text
    return response.json()


def millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


# --- seed 001's documented requests -------------------------------------------------------


async def test_seed_create_answers_201_with_the_template(client: Client) -> None:
    before = time.time_ns() // 1_000_000
    template = await create(client)
    assert template["id"] == "1"
    assert template["name"] == "Welcome email"
    assert template["task"] == SEED_TASK
    assert template["created_at"].endswith("Z")
    assert before - 1 <= millis(template["created_at"]) <= time.time_ns() // 1_000_000


async def test_seed_list_returns_every_template_newest_first(client: Client) -> None:
    first = await create(client, "first")
    second = await create(client, "second", {"type": "echo", "data": {"n": 1}})
    response = await client.get("/api/templates")
    assert response.status_code == 200
    assert response.json() == [second, first]


async def test_an_empty_listing_is_an_empty_array(client: Client) -> None:
    response = await client.get("/api/templates")
    assert response.status_code == 200
    assert response.json() == []


async def test_seed_use_creates_a_task_with_the_templates_type_and_data(client: Client) -> None:
    template = await create(client)
    response = await client.post(
        f"/api/templates/{template['id']}/use", json={"scheduled_at": SEED_SCHEDULED_AT}
    )
    assert response.status_code == 202, response.text
    task = response.json()
    assert task["taskName"] == "send_email"
    assert task["payload"] == SEED_TASK["data"]
    # A moment already past means "now"; one still ahead leaves the task delayed until then.
    if millis(SEED_SCHEDULED_AT) <= millis(task["createdAt"]):
        assert task["status"] == "waiting"
        assert task["runAt"] == task["createdAt"]
    else:
        assert task["status"] == "delayed"
        assert millis(task["runAt"]) == millis(SEED_SCHEDULED_AT)
    stored = await client.get(f"/api/tasks/{task['id']}")
    assert stored.json()["status"] == task["status"]


async def test_seed_delete_answers_204_and_the_template_is_gone(client: Client) -> None:
    template = await create(client)
    response = await client.delete(f"/api/templates/{template['id']}")
    assert response.status_code == 204
    assert (await client.get("/api/templates")).json() == []
    assert (await client.post(f"/api/templates/{template['id']}/use", json={})).status_code == 404


# --- using a template ---------------------------------------------------------------------


async def test_a_future_scheduled_at_makes_a_delayed_task(client: Client) -> None:
    template = await create(client, task={"type": "echo", "data": {"n": 1}})
    due = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    response = await client.post(
        f"/api/templates/{template['id']}/use", json={"scheduled_at": due.isoformat()}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "delayed"
    assert millis(response.json()["runAt"]) == int(due.timestamp() * 1000)


@pytest.mark.parametrize("body", [None, {}, {"scheduled_at": None}])
async def test_use_without_a_time_runs_now(client: Client, body: Any) -> None:
    template = await create(client, task={"type": "echo", "data": {"n": 1}})
    response = await client.post(f"/api/templates/{template['id']}/use", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "waiting"
    assert response.json()["payload"] == {"n": 1}


async def test_each_use_creates_a_new_task(client: Client) -> None:
    template = await create(client, task={"type": "echo", "data": {}})
    url = f"/api/templates/{template['id']}/use"
    first, second = (await client.post(url)).json(), (await client.post(url)).json()
    assert first["id"] != second["id"]


async def test_data_is_stored_with_the_task_types_defaults(client: Client) -> None:
    template = await create(client, task={"type": "fail", "data": {"message": "boom"}})
    assert template["task"]["data"] == {"message": "boom", "retryable": True}
    assert (await client.get("/api/templates")).json() == [template]


# --- not found ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/templates/42"), ("POST", "/api/templates/42/use")],
)
async def test_an_unknown_template_is_404_in_the_uniform_shape(
    client: Client, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "template '42' not found"}


async def test_a_template_deleted_twice_is_404_the_second_time(client: Client) -> None:
    template = await create(client)
    await client.delete(f"/api/templates/{template['id']}")
    assert (await client.delete(f"/api/templates/{template['id']}")).status_code == 404


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({"type": "no_such_type", "data": {}}, "task.type"),
        ({"type": "sleep", "data": {"ms": "soon"}}, "task.data.ms"),
        ({"type": "sleep", "data": {}}, "task.data.ms"),
        ({"type": "send_email", "data": {"to": "a@b.c"}}, "task.data.subject"),
        ({"type": "write_file", "data": {"path": "../x", "content": ""}}, "task.data.path"),
        ({"data": {}}, "task.type"),
        ({"type": "", "data": {}}, "task.type"),
        ({"type": "echo", "data": []}, "task.data"),
        ({"type": "echo", "data": {}, "priority": 1}, "task.priority"),
    ],
)
async def test_a_bad_task_is_422_naming_the_field(client: Client, task: Any, field: str) -> None:
    response = await client.post("/api/templates", json={"name": "x", "task": task})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"], response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": SEED_TASK}, "name"),
        ({"name": "", "task": SEED_TASK}, "name"),
        ({"name": "   ", "task": SEED_TASK}, "name"),
        ({"name": "x" * 101, "task": SEED_TASK}, "name"),
        ({"name": 7, "task": SEED_TASK}, "name"),
        ({"name": "x"}, "task"),
        ({"name": "x", "task": "send_email"}, "task"),
    ],
)
async def test_a_bad_body_is_422_naming_the_field(client: Client, body: Any, field: str) -> None:
    response = await client.post("/api/templates", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"], response.json()


async def test_a_missing_body_is_400(client: Client) -> None:
    assert (await client.post("/api/templates")).status_code == 400


async def test_nothing_is_stored_for_a_rejected_template(client: Client, redis: Redis) -> None:
    body = {"name": "x", "task": {"type": "sleep", "data": {}}}
    assert (await client.post("/api/templates", json=body)).status_code == 422
    assert (await client.get("/api/templates")).json() == []
    assert await redis.keys("conveyor:templates*") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"scheduledAt": SEED_SCHEDULED_AT}, "scheduledAt"),
        ([SEED_SCHEDULED_AT], "body"),
    ],
)
async def test_a_bad_use_body_is_422_naming_the_field(
    client: Client, body: Any, field: str
) -> None:
    template = await create(client)
    response = await client.post(f"/api/templates/{template['id']}/use", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]


async def test_a_malformed_use_body_is_400(client: Client) -> None:
    template = await create(client)
    response = await client.post(
        f"/api/templates/{template['id']}/use",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400


async def test_the_routes_are_in_the_openapi_schema(client: Client) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert "/api/templates" in paths
    assert "/api/templates/{template_id}/use" in paths


@pytest.mark.single_redis
async def test_a_queue_named_templates_shares_no_key_with_the_templates(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    async with api_client(redis_url, tmp_path, queues="default,templates") as client:
        for n in range(3):
            body = {"taskName": "echo", "payload": {"n": n}, "queue": "templates"}
            assert (await client.post("/api/tasks", json=body)).status_code == 202
        first, second = await create(client), await create(client, name="second")
        later = {"taskName": "echo", "payload": {}, "queue": "templates", "priority": 5}
        assert (await client.post("/api/tasks", json=later)).status_code == 202
        listed = (await client.get("/api/tasks", params={"queue": "templates"})).json()

    assert (first["id"], second["id"]) == ("1", "2")  # the queue's counters left them alone
    assert listed["total"] == 4
    template_keys = {key for key in await redis.keys("conveyor:*") if "#templates" in key}
    queue_keys = await redis.keys("conveyor:{templates}:*")
    assert template_keys
    assert queue_keys
    assert not template_keys & set(queue_keys)
