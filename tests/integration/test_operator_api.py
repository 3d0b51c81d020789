"""The operators' HTTP API against a real Redis, with no worker: listing, search, export,
bulk enqueue and batches, actions, bulk actions, pause, stats, waitMs, audit and auth.

Statuses a worker would reach (active, completed, failed by its handler) are reached by
calling the queue adapter directly: claim, then settle.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any, TypeVar

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from application.change_task import Action
from domain.task import Failure, Task, TaskError
from infrastructure.redis.transitions import RedisTransitions
from infrastructure.settings import Settings
from interfaces.container import Container, resolve
from interfaces.http.app import create_app
from tests.conftest import LOCAL

Client = AsyncTestClient[Any]

ADMIN_KEY = "operator-admin-key-0123456789"
PRODUCER_KEY = "operator-producer-key-0123456789"
OTHER_PRODUCER_KEY = "operator-other-producer-key-0123456789"
API_KEYS = f"ops:{ADMIN_KEY}:admin,ci:{PRODUCER_KEY}:producer,cron:{OTHER_PRODUCER_KEY}:producer"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PRODUCER = {"X-API-Key": PRODUCER_KEY}
OTHER_PRODUCER = {"X-API-Key": OTHER_PRODUCER_KEY}

FORMULA_START = ("=", "+", "-", "@")
T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Api:
    """The app under test, its HTTP client, and its container (for the queue adapter)."""

    client: Client
    container: Container
    headers: dict[str, str]

    async def on_app_loop(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `function` on the app's event loop, the one its Redis clients belong to
        (the test client serves the app from a thread of its own)."""
        future = self.client.blocking_portal.start_task_soon(function, *args)
        return await asyncio.wrap_future(future)

    def later(
        self, delay_s: float, function: Callable[..., Awaitable[Any]], *args: Any
    ) -> asyncio.Future[Any]:
        """Run `function` on the app's loop after `delay_s`, while the test goes on: the test
        client blocks the test's own loop for as long as a request takes."""

        async def delayed() -> Any:
            await asyncio.sleep(delay_s)
            return await function(*args)

        return asyncio.wrap_future(self.client.blocking_portal.start_task_soon(delayed))

    async def queue(self) -> RedisTransitions:
        queue: RedisTransitions = await self.on_app_loop(resolve, self.container.queue)
        return queue

    async def enqueue(self, **body: Any) -> dict[str, Any]:
        body = {"taskName": "echo", "payload": {}, **body}
        response = await self.client.post("/api/tasks", json=body, headers=self.headers)
        assert response.status_code == 202, response.text
        task: dict[str, Any] = response.json()
        return task

    async def get(self, path: str, **params: Any) -> Any:
        return await self.client.get(path, params=params, headers=self.headers)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.client.post(path, json=body, headers=self.headers)

    async def delete(self, path: str) -> Any:
        return await self.client.delete(path, headers=self.headers)

    async def task(self, task_id: str) -> dict[str, Any]:
        response = await self.get(f"/api/tasks/{task_id}")
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        return task

    async def claim(self, queue: str = "default", limit: int = 100) -> list[Task]:
        adapter = await self.queue()
        args = (queue, "test-worker", limit, 60_000, now_ms())
        return list((await self.on_app_loop(adapter.claim, *args)).tasks)

    async def settle(self, task: Task) -> None:
        await self.on_app_loop((await self.queue()).settle, task)

    async def activate(self, task_id: str, queue: str = "default") -> Task:
        """Claim tasks of `queue` until `task_id` is active; the others go back to waiting
        only through their own test (a claimed task stays active)."""
        for task in await self.claim(queue):
            if task.id == task_id:
                return task
        raise AssertionError(f"{task_id} was not claimed")

    async def complete(self, task_id: str, result: Any = None, queue: str = "default") -> None:
        task = await self.activate(task_id, queue)
        await self.settle(task.complete(result, now_ms()))

    async def fail(self, task_id: str, message: str, queue: str = "default") -> None:
        task = await self.activate(task_id, queue)
        failure = Failure(TaskError("Boom", message), retryable=False)
        await self.settle(task.fail(failure, now_ms(), Random(0)))

    async def listing(self, **params: Any) -> dict[str, Any]:
        response = await self.get("/api/tasks", **params)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    async def ids(self, **params: Any) -> list[str]:
        return [task["id"] for task in (await self.listing(**params))["items"]]


Factory = Callable[..., AbstractAsyncContextManager[Api]]


CONFIGURED_QUEUES = "default,slow,later,batch,elsewhere,other,reports"


@pytest.fixture
def make_api(redis: Redis, redis_url: str, tmp_path: Path) -> Factory:
    @asynccontextmanager
    async def make(headers: dict[str, str] | None = None, **overrides: Any) -> AsyncIterator[Api]:
        overrides.setdefault("queues", CONFIGURED_QUEUES)
        settings = Settings(redis_url=redis_url, files_base_dir=tmp_path / "files", **overrides)
        container = Container()
        container.settings.override(providers.Object(settings))
        async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as client:
            yield Api(client, container, dict(headers or {}))

    return make


@pytest.fixture
async def api(make_api: Factory) -> AsyncIterator[Api]:
    async with make_api() as made:
        yield made


@pytest.fixture
async def secured(make_api: Factory) -> AsyncIterator[Api]:
    """The API with keys: `secured.headers` are the admin's."""
    async with make_api(headers=ADMIN, api_keys=API_KEYS) as made:
        yield made


async def one_of_each(api: Api) -> dict[str, str]:
    """A task in every status but active: {status: id}."""
    waiting = (await api.enqueue(payload={"k": "waiting"}))["id"]
    delayed = (await api.enqueue(payload={"k": "delayed"}, delayMs=60_000))["id"]
    cancelled = (await api.enqueue(payload={"k": "cancelled"}))["id"]
    failed = (await api.enqueue(payload={"k": "failed"}))["id"]
    assert (await api.post(f"/api/tasks/{cancelled}/cancel")).json()["status"] == "cancelled"
    assert (await api.post(f"/api/tasks/{failed}/kill")).json()["status"] == "failed"
    return {"waiting": waiting, "delayed": delayed, "cancelled": cancelled, "failed": failed}


# --- listing ----------------------------------------------------------------------------


