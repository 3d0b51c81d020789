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


def sent_lines(log: Path, ignored: set[str]) -> list[str]:
    """Each command a client sent; not those a script ran, nor `ignored` clients'."""
    sent: list[str] = []
    for line in log.read_text().splitlines():
        match = LINE.match(line)
        if match and match["client"] != "lua" and match["client"] not in ignored:
            sent.append(line)
    return sent


def command_of(line: str) -> str:
    match = LINE.match(line)
    assert match is not None
    return match["command"].lower()


def run_watched(server: FreezableRedis, tmp_path: Path, *worker_args: str) -> list[str]:
    """The commands the worker sent while it ran the TASKS tasks of queue `default`, as
    MONITOR printed them (those of scripts and of this test left out)."""
    env = {"REDIS_URL": server.url, "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
           "FILES_BASE_DIR": str(tmp_path / "files"), "PYTHONUNBUFFERED": "1",
           "QUEUES": "first,second,default", "PATH": "/usr/bin:/bin"}  # fmt: skip
    argv = [*CONVEYOR, "worker", "--concurrency", str(CONCURRENCY), *worker_args]
    worker = Proc(argv, env, tmp_path / "w.log")
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

    return sent_lines(watched, ignored={own})


def test_a_task_costs_one_round_trip(server: FreezableRedis, tmp_path: Path) -> None:
    sent = Counter(command_of(line) for line in run_watched(server, tmp_path))
    per_task = {name: count / TASKS for name, count in sent.items()}
    assert per_task.get("evalsha", 0) >= 1, per_task  # the watch saw every settle
    assert per_task["evalsha"] <= 1.1, per_task  # the settle, which claims the next ones too
    assert sum(per_task.values()) <= 1.25, per_task  # idle waits, heartbeats: a few in all
    for lock_command in ("set", "del", "get", "pexpire", "eval"):
        assert per_task.get(lock_command, 0) < 0.05, per_task  # the lock rides the scripts
    # Schedules, flow limits and depth limits unused cost nothing per task: the worker's
    # look for due schedules comes twice a second, whatever the number of tasks.
    for schedule_command in ("zrangebyscore", "zrange"):
        assert per_task.get(schedule_command, 0) < 0.05, per_task


def test_a_claim_over_empty_first_queues_is_one_round_trip(
    server: FreezableRedis, tmp_path: Path
) -> None:
    # Strict order, the first two queues empty: each claim round looks at all three in
    # one script (queue by queue, it was three round trips). A task of `default` is not
    # claimed with the outcome of the one before (`first` might have work by then).
    sent = run_watched(server, tmp_path, "--queues", "first,second,default")
    scripts = [line for line in sent if command_of(line) == "evalsha"]
    claims = [line for line in scripts if "conveyor:{first}:" in line]
    others = [line for line in scripts if "conveyor:{first}:" not in line]
    assert claims, "the watch saw no claim"
    for line in claims:  # each claim round: one script over the three queues
        assert "conveyor:{second}:wait" in line, line
        assert "conveyor:{default}:wait" in line, line
    # The rest are the settles, one per task (a script's first call from each of the
    # CONCURRENCY tasks settling at once may find it not loaded yet, and is sent again).
    assert len(others) <= TASKS + CONCURRENCY, Counter(line.split()[4] for line in others)
    assert len(sent) / TASKS <= 2.2, Counter(command_of(line) for line in sent)
