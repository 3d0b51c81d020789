"""A frozen Redis (SIGSTOP): the API answers 503 within REDIS_TIMEOUT_MS and serves again
once Redis resumes; workers under load live through it and run every task once."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import Cluster, Proc, wait_until
from tests.freezable_redis import FreezableRedis, freezable_redis

PROBES = "infrastructure.tasks.demo,tests.e2e.probe_tasks"
TIMEOUT_MS = 1_000
ANSWER_WITHIN_S = 3.0  # a correctness bound: about one timeout, never a multiple of it
FREEZE_S = 3.0  # shorter than the lock's TTL below: no lease may run out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FreezableRedis]:
    with freezable_redis(tmp_path / "redis") as started:
        yield started


def timed(cluster: Cluster, method: str, path: str, body: Any = None) -> tuple[Any, float]:
    started = time.monotonic()
    response = cluster.http.request(method, path, json=body)
    return response, time.monotonic() - started


def test_a_frozen_redis_is_a_503_within_the_timeout_and_then_served_again(
    cluster: Cluster, server: FreezableRedis
) -> None:
    cluster.env.update(REDIS_URL=server.url, REDIS_TIMEOUT_MS=str(TIMEOUT_MS))
    cluster.api()
    task = cluster.enqueue(taskName="echo", payload={"n": 1})
    requests = [
        ("POST", "/api/tasks", {"taskName": "echo", "payload": {"n": 2}}),
        ("GET", f"/api/tasks/{task['id']}", None),
        ("GET", "/api/tasks", None),
        ("GET", "/ready", None),
    ]

    with server.frozen():
        for method, path, body in requests:
            response, elapsed = timed(cluster, method, path, body)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"] == "unavailable"
            assert response.json()["detail"]
            assert elapsed < ANSWER_WITHIN_S, (path, elapsed)

    wait_until(lambda: cluster.http.get("/ready").status_code == 200, what="ready again")
    for method, path, body in requests:
        response, _ = timed(cluster, method, path, body)
        assert response.status_code in (200, 202), (path, response.text)
    assert cluster.task(task["id"])["id"] == task["id"]


def events(procs: list[Proc], name: str) -> list[dict[str, Any]]:
    return [line for proc in procs for line in proc.lines() if line.get("event") == name]


def noticed_the_freeze(worker: Proc) -> bool:
    return any(
        "Timeout" in str(line.get("error", "")) + str(line.get("reason", ""))
        for line in worker.lines()
    )


def test_workers_under_load_live_through_a_freeze_and_run_every_task_once(
    cluster: Cluster, server: FreezableRedis, records: redis.Redis
) -> None:
    cluster.env.update(
        REDIS_URL=server.url,
        REDIS_TIMEOUT_MS=str(TIMEOUT_MS),
        PROBE_REDIS_URL=TEST_REDIS_URL,  # the runs are counted outside the frozen Redis
        CONVEYOR_TASK_MODULES=PROBES,
        QUEUES="default,later",
        LOCK_TTL_MS="10000",
        LOCK_RETRY_MS="300",
    )
    cluster.api()
    busy = cluster.worker("--concurrency", "4")
    idle = cluster.worker("--queues", "later", "--concurrency", "4")
    keys: dict[str, str] = {}

    def enqueue(key: str, ms: int, **options: Any) -> None:
        body = {"taskName": "probe", "payload": {"key": key, "ms": ms}, **options}
        keys[cluster.enqueue(**body)["id"]] = key

    for n in range(16):  # the busy worker runs and settles these through the freeze
        enqueue(f"busy{n}", random.randint(500, 2_000))
    freeze_at = time.monotonic() + 2.0
    for n in range(4):  # due while Redis is frozen: the idle worker claims into the freeze
        delay_ms = int((freeze_at + 0.5 - time.monotonic()) * 1000)
        enqueue(f"due{n}", 100, queue="later", delayMs=delay_ms)
    wait_until(lambda: time.monotonic() >= freeze_at, what="the moment to freeze")

    with server.frozen():
        wait_until(
            lambda: (
                time.monotonic() - freeze_at >= FREEZE_S
                and noticed_the_freeze(busy)
                and noticed_the_freeze(idle)
            ),
            timeout_s=30,
            what="both workers to run into the frozen Redis",
        )

    cluster.http.timeout = 30
    for task_id in keys:
        cluster.wait_status(task_id, "completed", timeout_s=60)
    for proc in cluster.procs:
        assert proc.process.poll() is None, f"{proc.log.name}: no process died"
    for task_id, key in keys.items():
        task = cluster.task(task_id)
        assert [entry["outcome"] for entry in task["history"]] == ["completed"], task
        assert len(records.lrange(f"probe:{key}:starts", 0, -1)) == 1, key
    workers = [busy, idle]
    completed = Counter(line["task_id"] for line in events(workers, "task.completed"))
    assert completed == Counter(dict.fromkeys(keys, 1)), "one outcome logged per task"
    for wrong in ("task.outcome_refused", "task.abandoned", "lease.lost", "lease.expired"):
        assert not events(workers, wrong), wrong
