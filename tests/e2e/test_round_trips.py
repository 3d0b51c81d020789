"""Round trips per task, seen by MONITOR on a Redis of the test's own: a regression shows.

A worker with the lock on the queue's Redis sends one script per task (the settle that
writes the outcome, releases the lock and claims the next task); the claim that filled
its slots, the lease renewals and the idle waits are shared by many tasks. No command of
its own for the lock, and no read of a task back. Commands a script runs are told apart
(MONITOR prints them as `[db lua]`) and not counted: they cost no round trip.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from domain.task import Task, TaskStatus
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.redis.keys import keys_of
from tests.e2e.conftest import CONVEYOR, Proc, wait_until
from tests.freezable_redis import FreezableRedis

TASKS = 400
CONCURRENCY = 10
DUE_IN_MS = 2_000  # time to start watching before the tasks fall due
LINE = re.compile(r'^[\d.]+ \[\d+ (?P<client>[^\]]+)\] "(?P<command>[^"]+)"')


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FreezableRedis]:
    own = FreezableRedis(tmp_path / "redis")
    own.start()
    try:
        yield own
    finally:
        own.stop()


async def enqueue_due_at(url: str, run_at: int) -> None:
    from tests.stores import RedisStore  # noqa: PLC0415 - its clients live on the test's loop

    client, blocking = create_redis(url), create_blocking_redis(url)
    store = RedisStore(client, blocking, 60_000)
    now = int(time.time() * 1000)
    try:
        await store.enqueue(
            [
                Task(
                    id=f"t{n}",
                    name="echo",
                    payload={"n": n},
                    created_at=now,
                    run_at=run_at,
                    status=Task.status_for(run_at, now),
                )
                for n in range(TASKS)
            ]
        )
    finally:
        await store.aclose()
        await client.aclose()
        await blocking.aclose()


def commands_sent(log: Path, ignored: set[str]) -> Counter[str]:
    """Each command a client sent, by name; not those a script ran, nor `ignored` clients'."""
    sent: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        match = LINE.match(line)
        if match and match["client"] != "lua" and match["client"] not in ignored:
            sent[match["command"].lower()] += 1
    return sent


def test_a_task_costs_one_round_trip(server: FreezableRedis, tmp_path: Path) -> None:
    env = {"REDIS_URL": server.url, "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
           "FILES_BASE_DIR": str(tmp_path / "files"), "PYTHONUNBUFFERED": "1",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    worker = Proc([*CONVEYOR, "worker", "--concurrency", str(CONCURRENCY)], env, tmp_path / "w.log")
    poller = redis.Redis.from_url(server.url, decode_responses=True, single_connection_client=True)
    watched = tmp_path / "monitor.log"
    redis_cli = shutil.which("redis-cli") or "redis-cli"
    monitor: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: poller.client_list(_type="normal").__len__() >= 3, what="the worker")
        due = int(time.time() * 1000) + DUE_IN_MS
        asyncio.run(enqueue_due_at(server.url, due))
        with watched.open("wb") as out:
            monitor = subprocess.Popen([redis_cli, "-u", server.url, "monitor"], stdout=out)
        wait_until(lambda: watched.read_text().startswith("OK"), what="MONITOR to start")
        assert time.time() * 1000 < due, "MONITOR started after the tasks fell due"
        completed = keys_of("default").state(TaskStatus.COMPLETED)
        wait_until(lambda: poller.zcard(completed) == TASKS, timeout_s=60, what="every task")
        own = str(poller.client_info()["addr"])
    finally:
        if monitor is not None:
            monitor.terminate()
            monitor.wait(10)
        worker.stop()
        poller.close()

    sent = commands_sent(watched, ignored={own})
    per_task = {name: count / TASKS for name, count in sent.items()}
    assert per_task.get("evalsha", 0) >= 1, per_task  # the watch saw every settle
    assert per_task["evalsha"] <= 1.1, per_task  # the settle, which claims the next ones too
    assert sum(per_task.values()) <= 1.25, per_task  # idle waits, heartbeats: a few in all
    for lock_command in ("set", "del", "get", "pexpire", "eval"):
        assert per_task.get(lock_command, 0) < 0.05, per_task  # the lock rides the scripts
