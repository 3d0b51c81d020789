"""What the dashboard reads beyond the task and listing routes, against a real Redis: the
fence of each history entry, the per-minute series of /api/stats, and one task's audit
entries (`GET /api/audit?target=`)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from random import Random
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from application.audit import RecordAudit
from application.clock import system_clock
from domain.task import Failure, Task, TaskError
from infrastructure.redis.audit import PER_TARGET, TARGET_TTL_MS, RedisAuditLog, target_ttl_ms
from infrastructure.redis.keys import AUDIT_LOG, audit_of, keys_of
from infrastructure.redis.queries import RedisViews
from interfaces.http.schemas import ID_PATTERN
from tests.conftest import api_client
from tests.round_trips import round_trips
from tests.stores import RedisStore

Client = AsyncTestClient[Any]

ADMIN_KEY = "dashboard-admin-key-0123456789"
PRODUCER_KEY = "dashboard-producer-key-0123456789"
ADMIN = {"X-API-Key": ADMIN_KEY}
PRODUCER = {"X-API-Key": PRODUCER_KEY}
QUEUES = ("default", "reports")
MINUTE_MS = 60_000
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def client(redis: Redis, redis_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    keys = f"ops:{ADMIN_KEY}:admin,ci:{PRODUCER_KEY}:producer"
    async with api_client(
        redis_url, tmp_path / "files", api_keys=keys, queues=",".join(QUEUES)
    ) as made:
        yield made


@pytest.fixture
async def store(redis: Redis, blocking_redis: Redis) -> RedisStore:
    """The queue adapters on the test's own loop, to claim and settle as a worker would."""
    return RedisStore(redis, blocking_redis, 60_000, queues=QUEUES)


async def enqueue(client: Client, **body: Any) -> str:
    body = {"taskName": "echo", "payload": {}, **body}
    response = await client.post("/api/tasks", json=body, headers=ADMIN)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["id"]
    return task_id


async def claim(store: RedisStore, at: int, queue: str = "default") -> list[Task]:
    """Every task of `queue` due at `at`, claimed."""
    return list((await store.claim(queue, "dash-worker", 100, 60_000, at)).tasks)


async def run(store: RedisStore, task_id: str, at: int, queue: str = "default") -> Task:
    """The task `task_id`, claimed: it must be the only one due in `queue`."""
    (task,) = await claim(store, at, queue)
    assert task.id == task_id
    return task


def failed(task: Task, retryable: bool) -> Task:
    """The task failed by its handler now."""
    return task.fail(Failure(TaskError("Boom", "no"), retryable=retryable), now_ms(), Random(0))


# --- the fence of each history entry ------------------------------------------------------


async def test_each_history_entry_shows_the_fence_of_its_execution(
    client: Client, store: RedisStore
) -> None:
    task_id = await enqueue(client, attempts=2)
    first = await run(store, task_id, now_ms())
    await store.settle(failed(first, retryable=True))
    second = await run(store, task_id, now_ms() + 10 * MINUTE_MS)  # past its backoff
    await store.settle(second.complete("ok", now_ms()))

    task = (await client.get(f"/api/tasks/{task_id}", headers=ADMIN)).json()

    assert [(entry["outcome"], entry["fence"]) for entry in task["history"]] == [
        ("retry", first.fence),
        ("completed", second.fence),
    ]
    assert task["fence"] == second.fence > first.fence > 0
    assert set(task["history"][0]) == {"workerId", "startedAt", "finishedAt", "outcome", "fence"}


async def test_history_stored_before_fences_were_kept_reads_with_a_null_fence(
    client: Client, redis: Redis
) -> None:
    task_id = await enqueue(client)
    old = '[{"worker_id":"w-old","started_at":1700000000000,"finished_at":1700000001000,'
    old += '"outcome":"retry"}]'  # the shape every history entry had before
    await redis.hset(keys_of("default").task(task_id), "history", old)

    response = await client.get(f"/api/tasks/{task_id}", headers=ADMIN)
    listed = await client.get("/api/tasks", params={"search": task_id}, headers=ADMIN)

    assert response.status_code == 200, response.text
    assert response.json()["history"] == [
        {
            "workerId": "w-old",
            "startedAt": "2023-11-14T22:13:20.000Z",
            "finishedAt": "2023-11-14T22:13:21.000Z",
            "outcome": "retry",
            "fence": None,
        }
    ]
    assert listed.json()["items"][0]["history"][0]["fence"] is None