async def test_the_listing_is_newest_first_20_by_default_with_the_total(api: Api) -> None:
    created = [(await api.enqueue(payload={"n": n}))["id"] for n in range(25)]
    page = await api.listing()
    assert page["total"] == 25
    assert len(page["items"]) == 20
    assert [task["id"] for task in page["items"]] == created[::-1][:20]
    assert page["nextCursor"] is not None
    stamps = [task["createdAt"] for task in page["items"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_limit_is_at_most_100(api: Api) -> None:
    for n in range(3):
        await api.enqueue(payload={"n": n})
    assert len((await api.listing(limit=100))["items"]) == 3
    too_many = await api.get("/api/tasks", limit=101)
    assert too_many.status_code == 422
    assert "limit" in too_many.json()["fields"]
    assert (await api.get("/api/tasks", limit=0)).status_code == 422
    assert (await api.get("/api/tasks", page=0)).status_code == 422


async def test_the_status_filter_and_no_status_for_all(api: Api) -> None:
    ids = await one_of_each(api)
    for status, task_id in ids.items():
        page = await api.listing(status=status)
        assert [task["id"] for task in page["items"]] == [task_id], status
        assert page["total"] == 1
        assert page["items"][0]["status"] == status
    assert sorted(await api.ids()) == sorted(ids.values())
    assert (await api.listing(status="completed"))["items"] == []
    assert (await api.get("/api/tasks", status="pending")).status_code == 422


async def test_task_name_and_queue_filters(api: Api) -> None:
    echo = (await api.enqueue(taskName="echo"))["id"]
    sleep = (await api.enqueue(taskName="sleep", payload={"ms": 1}))["id"]
    reports = (await api.enqueue(taskName="echo", queue="reports"))["id"]
    assert sorted(await api.ids(taskName="echo")) == sorted([echo, reports])
    assert await api.ids(taskName="sleep") == [sleep]
    assert await api.ids(taskName="nothing") == []
    assert await api.ids(queue="reports") == [reports]
    assert sorted(await api.ids(queue="default")) == sorted([echo, sleep])
    assert await api.ids(queue="reports", taskName="sleep") == []
    assert (await api.get("/api/tasks", queue="bad queue")).status_code == 422


async def test_from_and_to_bound_the_creation_time(api: Api) -> None:
    early = [(await api.enqueue(payload={"n": n}))["id"] for n in range(3)]
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.05)
    late = [(await api.enqueue(payload={"n": n}))["id"] for n in range(2)]
    stamp = middle.isoformat()
    assert sorted(await api.ids(**{"from": stamp})) == sorted(late)
    assert sorted(await api.ids(to=stamp)) == sorted(early)
    assert (await api.listing(**{"from": stamp}))["total"] == 2
    future = (middle + timedelta(hours=1)).isoformat()
    assert await api.ids(**{"from": future}) == []
    assert await api.ids(**{"from": stamp, "to": future}) == late[::-1]
    assert (await api.get("/api/tasks", **{"from": "yesterday"})).status_code == 422


async def walk_pages(api: Api, limit: int, **params: Any) -> list[str]:
    seen: list[str] = []
    for page_number in range(1, 100):
        page = await api.listing(page=page_number, limit=limit, **params)
        if not page["items"]:
            return seen
        seen += [task["id"] for task in page["items"]]
    raise AssertionError("too many pages")


async def walk_cursor(api: Api, limit: int, **params: Any) -> list[str]:
    seen: list[str] = []
    page = await api.listing(limit=limit, **params)
    seen += [task["id"] for task in page["items"]]
    while page["nextCursor"] is not None:
        page = await api.listing(limit=limit, cursor=page["nextCursor"], **params)
        seen += [task["id"] for task in page["items"]]
    return seen


async def test_pages_and_cursors_visit_every_task_once_in_the_same_order(api: Api) -> None:
    created = [(await api.enqueue(payload={"n": n}))["id"] for n in range(37)]
    created += [(await api.enqueue(payload={"n": n}, queue="other"))["id"] for n in range(8)]
    by_page = await walk_pages(api, 10)
    by_cursor = await walk_cursor(api, 10)
    assert by_page == by_cursor
    assert len(by_cursor) == len(set(by_cursor)) == 45
    assert set(by_cursor) == set(created)


async def test_a_cursor_walk_is_not_disturbed_by_new_tasks(api: Api) -> None:
    created = [(await api.enqueue(payload={"n": n}))["id"] for n in range(12)]
    first = await api.listing(limit=5)
    for n in range(3):
        await api.enqueue(payload={"late": n})
    seen = [task["id"] for task in first["items"]]
    cursor = first["nextCursor"]
    while cursor is not None:
        page = await api.listing(limit=5, cursor=cursor)
        seen += [task["id"] for task in page["items"]]
        cursor = page["nextCursor"]
    assert seen == created[::-1]


async def test_a_cursor_walk_within_a_filter(api: Api) -> None:
    waiting = [(await api.enqueue(payload={"n": n}))["id"] for n in range(7)]
    for _ in range(4):
        cancelled = (await api.enqueue())["id"]
        await api.post(f"/api/tasks/{cancelled}/cancel")
    assert await walk_cursor(api, 3, status="waiting") == waiting[::-1]
    assert await walk_pages(api, 3, status="waiting") == waiting[::-1]


async def test_page_and_cursor_together_or_a_forged_cursor_are_422(api: Api) -> None:
    for n in range(3):
        await api.enqueue(payload={"n": n})
    cursor = (await api.listing(limit=1))["nextCursor"]
    both = await api.get("/api/tasks", limit=1, page=2, cursor=cursor)
    assert both.status_code == 422
    forged = await api.get("/api/tasks", cursor="not-a-cursor")
    assert forged.status_code == 422
    assert forged.json()["error"] == "invalid_request"


async def test_search_by_id_prefix(api: Api) -> None:
    for n in range(3):
        await api.enqueue(customJobId=f"invoice-2024-{n}", payload={"n": n})
    await api.enqueue(customJobId="invoice-2025-0", payload={"n": 9})
    await api.enqueue(payload={"note": "invoice-2024 is mentioned here"})
    found = await api.ids(search="invoice-2024")
    assert found == ["invoice-2024-2", "invoice-2024-1", "invoice-2024-0"]
    assert await api.ids(search="invoice-2025-0") == ["invoice-2025-0"]


async def test_search_by_a_word_of_the_name_or_of_a_payload_string(api: Api) -> None:
    welcome = await api.enqueue(taskName="sendEmail", payload={"userId": 1, "template": "welcome"})
    await api.enqueue(taskName="sendEmail", payload={"userId": 2, "template": "goodbye"})
    nested = await api.enqueue(payload={"deep": {"list": ["a Welcome party"]}})
    assert await api.ids(search="welcome") == [nested["id"], welcome["id"]]
    assert await api.ids(search="WELCOME") == [nested["id"], welcome["id"]]
    assert sorted(await api.ids(search="sendemail")) == sorted(
        [welcome["id"], (await api.listing(search="goodbye"))["items"][0]["id"]]
    )
    assert await api.ids(search="welcome party") == [nested["id"]]
    assert await api.ids(search="nowhere") == []


async def test_search_by_a_substring(api: Api) -> None:
    hit = await api.enqueue(payload={"customer": "Rosalind Franklin"})
    await api.enqueue(payload={"customer": "Ada Lovelace"})
    assert await api.ids(search="salind fra") == [hit["id"]]
    assert await api.ids(search="ranklin") == [hit["id"]]


async def test_search_combines_with_the_other_filters(api: Api) -> None:
    waiting = await api.enqueue(payload={"topic": "quarterly report"})
    cancelled = await api.enqueue(payload={"topic": "quarterly report"})
    await api.post(f"/api/tasks/{cancelled['id']}/cancel")
    await api.enqueue(payload={"topic": "quarterly report"}, queue="elsewhere")
    assert await api.ids(search="quarterly", status="cancelled") == [cancelled["id"]]
    assert await api.ids(search="quarterly", status="waiting", queue="default") == [waiting["id"]]
    assert await api.ids(search="uarterl", status="waiting", queue="default") == [waiting["id"]]


async def test_a_search_walk_by_cursor_has_no_duplicates_or_gaps(api: Api) -> None:
    hits = [(await api.enqueue(payload={"t": f"needle {n}"}))["id"] for n in range(13)]
    for n in range(5):
        await api.enqueue(payload={"t": f"hay {n}"})
    assert await walk_cursor(api, 4, search="needle") == hits[::-1]
    assert await walk_cursor(api, 4, search="eedl") == hits[::-1]


@pytest.mark.parametrize("search", ["job-", "needle", "eedl"], ids=["id", "word", "substring"])
async def test_search_pages_follow_one_another(api: Api, search: str) -> None:
    created = [
        (await api.enqueue(customJobId=f"job-{n:02d}", payload={"t": f"needle {n}"}))["id"]
        for n in range(25)
    ]
    for n in range(3):
        await api.enqueue(payload={"t": f"hay {n}"})
    assert await walk_pages(api, 10, search=search) == created[::-1]


async def test_an_id_prefix_search_beyond_one_page_can_be_walked(api: Api) -> None:
    created = [(await api.enqueue(customJobId=f"job-{n:02d}"))["id"] for n in range(25)]
    first = await api.listing(search="job-", limit=10)
    assert first["total"] == 25
    assert await walk_cursor(api, 10, search="job-") == created[::-1]


# --- export -----------------------------------------------------------------------------


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_export_is_csv_of_the_same_filter(api: Api) -> None:
    ids = await one_of_each(api)
    response = await api.get("/api/tasks/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    header = response.text.splitlines()[0].split(",")
    assert header[:4] == ["id", "taskName", "queue", "status"]
    rows = parse_csv(response.text)
    assert sorted(row["id"] for row in rows) == sorted(ids.values())
    failed = parse_csv((await api.get("/api/tasks/export", status="failed")).text)
    assert [(row["id"], row["status"]) for row in failed] == [(ids["failed"], "failed")]
    assert failed[0]["error"] == "killed by an operator"
    assert failed[0]["payload"] == '{"k":"failed"}'
    assert (
        parse_csv((await api.get("/api/tasks/export", search="delayed")).text)[0]["id"]
        == (ids["delayed"])
    )


async def test_export_walks_past_one_listing_page(api: Api) -> None:
    body = {"tasks": [{"taskName": "echo", "payload": {"n": n}} for n in range(620)]}
    assert (await api.post("/api/tasks/bulk", body)).status_code == 202
    rows = parse_csv((await api.get("/api/tasks/export")).text)
    assert len(rows) == len({row["id"] for row in rows}) == 620


async def test_export_defuses_spreadsheet_formulas(api: Api) -> None:
    await api.enqueue(customJobId="-2-3", payload={"cell": "=1+2", "x": "@SUM(A1)"})
    plus = await api.enqueue(payload={"formula": "+cmd|' /C calc'!A0"})
    await api.fail(plus["id"], '=HYPERLINK("http://evil.example","click")')
    text = (await api.get("/api/tasks/export")).text
    rows = parse_csv(text)
    by_id = {row["id"].lstrip("'"): row for row in rows}
    assert by_id["-2-3"]["id"] == "'-2-3"
    assert by_id[plus["id"]]["error"] == '\'=HYPERLINK("http://evil.example","click")'
    # A payload cell is a JSON object: the dangerous strings sit inside it, never first.
    assert by_id["-2-3"]["payload"] == '{"cell":"=1+2","x":"@SUM(A1)"}'
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(FORMULA_START), (column, cell)


async def test_export_with_a_bad_filter_is_422(api: Api) -> None:
    response = await api.get("/api/tasks/export", status="nope")
    assert response.status_code == 422
    assert response.json()["fields"]


# --- bulk enqueue and batches -----------------------------------------------------------


async def test_bulk_enqueue_is_202_with_a_batch_and_each_task(api: Api) -> None:
    body = {
        "tasks": [
            {"taskName": "echo", "payload": {"n": 1}},
            {"taskName": "sleep", "payload": {"ms": 10}, "queue": "slow"},
            {"taskName": "echo", "payload": {"n": 3}, "delayMs": 60_000},
        ]
    }
    response = await api.post("/api/tasks/bulk", body)
    assert response.status_code == 202
    out = response.json()
    assert set(out) == {"batchId", "tasks"}
    assert [item["status"] for item in out["tasks"]] == ["waiting", "waiting", "delayed"]
    assert [item["task"]["taskName"] for item in out["tasks"]] == ["echo", "sleep", "echo"]
    assert out["tasks"][1]["task"]["queue"] == "slow"
    for item in out["tasks"]:
        assert item["id"] == item["task"]["id"]
        assert (await api.task(item["id"]))["status"] == item["status"]


async def test_a_batch_gathers_its_tasks_until_all_are_finished(api: Api) -> None:
    body = {"tasks": [{"taskName": "echo", "payload": {"n": n}} for n in range(3)]}
    out = (await api.post("/api/tasks/bulk", body)).json()
    ids = [item["id"] for item in out["tasks"]]
    batch = (await api.get(f"/api/batches/{out['batchId']}")).json()
    assert batch["batchId"] == out["batchId"]
    assert batch["total"] == 3
    assert batch["finished"] is False
    assert batch["counts"]["waiting"] == 3
    assert [task["id"] for task in batch["tasks"]] == ids

    await api.complete(ids[0], {"sum": 42})
    await api.post(f"/api/tasks/{ids[1]}/kill")
    half = (await api.get(f"/api/batches/{out['batchId']}")).json()
    assert half["finished"] is False
    # The third task was claimed along with the first: it is active.
    assert half["counts"] == {
        "waiting": 0, "delayed": 0, "active": 1, "completed": 1, "failed": 1, "cancelled": 0,
    }  # fmt: skip
    assert half["tasks"][0]["result"] == {"sum": 42}

    await api.post(f"/api/tasks/{ids[2]}/kill")
    done = (await api.get(f"/api/batches/{out['batchId']}")).json()
    assert done["finished"] is True
    assert done["counts"]["completed"] == 1
    assert done["counts"]["failed"] == 2


async def test_bulk_enqueue_reports_existing_and_conflicting_ids(api: Api) -> None:
    await api.enqueue(customJobId="known", payload={"n": 1})
    body = {
        "tasks": [
            {"taskName": "echo", "payload": {"n": 1}, "customJobId": "known"},
            {"taskName": "echo", "payload": {"n": 2}, "customJobId": "known"},
            {"taskName": "echo", "payload": {"n": 3}, "customJobId": "fresh"},
        ]
    }
    response = await api.post("/api/tasks/bulk", body)
    assert response.status_code == 202
    items = response.json()["tasks"]
    assert [(item["id"], item["status"]) for item in items] == [
        ("known", "waiting"), ("known", "conflict"), ("fresh", "waiting"),
    ]  # fmt: skip
    assert items[1]["task"] is None
    assert (await api.task("known"))["payload"] == {"n": 1}


async def test_bulk_enqueue_is_all_or_nothing_on_invalid_input(api: Api) -> None:
    body = {"tasks": [{"taskName": "echo"}, {"taskName": "sleep", "payload": {"ms": "x"}}]}
    response = await api.post("/api/tasks/bulk", body)
    assert response.status_code == 422
    assert (await api.listing())["total"] == 0
    assert (await api.post("/api/tasks/bulk", {"tasks": []})).status_code == 422


async def test_an_unknown_batch_is_404(api: Api) -> None:
    response = await api.get("/api/batches/no-such-batch")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- actions ----------------------------------------------------------------------------


async def test_cancel_then_retry_then_kill_then_retry(api: Api) -> None:
    task_id = (await api.enqueue(payload={"n": 1}))["id"]
    cancelled = await api.post(f"/api/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finishedAt"] is not None

    retried = await api.post(f"/api/tasks/{task_id}/retry")
    assert retried.status_code == 200
    assert retried.json()["status"] == "waiting"
    assert retried.json()["finishedAt"] is None

    killed = await api.post(f"/api/tasks/{task_id}/kill")
    assert killed.status_code == 200
    assert killed.json()["status"] == "failed"
    assert killed.json()["error"]["type"] == "Killed"

    again = (await api.post(f"/api/tasks/{task_id}/retry")).json()
    assert again["status"] == "waiting"
    assert again["error"] is None
    assert again["attempts"] == 0
    assert (await api.task(task_id))["status"] == "waiting"
    assert len(await api.claim()) == 1  # back in the queue for a worker


async def test_a_delayed_task_is_cancelled_and_retried_now(api: Api) -> None:
    task_id = (await api.enqueue(delayMs=3_600_000))["id"]
    assert (await api.post(f"/api/tasks/{task_id}/cancel")).json()["status"] == "cancelled"
    retried = (await api.post(f"/api/tasks/{task_id}/retry")).json()
    assert retried["status"] == "waiting"
    assert [task.id for task in await api.claim()] == [task_id]


async def test_a_task_failed_by_its_handler_is_retried_with_fresh_attempts(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    await api.fail(task_id, "disk full")
    failed = await api.task(task_id)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    retried = (await api.post(f"/api/tasks/{task_id}/retry")).json()
    assert (retried["status"], retried["attempts"], retried["error"]) == ("waiting", 0, None)


async def test_cancel_of_an_active_task_asks_its_worker_and_answers_the_task_active(
    api: Api,
) -> None:
    task_id = (await api.enqueue())["id"]
    await api.activate(task_id)
    response = await api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "active"  # the worker records the cancellation
    assert (await api.task(task_id))["status"] == "active"


async def test_kill_of_an_active_task_fails_it_at_once(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    await api.activate(task_id)
    killed = (await api.post(f"/api/tasks/{task_id}/kill")).json()
    assert killed["status"] == "failed"
    assert killed["error"] == {
        "type": "Killed",
        "message": "killed by an operator",
        "traceback": "",
    }
    assert killed["history"][-1]["outcome"] == "killed"


async def test_delete_removes_a_task_that_is_not_active(api: Api) -> None:
    ids = await one_of_each(api)
    for task_id in ids.values():
        assert (await api.delete(f"/api/tasks/{task_id}")).status_code == 204
        assert (await api.get(f"/api/tasks/{task_id}")).status_code == 404
    assert (await api.listing())["total"] == 0
    assert (await api.delete(f"/api/tasks/{ids['waiting']}")).status_code == 404


async def test_delete_of_an_active_task_is_409(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    await api.activate(task_id)
    response = await api.delete(f"/api/tasks/{task_id}")
    assert response.status_code == 409
    assert response.json()["error"] == "task_active"
    assert (await api.task(task_id))["status"] == "active"


async def test_a_completed_task_can_be_deleted(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    await api.complete(task_id, "ok")
    assert (await api.delete(f"/api/tasks/{task_id}")).status_code == 204


async def test_duplicate_enqueues_a_copy_under_a_new_id(api: Api) -> None:
    original = await api.enqueue(payload={"to": "x"}, priority=3, attempts=7)
    await api.post(f"/api/tasks/{original['id']}/kill")
    response = await api.post(f"/api/tasks/{original['id']}/duplicate")
    assert response.status_code == 202
    copy = response.json()
    assert copy["id"] != original["id"]
    assert copy["status"] == "waiting"
    assert (copy["payload"], copy["priority"], copy["maxAttempts"]) == ({"to": "x"}, 3, 7)
    assert (await api.task(original["id"]))["status"] == "failed"


async def test_duplicate_with_a_future_run_at_is_delayed(api: Api) -> None:
    original = (await api.enqueue())["id"]
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    copy = (await api.post(f"/api/tasks/{original}/duplicate", {"runAt": run_at})).json()
    assert copy["status"] == "delayed"
    due = datetime.fromisoformat(copy["runAt"].replace("Z", "+00:00"))
    assert abs(due - datetime.fromisoformat(run_at)) < timedelta(seconds=1)


@pytest.mark.parametrize("action", ["retry", "cancel", "kill", "duplicate"])
async def test_actions_on_an_unknown_task_are_404(api: Api, action: str) -> None:
    response = await api.post(f"/api/tasks/no-such-task/{action}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("waiting", "retry"),
        ("delayed", "retry"),
        ("completed", "retry"),
        ("cancelled", "cancel"),
        ("failed", "cancel"),
        ("completed", "cancel"),
        ("failed", "kill"),
        ("completed", "kill"),
    ],
)
async def test_an_action_the_status_does_not_allow_is_409(
    api: Api, status: str, action: str
) -> None:
    ids = await one_of_each(api)
    if status == "completed":
        ids["completed"] = (await api.enqueue(payload={"k": "completed"}))["id"]
        await api.complete(ids["completed"], None)
    response = await api.post(f"/api/tasks/{ids[status]}/{action}")
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "conflict"
    assert (await api.task(ids[status]))["status"] == status


# --- bulk actions -----------------------------------------------------------------------


async def test_bulk_cancel_answers_an_outcome_per_id(api: Api) -> None:
    ids = await one_of_each(api)
    active = (await api.enqueue(payload={"k": "active"}))["id"]
    for task in await api.claim():
        assert task.id in (ids["waiting"], active)
    fresh = (await api.enqueue(payload={"k": "fresh"}))["id"]
    body = {"ids": [fresh, ids["delayed"], ids["failed"], "no-such-task", 12345, fresh]}
    response = await api.post("/api/tasks/bulk/cancel", body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["id"], r["outcome"], r["status"]) for r in results] == [
        (fresh, "ok", "cancelled"),
        (ids["delayed"], "ok", "cancelled"),
        (ids["failed"], "conflict", None),
        ("no-such-task", "not_found", None),
        ("12345", "not_found", None),
    ]
    assert "failed" in results[2]["detail"]
    assert (await api.task(fresh))["status"] == "cancelled"
    # An active task in a bulk cancel: its worker is asked, it stays active meanwhile.
    asked = (await api.post("/api/tasks/bulk/cancel", {"ids": [active]})).json()["results"]
    assert asked == [{"id": active, "outcome": "ok", "status": "active", "detail": None}]


async def test_bulk_retry_answers_an_outcome_per_id(api: Api) -> None:
    ids = await one_of_each(api)
    body = {"ids": [ids["failed"], ids["cancelled"], ids["waiting"], 7, "ghost"]}
    response = await api.post("/api/tasks/bulk/retry", body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["id"], r["outcome"], r["status"]) for r in results] == [
        (ids["failed"], "ok", "waiting"),
        (ids["cancelled"], "ok", "waiting"),
        (ids["waiting"], "conflict", None),
        ("7", "not_found", None),
        ("ghost", "not_found", None),
    ]
    assert (await api.listing(status="waiting"))["total"] == 3


@pytest.mark.parametrize(
    "body", [{}, {"ids": []}, {"ids": "abc"}, {"ids": [None]}, {"ids": ["a"], "extra": 1}]
)
async def test_a_bad_bulk_body_is_4xx(api: Api, body: Any) -> None:
    for action in ("cancel", "retry"):
        response = await api.post(f"/api/tasks/bulk/{action}", body)
        assert response.status_code in (400, 422), response.text
        assert set(response.json()) <= {"error", "detail", "fields"}


async def test_booleans_are_not_task_ids(api: Api) -> None:
    await api.enqueue(customJobId="1")
    response = await api.post("/api/tasks/bulk/cancel", {"ids": [True]})
    assert response.status_code == 422, response.text
    assert (await api.task("1"))["status"] == "waiting"


# --- pause and resume -------------------------------------------------------------------


async def test_a_paused_queue_hands_out_nothing_until_resumed(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    paused = await api.post("/api/queues/default/pause")
    assert paused.status_code == 200
    assert paused.json() == {"queue": "default", "paused": True}
    assert await api.claim() == []
    assert (await api.task(task_id))["status"] == "waiting"
    stats = (await api.get("/api/stats")).json()
    assert stats["queues"]["default"]["paused"] is True
    assert stats["queues"]["default"]["waiting"] == 1

    other = (await api.enqueue(queue="other"))["id"]  # other queues are not paused
    assert [task.id for task in await api.claim("other")] == [other]

    resumed = await api.post("/api/queues/default/resume")
    assert resumed.json() == {"queue": "default", "paused": False}
    assert [task.id for task in await api.claim()] == [task_id]
    assert (await api.get("/api/stats")).json()["queues"]["default"]["paused"] is False


async def test_a_queue_can_be_paused_before_it_has_tasks(api: Api) -> None:
    assert (await api.post("/api/queues/later/pause")).status_code == 200
    task_id = (await api.enqueue(queue="later"))["id"]
    assert await api.claim("later") == []
    await api.post("/api/queues/later/resume")
    assert [task.id for task in await api.claim("later")] == [task_id]


async def test_pausing_a_badly_named_queue_is_422(api: Api) -> None:
    response = await api.post("/api/queues/bad%20name/pause")
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_queues_are_configured_not_created_by_requests(api: Api, redis: Redis) -> None:
    """Any queue QUEUES does not list is a 422 naming `queue`, and leaves no trace."""
    attempts = [
        await api.client.post(
            "/api/tasks", json={"taskName": "echo", "queue": "made-up"}, headers=api.headers
        ),
        await api.client.post(
            "/api/tasks/bulk",
            json={"tasks": [{"taskName": "echo"}, {"taskName": "echo", "queue": "made-up"}]},
            headers=api.headers,
        ),
        await api.post("/api/queues/made-up/pause"),
        await api.get("/api/tasks", queue="made-up"),
    ]
    for response in attempts:
        assert response.status_code == 422, response.text
        assert "queue" in response.json()["fields"]
    assert "made-up" not in (await api.get("/api/stats")).json()["queues"]
    assert await redis.keys("*made-up*") == []
    assert await api.ids() == []  # the bulk stored nothing, not even its valid task


# --- stats ------------------------------------------------------------------------------


async def test_stats_count_every_status_queue_and_type(api: Api) -> None:
    ids = await one_of_each(api)  # echo: waiting, delayed, cancelled, failed (killed)
    done = (await api.enqueue(taskName="sleep", payload={"ms": 1}))["id"]
    running = (await api.enqueue(taskName="sleep", payload={"ms": 2}))["id"]
    await api.enqueue(taskName="sleep", payload={"ms": 3}, queue="batch")
    claimed = await api.claim()
    assert {task.id for task in claimed} == {ids["waiting"], done, running}
    await api.settle(next(t for t in claimed if t.id == done).complete(1, now_ms()))
    await api.post(f"/api/tasks/{ids['waiting']}/kill")  # active -> failed

    response = await api.get("/api/stats")
    assert response.status_code == 200
    stats = response.json()
    assert set(stats) == {
        "waiting", "active", "completed", "failed", "delayed", "cancelled",
        "queues", "taskTypes", "throughput",
    }  # fmt: skip
    totals = {key: stats[key] for key in ("waiting", "active", "completed", "failed")}
    assert totals == {"waiting": 1, "active": 1, "completed": 1, "failed": 2}
    assert (stats["delayed"], stats["cancelled"]) == (1, 1)
    assert stats["queues"]["default"] == {
        "waiting": 0, "active": 1, "completed": 1, "failed": 2, "delayed": 1, "cancelled": 1,
        "paused": False,
    }  # fmt: skip
    assert stats["queues"]["batch"]["waiting"] == 1
    echo = stats["taskTypes"]["echo"]
    assert echo["counts"] == {
        "waiting": 0, "delayed": 1, "active": 0, "completed": 0, "failed": 2, "cancelled": 1,
    }  # fmt: skip
    sleep = stats["taskTypes"]["sleep"]
    assert sleep["counts"]["completed"] == 1
    assert sleep["counts"]["active"] == 1
    assert sleep["counts"]["waiting"] == 1
    assert isinstance(sleep["durationMs"]["p50"], int)
    assert isinstance(sleep["durationMs"]["p95"], int)
    assert echo["durationMs"] == {"p50": None, "p95": None}  # durations of completed tasks
    assert stats["throughput"]["lastMinute"] >= 2  # completed and failed just now
    assert stats["throughput"]["lastHour"] >= stats["throughput"]["lastMinute"]


async def test_stats_of_an_empty_system(api: Api) -> None:
    stats = (await api.get("/api/stats")).json()
    assert stats["waiting"] == stats["active"] == stats["completed"] == 0
    statuses = ("waiting", "active", "completed", "failed", "delayed", "cancelled")
    empty = dict.fromkeys(statuses, 0) | {"paused": False}
    assert stats["queues"] == dict.fromkeys(CONFIGURED_QUEUES.split(","), empty)
    assert stats["taskTypes"] == {}
    throughput = stats["throughput"]
    assert (throughput["lastMinute"], throughput["lastHour"]) == (0, 0)
    assert [(m["finished"], m["failed"]) for m in throughput["perMinute"]] == [(0, 0)] * 61


# --- waitMs -----------------------------------------------------------------------------


async def test_wait_ms_returns_as_soon_as_the_task_settles(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    task = await api.activate(task_id)
    settled = api.later(0.2, (await api.queue()).settle, task.complete({"answer": 42}, now_ms()))
    started = time.monotonic()
    response = await api.get(f"/api/tasks/{task_id}", waitMs=10_000)
    took = time.monotonic() - started
    await settled
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert response.json()["result"] == {"answer": 42}
    assert 0.15 <= took < 1.5, took


@pytest.mark.parametrize(("action", "status"), [("kill", "failed"), ("cancel", "cancelled")])
async def test_wait_ms_wakes_on_an_operator_s_action(api: Api, action: str, status: str) -> None:
    task_id = (await api.enqueue())["id"]
    change = await api.on_app_loop(resolve, api.container.change_task)
    acted = api.later(0.2, change.execute, Action(action), task_id)
    started = time.monotonic()
    response = await api.get(f"/api/tasks/{task_id}", waitMs=10_000)
    took = time.monotonic() - started
    await acted
    assert response.json()["status"] == status
    assert 0.15 <= took < 1.5, took


async def test_wait_ms_returns_the_unfinished_task_when_the_wait_is_over(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    started = time.monotonic()
    response = await api.get(f"/api/tasks/{task_id}", waitMs=400)
    took = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["status"] == "waiting"
    assert 0.35 <= took < 2.0, took


async def test_wait_ms_on_a_finished_task_answers_at_once(api: Api) -> None:
    task_id = (await api.enqueue())["id"]
    await api.post(f"/api/tasks/{task_id}/cancel")
    started = time.monotonic()
    response = await api.get(f"/api/tasks/{task_id}", waitMs=10_000)
    assert response.json()["status"] == "cancelled"
    assert time.monotonic() - started < 0.5


async def test_wait_ms_does_not_poll_redis(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    task_id = (await api.enqueue())["id"]
    queue = await api.queue()
    reads = 0
    read = queue._reader.get

    async def counted(*args: Any, **kwargs: Any) -> Task:
        nonlocal reads
        reads += 1
        return await read(*args, **kwargs)

    monkeypatch.setattr(queue._reader, "get", counted)
    response = await api.get(f"/api/tasks/{task_id}", waitMs=1_000)
    assert response.json()["status"] == "waiting"
    assert reads <= 3, f"{reads} reads of the task during a one-second wait"


@pytest.mark.parametrize("wait", ["-1", "60001", "soon"])
async def test_a_bad_wait_ms_is_422(api: Api, wait: str) -> None:
    task_id = (await api.enqueue())["id"]
    response = await api.get(f"/api/tasks/{task_id}", waitMs=wait)
    assert response.status_code in (400, 422)


async def test_wait_ms_on_an_unknown_task_is_404_at_once(api: Api) -> None:
    started = time.monotonic()
    response = await api.get("/api/tasks/ghost", waitMs=5_000)
    assert response.status_code == 404
    assert time.monotonic() - started < 0.5


# --- audit and auth ---------------------------------------------------------------------


async def audit(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/audit", **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_audit_records_delete_pause_resume_and_bulk_actions_by_key(secured: Api) -> None:
    gone = (await secured.enqueue())["id"]
    bulk = (await secured.enqueue(payload={"n": 2}))["id"]
    assert (await secured.delete(f"/api/tasks/{gone}")).status_code == 204
    await secured.post("/api/queues/default/pause")
    await secured.post("/api/queues/default/resume")
    await secured.post("/api/tasks/bulk/cancel", {"ids": [bulk, "ghost"]})
    await secured.post("/api/tasks/bulk/retry", {"ids": [bulk]})
    entries = await audit(secured)
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("ops", "retry", bulk),
        ("ops", "cancel", bulk),
        ("ops", "resume", "default"),
        ("ops", "pause", "default"),
        ("ops", "delete", gone),
    ]  # newest first; nothing for the id that was not found
    assert entries[-1]["detail"] == {"queue": "default", "status": "waiting"}
    assert entries[1]["detail"] == {"queue": "default", "from": "waiting"}
    stamps = [entry["at"] for entry in entries]
    assert stamps == sorted(stamps, reverse=True)


async def test_audit_records_who_retried_cancelled_and_killed(secured: Api) -> None:
    task_id = (await secured.enqueue())["id"]
    await secured.post(f"/api/tasks/{task_id}/cancel")
    await secured.post(f"/api/tasks/{task_id}/retry")
    await secured.post(f"/api/tasks/{task_id}/kill")
    entries = await audit(secured)
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("ops", "kill", task_id),
        ("ops", "retry", task_id),
        ("ops", "cancel", task_id),
    ]


async def test_audit_is_paged_by_its_cursor(secured: Api) -> None:
    for queue in ("other", "batch", "slow"):
        await secured.post(f"/api/queues/{queue}/pause")
    first = (await secured.get("/api/audit", limit=2)).json()
    assert [e["target"] for e in first["items"]] == ["slow", "batch"]
    rest = (await secured.get("/api/audit", limit=2, before=first["nextCursor"])).json()
    assert [e["target"] for e in rest["items"]] == ["other"]
    assert rest["nextCursor"] is None


async def test_the_oldest_possible_audit_cursor_is_an_empty_page(secured: Api) -> None:
    await secured.post("/api/queues/other/pause")
    response = await secured.get("/api/audit", before="0-0")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "nextCursor": None}


async def test_a_failed_action_is_not_audited(secured: Api) -> None:
    task_id = (await secured.enqueue())["id"]
    await secured.activate(task_id)
    assert (await secured.delete(f"/api/tasks/{task_id}")).status_code == 409
    assert (await secured.post("/api/tasks/ghost/kill")).status_code == 404
    assert await audit(secured) == []


async def test_created_by_is_the_key_s_name(secured: Api) -> None:
    mine = await secured.enqueue()
    assert mine["createdBy"] == "ops"
    response = await secured.client.post(
        "/api/tasks", json={"taskName": "echo", "payload": {}}, headers=PRODUCER
    )
    assert response.json()["createdBy"] == "ci"
    body = {"tasks": [{"taskName": "echo", "payload": {"n": n}} for n in range(2)]}
    bulk = await secured.client.post("/api/tasks/bulk", json=body, headers=OTHER_PRODUCER)
    assert [item["task"]["createdBy"] for item in bulk.json()["tasks"]] == ["cron", "cron"]
    rows = parse_csv((await secured.get("/api/tasks/export")).text)
    assert sorted(row["createdBy"] for row in rows) == ["ci", "cron", "cron", "ops"]


async def test_a_duplicate_is_created_by_the_admin_who_asked_for_it(secured: Api) -> None:
    response = await secured.client.post(
        "/api/tasks", json={"taskName": "echo", "payload": {}}, headers=PRODUCER
    )
    original = response.json()
    copy = (await secured.post(f"/api/tasks/{original['id']}/duplicate")).json()
    assert (original["createdBy"], copy["createdBy"]) == ("ci", "ops")


async def test_without_keys_created_by_is_anonymous(api: Api) -> None:
    assert (await api.enqueue())["createdBy"] == "anonymous"


async def test_a_producer_reads_only_its_own_tasks_and_batches(secured: Api) -> None:
    client = secured.client
    mine = (await client.post("/api/tasks", json={"taskName": "echo"}, headers=PRODUCER)).json()
    theirs = (
        await client.post("/api/tasks", json={"taskName": "echo"}, headers=OTHER_PRODUCER)
    ).json()
    admins = await secured.enqueue()
    assert (await client.get(f"/api/tasks/{mine['id']}", headers=PRODUCER)).status_code == 200
    for task in (theirs, admins):
        response = await client.get(f"/api/tasks/{task['id']}", headers=PRODUCER)
        assert response.status_code == 404  # the same answer as for an id that does not exist
        assert response.json() == {"error": "not_found", "detail": f"task {task['id']!r} not found"}
    assert (await client.get(f"/api/tasks/{mine['id']}", headers=ADMIN)).status_code == 200

    body = {"tasks": [{"taskName": "echo", "payload": {"n": 1}}]}
    batch = (await client.post("/api/tasks/bulk", json=body, headers=PRODUCER)).json()
    path = f"/api/batches/{batch['batchId']}"
    assert (await client.get(path, headers=PRODUCER)).status_code == 200
    assert (await client.get(path, headers=OTHER_PRODUCER)).status_code == 404
    assert (await client.get(path, headers=ADMIN)).status_code == 200


async def test_a_producer_lists_only_its_own_tasks(secured: Api) -> None:
    client = secured.client
    mine = []
    for n in range(7):
        for headers in (PRODUCER, OTHER_PRODUCER, ADMIN):
            body = {"taskName": "echo", "payload": {"n": n}}
            task = (await client.post("/api/tasks", json=body, headers=headers)).json()
            if headers is PRODUCER:
                mine.append(task["id"])

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/tasks", params=params, headers=PRODUCER)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] is None  # found by a scan: no index by creator
        seen += [task["id"] for task in page["items"]]
        if (cursor := page["nextCursor"]) is None:
            break
    assert seen == mine[::-1]  # newest first, every one, no one else's
    filtered = await client.get("/api/tasks", params={"search": "echo"}, headers=PRODUCER)
    assert {task["createdBy"] for task in filtered.json()["items"]} == {"ci"}
    everyone = (await client.get("/api/tasks", params={"limit": 100}, headers=ADMIN)).json()
    assert everyone["total"] == 21


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tasks/export"),
        ("GET", "/api/stats"),
        ("GET", "/api/audit"),
        ("POST", "/api/tasks/{id}/retry"),
        ("POST", "/api/tasks/{id}/cancel"),
        ("POST", "/api/tasks/{id}/kill"),
        ("POST", "/api/tasks/{id}/duplicate"),
        ("DELETE", "/api/tasks/{id}"),
        ("POST", "/api/tasks/bulk/cancel"),
        ("POST", "/api/tasks/bulk/retry"),
        ("POST", "/api/queues/default/pause"),
        ("POST", "/api/queues/default/resume"),
    ],
)
async def test_operator_routes_are_for_admins(secured: Api, method: str, path: str) -> None:
    client = secured.client
    mine = (await client.post("/api/tasks", json={"taskName": "echo"}, headers=PRODUCER)).json()
    url = path.replace("{id}", mine["id"])
    body = {"ids": [mine["id"]]} if "bulk" in path else None
    assert (await client.request(method, url, json=body)).status_code == 401
    response = await client.request(method, url, json=body, headers=PRODUCER)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert (await client.get(f"/api/tasks/{mine['id']}", headers=PRODUCER)).json()["status"] == (
        "waiting"
    )
    assert await audit(secured) == []


async def test_a_producer_s_wait_on_another_key_s_task_is_404_at_once(secured: Api) -> None:
    theirs = (
        await secured.client.post("/api/tasks", json={"taskName": "echo"}, headers=OTHER_PRODUCER)
    ).json()
    started = time.monotonic()
    response = await secured.client.get(
        f"/api/tasks/{theirs['id']}", params={"waitMs": 1_500}, headers=PRODUCER
    )
    assert response.status_code == 404
    assert time.monotonic() - started < 0.5


async def test_a_producer_s_batch_stays_readable_when_one_id_conflicts(secured: Api) -> None:
    client = secured.client
    body = {"taskName": "echo", "payload": {"owner": "cron"}, "customJobId": "shared"}
    await client.post("/api/tasks", json=body, headers=OTHER_PRODUCER)
    tasks = [{**body, "payload": {"owner": "ci"}}, {"taskName": "echo", "payload": {}}]
    out = (await client.post("/api/tasks/bulk", json={"tasks": tasks}, headers=PRODUCER)).json()
    assert [item["status"] for item in out["tasks"]] == ["conflict", "waiting"]
    response = await client.get(f"/api/batches/{out['batchId']}", headers=PRODUCER)
    assert response.status_code == 200
    assert [task["createdBy"] for task in response.json()["tasks"]] == ["ci"]


async def test_re_enqueueing_another_key_s_id_does_not_reveal_its_task(secured: Api) -> None:
    client = secured.client
    body = {"taskName": "echo", "payload": {"n": 1}, "customJobId": "guessable-1"}
    await client.post("/api/tasks", json=body, headers=OTHER_PRODUCER)
    await secured.complete("guessable-1", {"secret": "s3cr3t"})
    assert (await client.get("/api/tasks/guessable-1", headers=PRODUCER)).status_code == 404
    again = await client.post("/api/tasks", json=body, headers=PRODUCER)
    assert "s3cr3t" not in again.text
    bulk = await client.post("/api/tasks/bulk", json={"tasks": [body]}, headers=PRODUCER)
    assert "s3cr3t" not in bulk.text


async def test_a_guessed_payload_reads_the_same_right_or_wrong(secured: Api) -> None:
    """Seed 000's answer and a bulk item are the same 409/conflict whether another key's
    task payload was guessed right or not, and stay so after the task is removed."""
    client = secured.client
    right = {"taskName": "echo", "payload": {"n": 1}, "customJobId": "guess-me"}
    wrong = {**right, "payload": {"n": 2}}
    assert (await client.post("/api/tasks", json=right, headers=OTHER_PRODUCER)).status_code == 202

    async def answers() -> list[Any]:
        seen = []
        for body in (right, wrong):
            seed = await client.post("/tasks", json=body, headers=PRODUCER)
            bulk = await client.post("/api/tasks/bulk", json={"tasks": [body]}, headers=PRODUCER)
            seen.append((seed.status_code, seed.json(), [item for item in bulk.json()["tasks"]]))
        return seen

    before = await answers()
    assert before[0] == before[1]
    assert before[0][0] == 409
    assert before[0][2] == [{"id": "guess-me", "status": "conflict", "task": None}]
    assert (await secured.delete("/api/tasks/guess-me")).status_code == 204
    after = await answers()
    assert after[0] == after[1] == before[0]


async def test_an_id_in_another_queue_is_a_409_and_the_first_owner_keeps_it(api: Api) -> None:
    body = {"taskName": "echo", "payload": {"n": 1}, "customJobId": "one-id"}
    first = await api.enqueue(**body, queue="reports")
    elsewhere = await api.client.post("/api/tasks", json={**body, "queue": "other"})
    assert elsewhere.status_code == 409, elsewhere.text
    assert (await api.get("/api/tasks/one-id")).json()["queue"] == "reports"
    assert (await api.get("/api/tasks/one-id")).json()["id"] == first["id"]
    again = await api.client.post("/api/tasks", json={**body, "queue": "reports"})
    assert again.status_code == 200  # the identical request: the existing task
    assert [task["queue"] for task in (await api.listing())["items"]] == ["reports"]


@pytest.mark.parametrize("task_id", [".", ".."])
async def test_dot_ids_are_refused(api: Api, task_id: str) -> None:
    response = await api.client.post(
        "/api/tasks", json={"taskName": "echo", "payload": {}, "customJobId": task_id}
    )
    assert response.status_code == 422
    assert "customJobId" in response.json()["fields"]
