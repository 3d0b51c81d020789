"""Workers as real processes: ordering, delays, retries, concurrency, shutdown, crashes."""

from __future__ import annotations

import signal
from datetime import datetime
from itertools import pairwise
from typing import Any

from tests.e2e.conftest import LOCK_TTL_MS, Cluster, wait_until


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


def started(cluster: Cluster, ids: list[str]) -> list[str]:
    tasks = [cluster.wait_status(task_id, "completed") for task_id in ids]
    # Claim order: fencing tokens strictly increase per claim (start times tie within a ms).
    return [task["id"] for task in sorted(tasks, key=lambda task: task["fence"])]


def test_priority_order_then_fifo_within_a_priority(cluster: Cluster) -> None:
    cluster.api()
    plan = [("low-1", 5), ("high-1", 0), ("mid-1", 2), ("high-2", 0), ("low-2", 5), ("mid-2", 2)]
    for task_id, priority in plan:
        cluster.enqueue(taskName="echo", payload={}, customJobId=task_id, priority=priority)
    cluster.worker("--concurrency", "1")
    assert started(cluster, [task_id for task_id, _ in plan]) == [
        "high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2",
    ]  # fmt: skip


def test_a_delayed_task_never_starts_before_it_is_due(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    ids = [cluster.enqueue(taskName="echo", payload={}, delayMs=ms)["id"] for ms in (300, 600)]
    for task_id in ids:
        task = cluster.wait_status(task_id, "completed")
        assert at(task["startedAt"]) >= at(task["runAt"])


def test_retries_back_off_then_fail_with_the_error_recorded(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    backoff = {"type": "exponential", "delay": 200, "factor": 2, "jitter": False}
    task_id = cluster.enqueue(
        taskName="fail", payload={"message": "disk on fire"}, attempts=3, backoff=backoff
    )["id"]
    task = cluster.wait_status(task_id, "failed")
    assert task["attempts"] == 3
    assert task["error"]["message"] == "disk on fire"
    assert "disk on fire" in task["error"]["traceback"]
    history = task["history"]
    assert [entry["outcome"] for entry in history] == ["retry", "retry", "failed"]
    fences = [entry["fence"] for entry in history]  # each execution's own token
    assert 0 < fences[0] < fences[1] < fences[2] == task["fence"]
    gaps = [at(b["startedAt"]) - at(a["finishedAt"]) for a, b in pairwise(history)]
    assert gaps[0] >= 200
    assert gaps[1] >= 400


def test_a_non_retryable_error_fails_at_once(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    body: dict[str, Any] = {"message": "bad input", "retryable": False}
    task_id = cluster.enqueue(taskName="fail", payload=body, attempts=5)["id"]
    task = cluster.wait_status(task_id, "failed")
    assert task["attempts"] == 1


def test_concurrency_is_honoured(cluster: Cluster) -> None:
    cluster.api()
    ids = [cluster.enqueue(taskName="sleep", payload={"ms": 300})["id"] for _ in range(12)]
    cluster.worker("--concurrency", "3")
    tasks = [cluster.wait_status(task_id, "completed") for task_id in ids]
    edges = sorted(
        [(at(t["startedAt"]), 1) for t in tasks] + [(at(t["finishedAt"]), -1) for t in tasks]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 3


def test_graceful_shutdown_returns_the_task_and_another_worker_completes_it(
    cluster: Cluster,
) -> None:
    cluster.api()
    first = cluster.worker(env={"SHUTDOWN_GRACE_MS": "200"})
    task_id = cluster.enqueue(taskName="sleep", payload={"ms": 1500})["id"]
    cluster.wait_status(task_id, "active")
    first.signal(signal.SIGTERM)
    assert first.wait(timeout_s=15) == 0
    returned = cluster.task(task_id)
    assert returned["status"] == "waiting"
    assert returned["attempts"] == 0
    assert [entry["outcome"] for entry in returned["history"]] == ["returned"]
    cluster.worker()
    done = cluster.wait_status(task_id, "completed")
    assert done["attempts"] == 1
    assert done["workerId"] != returned["history"][0]["workerId"]
    assert any(line.get("event") == "worker.stopped" for line in first.lines())


def test_a_killed_worker_s_task_completes_on_another_worker(cluster: Cluster) -> None:
    cluster.api()
    victim = cluster.worker()
    task_id = cluster.enqueue(taskName="sleep", payload={"ms": 1000})["id"]
    cluster.wait_status(task_id, "active")
    victim.signal(signal.SIGKILL)
    victim.wait()
    cluster.worker()
    done = cluster.wait_status(task_id, "completed", timeout_s=LOCK_TTL_MS / 1000 * 10)
    assert done["stalls"] == 1
    assert done["attempts"] == 1
    assert [entry["outcome"] for entry in done["history"]] == ["stalled", "completed"]
    stalled, completed = done["history"]
    assert 0 < stalled["fence"] < completed["fence"] == done["fence"]


def test_every_line_a_worker_prints_is_json_with_task_fields(cluster: Cluster) -> None:
    cluster.api()
    worker = cluster.worker()
    task_id = cluster.enqueue(taskName="echo", payload={"x": 1})["id"]
    cluster.wait_status(task_id, "completed")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    lines = worker.lines()  # parsing every line as JSON is the first assertion
    outcome = wait_until(lambda: [line for line in lines if line.get("event") == "task.completed"])[
        0
    ]
    assert outcome["task_id"] == task_id
    assert outcome["task_name"] == "echo"
    assert outcome["queue"] == "default"
    assert outcome["attempt"] == 1
    assert outcome["worker_id"]


def test_a_worker_asked_for_a_queue_that_is_not_configured_exits_2(cluster: Cluster) -> None:
    proc = cluster.start("worker", "--queues", "default,made-up")
    assert proc.wait() == 2
    assert "made-up: not configured (QUEUES: default,other)" in proc.log.read_text()