# --- the per-minute series of /api/stats --------------------------------------------------


async def per_minute(client: Client) -> tuple[int, list[dict[str, Any]], int]:
    """The series, with the time just before and just after it was read."""
    before = now_ms()
    response = await client.get("/api/stats", headers=ADMIN)
    after = now_ms()
    assert response.status_code == 200, response.text
    series: list[dict[str, Any]] = response.json()["throughput"]["perMinute"]
    return before, series, after


def starts(series: list[dict[str, Any]]) -> list[int]:
    return [int(datetime.fromisoformat(entry["at"]).timestamp() * 1000) for entry in series]


async def test_the_series_has_every_minute_of_the_last_hour_oldest_first(client: Client) -> None:
    before, series, after = await per_minute(client)

    assert len(series) == 61
    assert all(set(entry) == {"at", "finished", "failed"} for entry in series)
    assert all(entry["finished"] == entry["failed"] == 0 for entry in series)
    at = starts(series)
    assert [b - a for a, b in itertools.pairwise(at)] == [MINUTE_MS] * 60
    assert all(entry["at"].endswith(":00.000Z") for entry in series)
    current = at[-1]
    assert before - before % MINUTE_MS <= current <= after - after % MINUTE_MS


async def test_the_series_counts_finished_and_failed_tasks_over_every_queue(
    client: Client, store: RedisStore
) -> None:
    done = await enqueue(client)
    lost = await enqueue(client, queue="reports")
    retried = await enqueue(client, attempts=2)
    killed = await enqueue(client)
    cancelled = await enqueue(client, queue="reports")
    for task_id, action in [(killed, "kill"), (cancelled, "cancel")]:
        assert (await client.post(f"/api/tasks/{task_id}/{action}", headers=ADMIN)).is_success
    await store.settle(failed(await run(store, lost, now_ms(), "reports"), retryable=False))
    claimed = {task.id: task for task in await claim(store, now_ms())}
    await store.settle(claimed[done].complete(None, now_ms()))
    await store.settle(failed(claimed[retried], retryable=True))  # not finished

    _, series, _ = await per_minute(client)
    stats = (await client.get("/api/stats", headers=ADMIN)).json()

    assert sum(entry["finished"] for entry in series) == 4  # done, failed, killed, cancelled
    assert sum(entry["failed"] for entry in series) == 2  # failed, killed
    assert (stats["failed"], stats["throughput"]["lastHour"]) == (2, 4)


