"""Operators' actions on real processes: cancel and kill a running task, pause and resume a
queue, and wait for a running task over HTTP."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tests.e2e.conftest import Cluster, Proc, wait_until

LONG_SLEEP_MS = 5_000


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


def events(proc: Proc, task_id: str | None = None) -> list[str]:
    """The events a process logged, of one task if `task_id` is given."""
    return [
        str(line.get("event"))
        for line in proc.lines()
        if task_id is None or line.get("task_id") == task_id
    ]


def running(cluster: Cluster, task_id: str) -> dict[str, Any]:
    """Wait until the task is active and its handler has reported progress (it runs)."""

    def started() -> dict[str, Any] | None:
        task = cluster.task(task_id)
        return task if task["status"] == "active" and task["progress"] else None

    result: dict[str, Any] = wait_until(started, 15.0, f"{task_id} to run")
    return result


def quick_task_runs(cluster: Cluster, within_s: float) -> None:
    """With the worker's one slot, a quick task completes only once the slot is free."""
    task_id = cluster.enqueue(taskName="echo", payload={"after": "stop"})["id"]
    cluster.wait_status(task_id, "completed", timeout_s=within_s)


def test_cancel_of_an_active_task_stops_its_handler(cluster: Cluster) -> None:
    cluster.api()
    worker = cluster.worker("--concurrency", "1")
    task_id = cluster.enqueue(taskName="sleep", payload={"ms": LONG_SLEEP_MS})["id"]
    running(cluster, task_id)

    asked = time.monotonic()
    response = cluster.http.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "active"  # the worker stops it and records it
    task = cluster.wait_status(task_id, "cancelled", timeout_s=2.0)
    assert time.monotonic() - asked < 2.0
    assert task["history"][-1]["outcome"] == "cancelled"
    assert at(task["finishedAt"]) - at(task["startedAt"]) < LONG_SLEEP_MS - 1_000
    assert task["result"] is None
    quick_task_runs(cluster, within_s=2.0)  # the handler no longer holds the only slot
    wait_until(lambda: "task.cancelled" in events(worker, task_id), 5.0, "the worker to log it")
    time.sleep(0.5)
    assert cluster.task(task_id)["status"] == "cancelled"  # and it stays so


def test_kill_of_an_active_task_fails_it_and_stops_its_handler(cluster: Cluster) -> None:
    cluster.api()
    worker = cluster.worker("--concurrency", "1")
    task_id = cluster.enqueue(taskName="sleep", payload={"ms": LONG_SLEEP_MS})["id"]
    running(cluster, task_id)

    response = cluster.http.post(f"/api/tasks/{task_id}/kill")
    assert response.status_code == 200
    killed = response.json()
    assert killed["status"] == "failed"
    assert killed["error"]["type"] == "Killed"
    wait_until(
        lambda: "task.killed" in events(worker, task_id), 2.0, "the worker to log task.killed"
    )
    quick_task_runs(cluster, within_s=2.0)
    time.sleep(0.5)
    task = cluster.task(task_id)
    assert task["status"] == "failed"  # the stopped handler's outcome never overwrites it
    assert task["error"]["type"] == "Killed"
    assert task["history"][-1]["outcome"] == "killed"
    assert "task.completed" not in events(worker, task_id)


def test_a_paused_queue_lets_running_tasks_finish_and_starts_none(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker("--concurrency", "2")
    first = cluster.enqueue(taskName="sleep", payload={"ms": 1_500})["id"]
    running(cluster, first)

    assert cluster.http.post("/api/queues/default/pause").json()["paused"] is True
    later = cluster.enqueue(taskName="echo", payload={"n": 1})["id"]
    done = cluster.wait_status(first, "completed", timeout_s=10.0)
    assert done["result"] == {"sleptMs": 1_500}
    time.sleep(1.0)  # a free slot and a waiting task: a running worker would take it now
    assert cluster.task(later)["status"] == "waiting"
    assert cluster.http.get("/api/stats").json()["queues"]["default"]["paused"] is True

    resumed = time.monotonic()
    assert cluster.http.post("/api/queues/default/resume").json()["paused"] is False
    cluster.wait_status(later, "completed", timeout_s=5.0)
    assert time.monotonic() - resumed < 2.0


def test_wait_ms_returns_a_running_task_once_it_completes(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    task_id = cluster.enqueue(taskName="sleep", payload={"ms": 800})["id"]
    running(cluster, task_id)
    started = time.monotonic()
    response = cluster.http.get(f"/api/tasks/{task_id}", params={"waitMs": 15_000})
    took = time.monotonic() - started
    assert response.status_code == 200
    task = response.json()
    assert task["status"] == "completed"
    assert task["result"] == {"sleptMs": 800}
    assert took < 3.0, took


def test_wait_ms_over_a_task_that_is_still_running_returns_it_active(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    task_id = cluster.enqueue(taskName="sleep", payload={"ms": LONG_SLEEP_MS})["id"]
    running(cluster, task_id)
    started = time.monotonic()
    response = cluster.http.get(f"/api/tasks/{task_id}", params={"waitMs": 500})
    took = time.monotonic() - started
    assert response.json()["status"] == "active"
    assert 0.45 <= took < 2.5, took
    cluster.http.post(f"/api/tasks/{task_id}/cancel")
    cluster.wait_status(task_id, "cancelled", timeout_s=3.0)
