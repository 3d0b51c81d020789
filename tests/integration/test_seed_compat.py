"""The seeds' own routes (seeds 000, 001, 003) over HTTP with a real Redis.

Each seed README's example request is sent verbatim (the JSON bodies and query strings are
copied from the seed documents) and checked for the effect the seed describes. Effects
that need a worker are in tests/e2e/test_seed_examples.py.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from tests.contract.queue_support import TaskStore
from tests.stores import RedisStore

Client = AsyncTestClient[Any]
JSON = {"content-type": "application/json"}

# --- the seeds' examples, verbatim --------------------------------------------------------

SEED_001_CREATE_JOB = """{
  "task": {
    "type": "send_email",
    "data": {
      "to": "user@example.com",
      "subject": "Hello",
      "message": "This is a test email"
    }
  },
  "scheduled_at": "2026-02-19T10:00:00Z"
}"""
SEED_001_LIST_JOBS = (
    "/api/jobs?page=1&limit=20&status=pending&taskType=send_email&search=user"
    "&startDate=2026-02-01&endDate=2026-02-28"
)
SEED_001_EXPORT = "/api/jobs/export?status=completed&taskType=send_email"
SEED_001_DUPLICATE = """{
  "scheduled_at": "2026-02-20T10:00:00Z"
}"""
SEED_001_BULK_CANCEL = """{
  "ids": [1, 2, 3, 4, 5]
}"""
SEED_001_BULK_RETRY = """{
  "ids": [6, 7, 8]
}"""
SEED_001_TASK_TYPES = [
    """{
  "type": "create_folder",
  "data": {
    "path": "/path/to/folder"
  }
}""",
    """{
  "type": "write_file",
  "data": {
    "path": "/path/to/file.txt",
    "content": "File content here"
  }
}""",
    """{
  "type": "send_email",
  "data": {
    "to": "recipient@example.com",
    "subject": "Email Subject",
    "message": "Email body content"
  }
}""",
]
SEED_003_ENQUEUE = """{
  "type": "email",
  "payload": { "to": "user@example.com" },
  "priority": 1,
  "delay": 5000
}"""
SEED_003_STATS_EXAMPLE = {"waiting": 2, "active": 1, "completed": 10, "failed": 1, "delayed": 0}
JOB_KEYS = {
    "id", "task", "scheduled_at", "status", "picked_at", "started_at", "completed_at",
    "created_at",
}  # fmt: skip


@dataclass
class Api:
    client: Client
    queue: TaskStore

    async def claim(self, limit: int = 10) -> list[str]:
        """Claim as a worker would, making due tasks active."""
        batch = await self.queue.claim("default", "test-worker", limit, 30_000, now_ms())
        return [task.id for task in batch.tasks]


@pytest.fixture
async def api(
    redis: Redis, blocking_redis: Redis, redis_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    settings = Settings(redis_url=redis_url, files_base_dir=tmp_path / "files")
    container = Container()
    container.settings.override(providers.Object(settings))
    # The app runs on the test client's own loop: the test claims through its own queue.
    queue = RedisStore(redis, blocking_redis, settings.idempotency_window_ms)
    try:
        async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as client:
            yield Api(client, queue)
    finally:
        await queue.aclose()


def now_ms() -> int:
    return int(time.time() * 1000)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def post_raw(client: Client, path: str, body: str) -> Any:
    return await client.post(path, content=body.encode(), headers=JSON)


async def native(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


async def job(client: Client, body: str = SEED_001_CREATE_JOB) -> dict[str, Any]:
    response = await post_raw(client, "/api/job", body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


async def native_status(client: Client, task_id: str) -> str:
    response = await client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


# --- seed 000 --------------------------------------------------------------------------


async def test_seed_000_post_tasks_enqueues_and_answers_its_message(api: Api) -> None:
    response = await api.client.post(
        "/tasks", json={"taskName": "sendEmail", "payload": {"userId": 123, "template": "hi"}}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Task enqueued successfully"
    task = (await api.client.get(f"/api/tasks/{body['id']}")).json()
    assert task["taskName"] == "sendEmail"
    assert task["payload"] == {"userId": 123, "template": "hi"}
    assert task["status"] == "waiting"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"taskName": "no_such_type", "payload": {}}, "taskName"),
        ({"taskName": "sleep", "payload": {"ms": "soon"}}, "payload.ms"),
        ({"payload": {}}, "taskName"),
    ],
)
async def test_seed_000_bad_input_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.client.post("/tasks", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"]


# --- seed 001: create, list, export ----------------------------------------------------


async def test_seed_001_create_job_example_makes_a_pending_send_email_job(api: Api) -> None:
    before = now_ms()
    created = await job(api.client)
    assert set(created) == JOB_KEYS
    assert created["task"] == {
        "type": "send_email",
        "data": {"to": "user@example.com", "subject": "Hello", "message": "This is a test email"},
    }
    assert created["status"] == "pending"
    assert created["picked_at"] is None
    assert created["started_at"] is None
    assert created["completed_at"] is None
    # The example's time has passed: the job is due at once (DESIGN: a past time is now).
    assert instant(created["scheduled_at"]) == instant(created["created_at"])
    assert instant(created["created_at"]) >= datetime.fromtimestamp(before / 1000, UTC) - (
        timedelta(milliseconds=1)
    )
    task = (await api.client.get(f"/api/tasks/{created['id']}")).json()
    assert task["taskName"] == "send_email"
    assert task["status"] == "waiting"


async def test_seed_001_future_scheduled_at_is_kept_and_the_job_is_pending(api: Api) -> None:
    due = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    body = SEED_001_CREATE_JOB.replace("2026-02-19T10:00:00Z", due.isoformat())
    created = await job(api.client, body)
    assert instant(created["scheduled_at"]) == due
    assert created["status"] == "pending"
    assert await native_status(api.client, created["id"]) == "delayed"


@pytest.mark.parametrize("task", SEED_001_TASK_TYPES)
async def test_seed_001_each_documented_task_type_is_accepted(api: Api, task: str) -> None:
    created = await job(api.client, f'{{"task": {task}, "scheduled_at": "2026-02-19T10:00:00Z"}}')
    assert created["task"]["type"] in {"create_folder", "write_file", "send_email"}
    assert created["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": {"data": {}}}, "task.type"),
        ({"task": {"type": "no_such_type", "data": {}}}, "task.type"),
        ({"task": {"type": "send_email", "data": {"to": "x", "subject": "s"}}}, "task.data.to"),
        ({"task": {"type": "send_email", "data": {"to": "a@b.c"}}}, "task.data.subject"),
        ({"task": {"type": "write_file", "data": {"path": "../up"}}}, "task.data.path"),
        ({"task": {"type": "echo", "data": {}}, "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"task": {"type": "echo"}, "scheduledAt": "2026-02-19T10:00:00Z"}, "scheduledAt"),
    ],
)  # fmt: skip
async def test_seed_001_bad_job_is_422_naming_the_field_in_its_terms(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.client.post("/api/job", json=body)
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"error", "detail", "fields"}
    assert field in response.json()["fields"]


async def test_seed_001_list_example_filters_by_status_type_search_and_dates(api: Api) -> None:
    created = await job(api.client)  # pending send_email to user@..., created today
    await native(api.client, taskName="echo", payload={"to": "user@example.com"})
    response = await api.client.get(SEED_001_LIST_JOBS)
    assert response.status_code == 200
    # The example's dates (February 2026) bound the creation time: today is outside them.
    # A search may be answered by a capped scan, which cannot count: total is then null.
    listed = response.json()
    assert (listed["jobs"], listed["page"], listed["limit"]) == ([], 1, 20)
    assert (listed["total"], listed["totalPages"]) in {(0, 0), (None, None)}
    today = datetime.now(UTC).date().isoformat()
    this_day = SEED_001_LIST_JOBS.replace("2026-02-01", today).replace("2026-02-28", today)
    found = (await api.client.get(this_day)).json()
    assert [j["id"] for j in found["jobs"]] == [created["id"]]  # the echo job is not send_email
    assert (found["total"], found["totalPages"]) in {(1, 1), (None, None)}
    assert found["jobs"][0] == created
    no_match = this_day.replace("search=user", "search=nobody")
    assert (await api.client.get(no_match)).json()["jobs"] == []
    running = this_day.replace("status=pending", "status=running")
    assert (await api.client.get(running)).json()["jobs"] == []


async def test_seed_001_bare_end_date_includes_that_whole_day(api: Api) -> None:
    created = await job(api.client)
    today = datetime.now(UTC).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)

    async def ids(query: str) -> list[str]:
        response = await api.client.get(f"/api/jobs?{query}")
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["jobs"]]

    assert await ids(f"endDate={today}") == [created["id"]]
    assert await ids(f"startDate={today}&endDate={today}") == [created["id"]]
    assert await ids(f"endDate={yesterday}") == []
    assert await ids(f"startDate={tomorrow}") == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert await ids(f"startDate={earlier}&endDate={later.replace('+', '%2B')}") == [created["id"]]


async def test_seed_001_pending_lists_waiting_and_delayed_newest_first(api: Api) -> None:
    await native(api.client, taskName="echo", payload={}, customJobId="a")
    await native(api.client, taskName="echo", payload={}, customJobId="b", delayMs=60_000)
    await native(api.client, taskName="echo", payload={}, customJobId="c")
    await native(api.client, taskName="echo", payload={}, customJobId="d")
    assert (await api.client.post("/api/cancel/d")).json()["status"] == "cancelled"

    async def page(number: int) -> dict[str, Any]:
        response = await api.client.get(f"/api/jobs?status=pending&limit=2&page={number}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    first, second = await page(1), await page(2)
    assert [j["id"] for j in first["jobs"]] == ["c", "b"]
    assert [j["id"] for j in second["jobs"]] == ["a"]
    assert {j["status"] for j in first["jobs"] + second["jobs"]} == {"pending"}
    assert (first["total"], first["totalPages"], second["page"]) == (3, 2, 2)
    cancelled = (await api.client.get("/api/jobs?status=cancelled")).json()
    assert [j["id"] for j in cancelled["jobs"]] == ["d"]
    # `picked` has no counterpart here: a claimed task is running.
    picked = (await api.client.get("/api/jobs?status=picked")).json()
    assert (picked["jobs"], picked["total"]) == ([], 0)
    everything = (await api.client.get("/api/jobs")).json()
    assert [j["id"] for j in everything["jobs"]] == ["d", "c", "b", "a"]


async def test_seed_001_a_claimed_job_is_running_with_its_pick_and_start_times(api: Api) -> None:
    created = await job(api.client)
    assert await api.claim() == [created["id"]]
    running = (await api.client.get("/api/jobs?status=running")).json()["jobs"]
    assert [j["id"] for j in running] == [created["id"]]
    assert running[0]["status"] == "running"
    assert running[0]["picked_at"] is not None
    assert running[0]["picked_at"] == running[0]["started_at"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("startDate=yesterday", "startDate"),
        ("endDate=2026-02-30", "endDate"),
        ("limit=0", "limit"),
        ("page=0", "page"),
    ],
)
async def test_seed_001_bad_listing_query_is_422_naming_the_parameter(
    api: Api, query: str, field: str
) -> None:
    response = await api.client.get(f"/api/jobs?{query}")
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_seed_001_export_example_is_csv_with_a_header(api: Api) -> None:
    await job(api.client)  # pending, so the example's status=completed leaves it out
    response = await api.client.get(SEED_001_EXPORT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0].startswith("id,taskName,")
    assert len(lines) == 1


async def test_seed_001_export_of_pending_jobs_covers_waiting_and_delayed(api: Api) -> None:
    waiting = await job(api.client)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    delayed = await job(api.client, SEED_001_CREATE_JOB.replace("2026-02-19T10:00:00Z", later))
    await native(api.client, taskName="echo", payload={})
    response = await api.client.get("/api/jobs/export?status=pending&taskType=send_email")
    assert response.status_code == 200
    rows = csv_rows(response.text)
    assert sorted(row["id"] for row in rows) == sorted([waiting["id"], delayed["id"]])
    assert {row["taskName"] for row in rows} == {"send_email"}


# --- seed 001: duplicate, bulk, retry, cancel ------------------------------------------


async def test_seed_001_duplicate_example_makes_a_new_job_of_the_same_task(api: Api) -> None:
    original = await job(api.client)
    response = await post_raw(api.client, f"/api/duplicate/{original['id']}", SEED_001_DUPLICATE)
    assert response.status_code == 202, response.text
    copy = response.json()
    assert set(copy) == JOB_KEYS
    assert copy["id"] != original["id"]
    assert copy["task"] == original["task"]
    assert copy["status"] == "pending"
    # The example's time has passed: the copy is due at once.
    assert instant(copy["scheduled_at"]) == instant(copy["created_at"])
    assert (await api.client.get(f"/api/tasks/{original['id']}")).status_code == 200


async def test_seed_001_duplicate_keeps_a_future_scheduled_at(api: Api) -> None:
    original = await job(api.client)
    due = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    body = SEED_001_DUPLICATE.replace("2026-02-20T10:00:00Z", due.isoformat())
    copy = (await post_raw(api.client, f"/api/duplicate/{original['id']}", body)).json()
    assert instant(copy["scheduled_at"]) == due
    assert await native_status(api.client, copy["id"]) == "delayed"


async def test_seed_001_duplicate_of_an_unknown_job_is_404(api: Api) -> None:
    response = await post_raw(api.client, "/api/duplicate/404", SEED_001_DUPLICATE)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_seed_001_bulk_cancel_example_answers_per_id(api: Api) -> None:
    for task_id in ("1", "2", "3", "4"):
        await native(api.client, taskName="echo", payload={}, customJobId=task_id)
    assert await api.claim(limit=4) == ["1", "2", "3", "4"]  # all four are running now
    await native(api.client, taskName="echo", payload={}, customJobId="5", delayMs=60_000)
    response = await post_raw(api.client, "/api/bulk/cancel", SEED_001_BULK_CANCEL)
    assert response.status_code == 200
    results = {r["id"]: r for r in response.json()["results"]}
    assert list(results) == ["1", "2", "3", "4", "5"]  # numeric ids taken as strings
    # Running jobs are asked to stop (their worker records the cancel); job 5 stops at once.
    assert [results[i]["outcome"] for i in results] == ["ok"] * 5
    assert results["5"]["status"] == "cancelled"
    assert results["1"]["status"] == "running"
    assert await native_status(api.client, "5") == "cancelled"


async def test_seed_001_bulk_retry_example_answers_per_id(api: Api) -> None:
    for task_id in ("6", "7"):
        await native(api.client, taskName="echo", payload={}, customJobId=task_id)
        assert (await api.client.post(f"/api/cancel/{task_id}")).status_code == 200
    response = await post_raw(api.client, "/api/bulk/retry", SEED_001_BULK_RETRY)
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"id": "6", "outcome": "ok", "status": "pending", "detail": None},
        {"id": "7", "outcome": "ok", "status": "pending", "detail": None},
        {"id": "8", "outcome": "not_found", "status": None, "detail": None},
    ]
    assert await native_status(api.client, "6") == "waiting"


async def test_seed_001_bulk_without_ids_is_422(api: Api) -> None:
    response = await api.client.post("/api/bulk/cancel", json={"ids": []})
    assert response.status_code == 422
    assert "ids" in response.json()["fields"]


async def test_seed_001_cancel_then_retry_a_job(api: Api) -> None:
    created = await job(api.client)
    cancelled = await api.client.post(f"/api/cancel/{created['id']}")
    assert cancelled.status_code == 200
    assert set(cancelled.json()) == JOB_KEYS
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["completed_at"] is not None
    retried = await api.client.post(f"/api/retry/{created['id']}")
    assert retried.status_code == 200
    assert retried.json()["status"] == "pending"  # "resets a failed job to pending"
    assert retried.json()["completed_at"] is None


async def test_seed_001_retry_and_cancel_of_unknown_jobs_are_404(api: Api) -> None:
    for path in ("/api/retry/99", "/api/cancel/99"):
        response = await api.client.post(path)
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "task '99' not found"}


async def test_seed_001_retry_of_a_pending_job_is_409(api: Api) -> None:
    created = await job(api.client)
    response = await api.client.post(f"/api/retry/{created['id']}")
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "conflict"


# --- seed 003 --------------------------------------------------------------------------


async def test_seed_003_enqueue_example_answers_202_with_the_bare_task(api: Api) -> None:
    response = await post_raw(api.client, "/jobs/enqueue", SEED_003_ENQUEUE)
    assert response.status_code == 202
    task = response.json()
    assert task["taskName"] == "email"
    assert task["payload"] == {"to": "user@example.com"}
    assert task["priority"] == 1
    assert task["status"] == "delayed"
    delay = instant(task["runAt"]) - instant(task["createdAt"])
    assert delay == timedelta(milliseconds=5000)
    read = await api.client.get(f"/jobs/{task['id']}")
    assert read.status_code == 200
    assert read.json() == task
    listed = (await api.client.get("/jobs")).json()
    assert [item["id"] for item in listed["items"]] == [task["id"]]
    assert listed["total"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": {"to": "user@example.com"}}, "type"),
        ({"type": "nope", "payload": {}}, "type"),
        ({"type": "email", "payload": {"to": "not an address"}}, "payload.to"),
        ({"type": "email", "payload": {}}, "payload.to"),
        ({"type": "email", "payload": {"to": "a@b.c"}, "delay": -1}, "delay"),
        ({"type": "email", "payload": {"to": "a@b.c"}, "priority": "high"}, "priority"),
        ({"type": "email", "payload": {"to": "a@b.c"}, "attempts": 2}, "attempts"),
    ],
)
async def test_seed_003_bad_enqueue_is_422_naming_the_field_in_its_terms(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.client.post("/jobs/enqueue", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]


async def test_seed_003_stats_have_the_example_shape_and_count_by_status(api: Api) -> None:
    response = await api.client.get("/jobs/stats")
    assert response.status_code == 200
    counts = response.json()
    assert set(SEED_003_STATS_EXAMPLE) <= set(counts)
    assert counts == dict.fromkeys([*SEED_003_STATS_EXAMPLE, "cancelled"], 0)
    for task_id in ("a1", "w1", "w2"):
        await native(api.client, taskName="echo", payload={}, customJobId=task_id)
    assert await api.claim(limit=1) == ["a1"]
    await native(api.client, taskName="echo", payload={}, customJobId="w3")
    await post_raw(api.client, "/jobs/enqueue", SEED_003_ENQUEUE)
    assert (await api.client.post("/jobs/w3/kill")).status_code == 200
    counts = (await api.client.get("/jobs/stats")).json()
    assert counts == {
        "waiting": 2, "active": 1, "completed": 0, "failed": 1, "delayed": 1, "cancelled": 0,
    }  # fmt: skip


async def test_seed_003_kill_fails_a_waiting_or_active_job(api: Api) -> None:
    await native(api.client, taskName="echo", payload={}, customJobId="busy")
    assert await api.claim() == ["busy"]
    await native(api.client, taskName="echo", payload={}, customJobId="idle")
    for task_id in ("busy", "idle"):
        response = await api.client.post(f"/jobs/{task_id}/kill")
        assert response.status_code == 200
        assert response.json()["status"] == "failed"
        assert response.json()["error"]["type"] == "Killed"
    failed = (await api.client.get("/jobs/failed/jobs")).json()
    assert sorted(item["id"] for item in failed["items"]) == ["busy", "idle"]
    assert failed["total"] == 2


async def test_seed_003_kill_of_a_finished_job_is_409(api: Api) -> None:
    await native(api.client, taskName="echo", payload={}, customJobId="done")
    assert (await api.client.post("/jobs/done/kill")).status_code == 200
    again = await api.client.post("/jobs/done/kill")
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "conflict"


async def test_seed_003_pause_then_enqueue_stays_waiting_until_resume(api: Api) -> None:
    paused = await api.client.post("/jobs/pause")
    assert paused.status_code == 200
    assert paused.json() == {"queue": "default", "paused": True}
    body = SEED_003_ENQUEUE.replace('"delay": 5000', '"delay": 0')
    task = (await post_raw(api.client, "/jobs/enqueue", body)).json()
    assert task["status"] == "waiting"
    assert await api.claim() == []  # a paused queue hands out nothing
    assert (await api.client.get(f"/jobs/{task['id']}")).json()["status"] == "waiting"
    stats = (await api.client.get("/api/stats")).json()
    assert stats["queues"]["default"]["paused"] is True
    resumed = await api.client.post("/jobs/resume")
    assert resumed.json() == {"queue": "default", "paused": False}
    assert await api.claim() == [task["id"]]


async def test_seed_003_delete_removes_a_job_but_not_an_active_one(api: Api) -> None:
    await native(api.client, taskName="echo", payload={}, customJobId="running")
    assert await api.claim() == ["running"]
    task = (await post_raw(api.client, "/jobs/enqueue", SEED_003_ENQUEUE)).json()
    assert (await api.client.delete(f"/jobs/{task['id']}")).status_code == 204
    gone = await api.client.get(f"/jobs/{task['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"
    busy = await api.client.delete("/jobs/running")
    assert busy.status_code == 409
    assert busy.json()["error"] == "task_active"
    assert (await api.client.get("/jobs/running")).json()["status"] == "active"


async def test_seed_003_literal_routes_win_over_job_ids(api: Api) -> None:
    """`/jobs/stats` and `/jobs/failed/jobs` are never read as a job id, and a job whose id
    is one of those words is still reached where the route has room for it."""
    await native(api.client, taskName="echo", payload={}, customJobId="failed")
    assert "waiting" in (await api.client.get("/jobs/stats")).json()
    assert (await api.client.get("/jobs/failed/jobs")).json()["items"] == []
    assert (await api.client.get("/jobs/failed")).json()["id"] == "failed"
    killed = await api.client.post("/jobs/failed/kill")
    assert killed.status_code == 200
    assert killed.json()["id"] == "failed"
    assert [t["id"] for t in (await api.client.get("/jobs/failed/jobs")).json()["items"]] == [
        "failed"
    ]


async def test_seed_003_unknown_job_is_404_in_the_uniform_shape(api: Api) -> None:
    for method, path in [("GET", "/jobs/x1"), ("POST", "/jobs/x1/kill"), ("DELETE", "/jobs/x1")]:
        response = await api.client.request(method, path)
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "task 'x1' not found"}


# --- roles ------------------------------------------------------------------------------


async def test_seed_enqueue_routes_are_producer_routes_the_rest_admin(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    keys = "ops:admin-key-0123456789:admin,ci:producer-key-0123456789:producer"
    settings = Settings(redis_url=redis_url, files_base_dir=tmp_path / "files", api_keys=keys)
    container = Container()
    container.settings.override(providers.Object(settings))
    producer = {"X-API-Key": "producer-key-0123456789"}
    async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as client:
        seed_000 = await client.post(
            "/tasks", json={"taskName": "echo", "payload": {}}, headers=producer
        )
        assert seed_000.status_code == 200
        seed_001 = await client.post(
            "/api/job", content=SEED_001_CREATE_JOB.encode(), headers={**JSON, **producer}
        )
        assert seed_001.status_code == 202
        seed_003 = await client.post(
            "/jobs/enqueue", content=SEED_003_ENQUEUE.encode(), headers={**JSON, **producer}
        )
        assert seed_003.status_code == 202
        assert seed_003.json()["createdBy"] == "ci"
        for method, path in [
            ("GET", "/api/jobs"),
            ("POST", f"/api/cancel/{seed_001.json()['id']}"),
            ("GET", "/jobs/stats"),
            ("POST", "/jobs/pause"),
            ("DELETE", f"/jobs/{seed_003.json()['id']}"),
        ]:
            denied = await client.request(method, path, headers=producer)
            assert denied.status_code == 403, (method, path)
            assert denied.json()["error"] == "forbidden"
        anonymous = await client.post("/tasks", json={"taskName": "echo", "payload": {}})
        assert anonymous.status_code == 401
