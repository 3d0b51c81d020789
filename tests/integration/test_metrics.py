"""GET /metrics against a real Redis: the deployment's queues, task types and workers, and
this API's own requests, as Prometheus text; behind the admin key when keys are set."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from application.meter import LOCKS_ACQUIRED, RUN_TIME, Meter
from application.workers import Heartbeat
from domain.values import WorkerInfo
from infrastructure.redis.workers import RedisWorkerRegistry
from infrastructure.settings import Settings
from interfaces.container import Container, resolve
from interfaces.http.app import create_app
from tests.conftest import LOCAL

Client = AsyncTestClient[Any]
ADMIN_KEY = "metrics-admin-key-0123456789"
PRODUCER_KEY = "metrics-producer-key-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def now_ms() -> int:
    return int(time.time() * 1000)


def samples(text: str) -> Samples:
    """Every sample of the exposition, by name and labels; the text must parse."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def make_client(redis_url: str, files: Path, **overrides: Any) -> tuple[Client, Container]:
    overrides.setdefault("queues", "default,slow")
    settings = Settings(redis_url=redis_url, files_base_dir=files, **overrides)
    container = Container()
    container.settings.override(providers.Object(settings))
    return AsyncTestClient(app=create_app(container), base_url=LOCAL), container


@pytest.fixture
async def client(redis: Redis, redis_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    made, _ = await make_client(redis_url, tmp_path / "files")
    async with made:
        yield made


async def test_metrics_count_tasks_by_queue_status_and_type(client: Client) -> None:
    for n in range(3):
        response = await client.post("/api/tasks", json={"taskName": "echo", "payload": {"n": n}})
        assert response.status_code == 202
    delayed = {"taskName": "sleep", "payload": {"ms": 1}, "delayMs": 60_000, "queue": "slow"}
    assert (await client.post("/api/tasks", json=delayed)).status_code == 202
    assert (await client.post("/api/queues/slow/pause")).status_code == 200

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert value(found, "conveyor_tasks", queue="default", status="waiting") == 3
    assert value(found, "conveyor_tasks", queue="default", status="completed") == 0
    assert value(found, "conveyor_tasks", queue="slow", status="delayed") == 1
    assert value(found, "conveyor_queue_paused", queue="slow") == 1
    assert value(found, "conveyor_queue_paused", queue="default") == 0
    assert value(found, "conveyor_task_type_tasks", task_name="echo", status="waiting") == 3
    assert value(found, "conveyor_task_type_tasks", task_name="sleep", status="delayed") == 1
    assert value(found, "conveyor_tasks_finished_recent", window="1m") == 0
    assert value(found, "conveyor_workers") == 0


async def test_metrics_show_live_workers_from_their_heartbeats(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    made, container = await make_client(redis_url, tmp_path / "files")
    async with made as client:

        async def beat() -> None:
            heartbeat: Heartbeat = await resolve(container.heartbeat)
            await heartbeat.beat(
                "worker-7", queues=["default"], concurrency=50, running=4, processed=120,
                started_at=now_ms(),
            )  # fmt: skip

        # The app's Redis clients live on the test client's own loop.
        await asyncio.wrap_future(client.blocking_portal.start_task_soon(beat))

        found = samples((await client.get("/metrics")).text)

    assert value(found, "conveyor_workers") == 1
    assert value(found, "conveyor_worker_running_tasks", worker_id="worker-7") == 4
    assert value(found, "conveyor_worker_concurrency", worker_id="worker-7") == 50
    assert value(found, "conveyor_worker_processed_tasks_total", worker_id="worker-7") == 120


async def test_what_two_workers_counted_is_summed_in_redis(redis: Redis) -> None:
    registry = RedisWorkerRegistry(redis)
    for worker_id, seconds in (("w1", 0.25), ("w2", 0.5)):
        meter = Meter()
        meter.count(LOCKS_ACQUIRED, 3, "claim")
        meter.observe(RUN_TIME, seconds, "echo")
        info = WorkerInfo(worker_id, ["default"], 1, 0, 0, now_ms(), now_ms())
        await registry.heartbeat(info, 15_000, meter.drain())

    totals = await registry.metric_totals()

    assert totals["locks_acquired_total|claim|"] == 6
    assert totals["task_run_seconds|echo|0.5"] == 2
    assert totals["task_run_seconds|echo|sum"] == 0.75
    assert totals["task_run_seconds|echo|count"] == 2


async def test_http_requests_are_counted_by_route_template_not_by_path(client: Client) -> None:
    for task_id in ("first", "second"):
        assert (await client.get(f"/api/tasks/{task_id}")).status_code == 404
    assert (await client.get("/health")).status_code == 200

    text = (await client.get("/metrics")).text

    found = samples(text)
    requests: Counter[str] = Counter()  # by path, over the other labels (earlier tests' too)
    for (name, labels), count in found.items():
        if name == "conveyor_requests_total" and dict(labels).get("status_code") == "404":
            requests[dict(labels)["path"]] += int(count)
    assert requests["/api/tasks/{task_id}"] >= 2
    assert not any("first" in path or "second" in path for path in requests)
    assert 'path="/health"' not in text  # probes are not counted


async def test_metrics_need_the_admin_key_when_keys_are_set(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    keys = f"ops:{ADMIN_KEY}:admin,ci:{PRODUCER_KEY}:producer"
    made, _ = await make_client(redis_url, tmp_path / "files", api_keys=keys)
    async with made as client:
        anonymous = await client.get("/metrics")
        producer = await client.get("/metrics", headers={"X-API-Key": PRODUCER_KEY})
        admin = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    assert (producer.status_code, producer.json()["error"]) == (403, "forbidden")
    assert admin.status_code == 200
    assert value(samples(admin.text), "conveyor_workers") == 0


async def test_a_request_the_boundary_refuses_is_counted_with_its_refusal(client: Client) -> None:
    def posts(text: str) -> dict[str | None, float]:
        return {
            dict(labels).get("status_code"): count
            for (name, labels), count in samples(text).items()
            if name == "conveyor_requests_total"
            and dict(labels).get("path") == "/api/tasks"
            and dict(labels).get("method") == "POST"
        }

    before = posts((await client.get("/metrics")).text)  # the series are the process's
    refused = await client.post(
        "/api/tasks", content=b"taskName=echo", headers={"content-type": "text/plain"}
    )
    assert refused.status_code == 415
    after = posts((await client.get("/metrics")).text)

    changed = {code: after[code] - before.get(code, 0) for code in after}
    assert {code: delta for code, delta in changed.items() if delta} == {"415": 1.0}
