"""Fenced writes on real processes: each executor's handler writes under its fence, and a
handler that lost its task (killed by an operator, or frozen past its lease) writes nothing
more, though its own code goes on to write."""

from __future__ import annotations

import signal

import pytest
import redis

from tests.e2e.conftest import LOCK_TTL_MS, Cluster, wait_until
from tests.e2e.test_reliability import logged

MODULES = {"CONVEYOR_TASK_MODULES": "infrastructure.tasks.demo,tests.e2e.fenced_tasks"}


@pytest.fixture
def fenced(cluster: Cluster) -> Cluster:
    cluster.env.update(MODULES)
    cluster.api()
    return cluster


def log(records: redis.Redis, key: str) -> list[str]:
    return list(records.lrange(f"conveyor:{{default}}:fx:log:{key}", 0, -1))


@pytest.mark.parametrize("task_name", ["fenced_async", "fenced_thread", "fenced_child"])
def test_each_executor_s_handler_writes_under_its_fence(
    fenced: Cluster, records: redis.Redis, task_name: str
) -> None:
    fenced.worker()
    task = fenced.enqueue(taskName=task_name, payload={"key": task_name})
    done = fenced.wait_status(task["id"], "completed")

    key = f"conveyor:{{default}}:fx:log:{task_name}"
    assert done["result"] == {"key": key, "length": 1}
    (mark,) = log(records, task_name)
    assert mark.startswith(f"1:{done['fence']}:")
    order = records.hgetall(f"conveyor:{{default}}:fx:order:{task_name}")
    assert order == {"status": "paid", "fence": str(done["fence"])}


def test_a_killed_task_s_thread_writes_nothing_after_the_kill(
    fenced: Cluster, records: redis.Redis
) -> None:
    # A thread cannot be stopped: it sleeps on, unchecked, then writes. Its worker's clock
    # says the lease holds; Redis, where the task is failed now, refuses the write.
    worker = fenced.worker()
    task = fenced.enqueue(taskName="fenced_thread", payload={"key": "killed", "ms": 1_500})
    wait_until(lambda: log(records, "killed"), what="the handler's first write")

    assert fenced.http.post(f"/api/tasks/{task['id']}/kill").status_code == 200
    wait_until(lambda: logged(worker, "task.killed"), what="the thread to return")

    assert [mark.split(":")[0] for mark in log(records, "killed")] == ["1"]
    assert fenced.task(task["id"])["error"]["type"] == "Killed"


@pytest.mark.parametrize("task_name", ["fenced_thread", "fenced_child"])
def test_a_worker_frozen_past_its_lease_writes_nothing_when_it_thaws(
    fenced: Cluster, records: redis.Redis, task_name: str
) -> None:
    frozen = fenced.worker()
    body = {"key": task_name, "ms": 2 * LOCK_TTL_MS}
    task = fenced.enqueue(taskName=task_name, payload=body)
    wait_until(lambda: log(records, task_name), what="the handler's first write")
    frozen.signal(signal.SIGSTOP)  # the whole process: a child of its own goes on
    fenced.worker()
    done = fenced.wait_status(task["id"], "completed", timeout_s=30)
    frozen.signal(signal.SIGCONT)
    wait_until(
        lambda: logged(frozen, "task.abandoned", "task.outcome_refused"),
        what="the thawed worker to find its task gone",
    )

    first, second = (int(mark.split(":")[1]) for mark in log(records, task_name)[:2])
    assert second == done["fence"] > first
    assert log(records, task_name)[2:] == [f"after:{second}"]  # never `after:{first}`
    assert [entry["outcome"] for entry in fenced.task(task["id"])["history"]] == [
        "stalled",
        "completed",
    ]