@pytest.mark.single_redis
async def test_the_series_costs_no_round_trip_of_its_own(
    redis: Redis, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.enqueue([Task(id="t1", name="echo", payload={}, created_at=0, run_at=0)])
    views = RedisViews(redis, QUEUES)

    with round_trips(monkeypatch, redis) as trips:
        (first, second) = await views.stats(now_ms())

    assert len(trips) == 2  # the queues' task names, then everything else in one pipeline
    assert trips[1].count("MGET") == 2 * len(QUEUES)  # finished and failed, per queue
    assert len(first.per_minute) == len(second.per_minute) == 61


# --- the audit entries of one task --------------------------------------------------------


async def audit(client: Client, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/audit", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def actions(page: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(item["actor"], item["action"], item["target"]) for item in page["items"]]


async def test_a_target_s_entries_alone_newest_first(client: Client) -> None:
    mine, other = await enqueue(client), await enqueue(client)
    for task_id, action in [(mine, "cancel"), (other, "cancel"), (mine, "retry"), (mine, "kill")]:
        assert (await client.post(f"/api/tasks/{task_id}/{action}", headers=ADMIN)).is_success
    assert (await client.post("/api/queues/default/pause", headers=ADMIN)).is_success
    assert (await client.delete(f"/api/tasks/{other}", headers=ADMIN)).status_code == 204

    page = await audit(client, target=mine)

    assert actions(page) == [("ops", "kill", mine), ("ops", "retry", mine), ("ops", "cancel", mine)]
    assert page["nextCursor"] is None
    assert page["items"][0]["detail"] == {"queue": "default", "from": "waiting"}
    assert actions(await audit(client, target=other)) == [
        ("ops", "delete", other),  # still told once the task is gone
        ("ops", "cancel", other),
    ]
    assert actions(await audit(client, target="default")) == [("ops", "pause", "default")]
    assert await audit(client, target="never-touched") == {"items": [], "nextCursor": None}
    assert len((await audit(client))["items"]) == 6  # the whole log, as before


async def test_a_target_s_entries_are_paged_by_their_own_cursor(client: Client) -> None:
    task_id = await enqueue(client)
    for action in ("cancel", "retry", "cancel", "retry"):
        assert (await client.post(f"/api/tasks/{task_id}/{action}", headers=ADMIN)).is_success
    await enqueue(client)  # entries of others in between change nothing

    first = await audit(client, target=task_id, limit=3)
    rest = await audit(client, target=task_id, limit=3, before=first["nextCursor"])

    assert [item["action"] for item in first["items"]] == ["retry", "cancel", "retry"]
    assert [item["action"] for item in rest["items"]] == ["cancel"]
    assert rest["nextCursor"] is None


async def test_a_target_keeps_its_latest_entries_for_a_limited_time(
    client: Client, redis: Redis
) -> None:
    record = RecordAudit(RedisAuditLog(redis), system_clock)
    for n in range(PER_TARGET + 5):
        await record.execute("ops", "retry", "busy-task", {"n": n})
    await record.execute("ops", "retry", "quiet-task")

    page = await audit(client, target="busy-task", limit=500)

    assert [item["detail"]["n"] for item in page["items"]] == list(range(104, 4, -1))
    assert await redis.xlen(audit_of("busy-task")) == PER_TARGET
    assert await redis.xlen(AUDIT_LOG) == PER_TARGET + 6  # the whole log is not cut
    for target in ("busy-task", "quiet-task"):
        assert 0 < await redis.pttl(audit_of(target)) <= TARGET_TTL_MS


async def test_a_target_s_entries_live_as_long_as_the_longest_retention(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    retention = {"retain_completed_ms": 60_000, "retain_failed_ms": 3_600_000}
    async with api_client(redis_url, tmp_path, retain_cancelled_ms=120_000, **retention) as api:
        task_id = (await api.post("/api/tasks", json={"taskName": "echo"})).json()["id"]
        assert (await api.post(f"/api/tasks/{task_id}/cancel")).is_success

    assert 3_500_000 < await redis.pttl(audit_of(task_id)) <= 3_600_000


@pytest.mark.parametrize(
    ("retentions", "ttl"),
    [
        ((7 * DAY_MS, 30 * DAY_MS, 7 * DAY_MS), 30 * DAY_MS),  # the defaults
        ((60_000, 120_000, 90_000), 120_000),
        ((0, 0, 0), TARGET_TTL_MS),  # tasks kept forever: the entries are not
        ((60_000, 0, 90_000), TARGET_TTL_MS),
        ((60 * DAY_MS, 0, 0), 60 * DAY_MS),
    ],
)
def test_the_time_to_live_of_a_target_s_entries(retentions: tuple[int, ...], ttl: int) -> None:
    assert target_ttl_ms(retentions) == ttl


@pytest.mark.parametrize(
    "target", ["", "a" * 129, "has/slash", "has space", "ünïcode", "a\nb", "{tag}", "*"]
)
async def test_a_bad_target_is_422_naming_it(client: Client, target: str) -> None:
    response = await client.get("/api/audit", params={"target": target}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert "target" in response.json()["fields"]


async def test_a_longest_allowed_target_is_fine(client: Client) -> None:
    assert await audit(client, target="a" * 128) == {"items": [], "nextCursor": None}


async def test_a_target_s_entries_are_for_admins_only(client: Client) -> None:
    task_id = (await client.post("/api/tasks", json={"taskName": "echo"}, headers=PRODUCER)).json()
    path = f"/api/audit?target={task_id['id']}"
    assert (await client.get(path, headers=PRODUCER)).status_code == 403
    assert (await client.get(path)).status_code == 401


# --- the schema documents all three -------------------------------------------------------


async def test_the_schema_documents_the_additions(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    parts = schema["components"]["schemas"]

    fence = parts["AttemptOut"]["properties"]["fence"]
    assert {option.get("type") for option in fence["oneOf"]} == {"integer", "null"}
    assert "fence" in parts["AttemptOut"]["required"]
    assert set(parts["MinuteOut"]["properties"]) == {"at", "finished", "failed"}
    per_minute = parts["ThroughputOut"]["properties"]["perMinute"]
    assert per_minute["items"] == {"$ref": "#/components/schemas/MinuteOut"}
    parameters = schema["paths"]["/api/audit"]["get"]["parameters"]
    (target,) = [p for p in parameters if p["name"] == "target"]
    assert target["in"] == "query"
    assert (target["schema"]["maxLength"], target["schema"]["pattern"]) == (128, ID_PATTERN)


# GET /api/overview: the overview page in one answer, shared by every page for a second.


async def test_the_overview_holds_what_the_page_shows(client: Client, store: RedisStore) -> None:
    ids = []
    for number in range(3):
        answer = await client.post(
            "/api/tasks",
            json={"taskName": "echo", "payload": {"n": number}, "queue": "reports"},
            headers=ADMIN,
        )
        ids.append(answer.json()["id"])
    schedule = {"name": "nightly", "cron": "0 2 * * *", "task": {"taskName": "echo"}}
    assert (await client.post("/api/schedules", json=schedule, headers=ADMIN)).status_code == 201
    running, failing = (await store.claim("reports", "w-1", 2, 60_000, now_ms())).tasks
    failure = Failure(TaskError("ValueError", "no such card"), retryable=False)
    await store.settle(failing.fail(failure, now_ms(), Random(0)))

    overview = (await client.get("/api/overview", headers=ADMIN)).json()

    assert set(overview) == {"madeAt", "stats", "workers", "running", "failures", "schedules"}
    reports = overview["stats"]["queues"]["reports"]
    assert (reports["waiting"], reports["active"], reports["failed"]) == (1, 1, 1)
    assert [task["id"] for task in overview["running"]] == [running.id]
    assert overview["running"][0]["workerId"] == "w-1"
    assert [task["id"] for task in overview["failures"]] == [failing.id]
    assert overview["failures"][0]["error"]["message"] == "no such card"
    assert [entry["name"] for entry in overview["schedules"]] == ["nightly"]
    assert overview["schedules"][0]["nextRunAt"] is not None
    assert len(overview["stats"]["throughput"]["perMinute"]) == 61
    assert set(ids) >= {running.id, failing.id}


@pytest.mark.single_redis
async def test_twenty_pages_at_once_cost_redis_what_one_does(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.get("/ready")  # connections made, so only the overview's trips count
    with round_trips(monkeypatch) as one_page:
        first = await client.get("/api/overview", headers=ADMIN)
    assert first.status_code == 200
    assert one_page, "the first answer is read from Redis"

    with round_trips(monkeypatch) as twenty_pages:
        answers = await asyncio.gather(
            *(client.get("/api/overview", headers=ADMIN) for _ in range(20))
        )

    assert all(answer.status_code == 200 for answer in answers)
    assert {answer.content for answer in answers} == {first.content}
    assert twenty_pages == []


async def test_the_answer_is_read_again_once_a_second_old(client: Client) -> None:
    first = (await client.get("/api/overview", headers=ADMIN)).json()["madeAt"]
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        again = (await client.get("/api/overview", headers=ADMIN)).json()["madeAt"]
        if again != first:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the overview was never read again")
    assert again > first


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-API-Key": PRODUCER_KEY}, 403), ({"X-API-Key": "wrong"}, 401)],
)
async def test_only_an_admin_reads_the_overview(
    client: Client, headers: dict[str, str], status: int
) -> None:
    assert (await client.get("/api/overview", headers=headers)).status_code == status


async def test_the_schema_documents_the_overview(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    answer = schema["paths"]["/api/overview"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/OverviewOut")
    shape = schema["components"]["schemas"]["OverviewOut"]["properties"]
    assert set(shape) == {"madeAt", "stats", "workers", "running", "failures", "schedules"}
