"""Task types with executor="process": their handlers in a worker's child processes."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
import redis

from tests.e2e.conftest import LOCK_TTL_MS, Cluster, Proc, wait_until
from tests.e2e.test_worker import at

MODULES = {"CONVEYOR_TASK_MODULES": "infrastructure.tasks.demo,tests.e2e.child_tasks"}
RETRY_IN_1S = {"type": "fixed", "delay": 1_000, "jitter": False}


@pytest.fixture
def children(cluster: Cluster) -> Cluster:
    cluster.env.update(MODULES, WORKER_PROCESSES="2")
    cluster.api()
    return cluster


def pids(records: redis.Redis, key: str) -> dict[int, int]:
    """The pid each attempt ran in, as the handler recorded it."""
    entries = (entry.split(":") for entry in records.lrange(f"child:{key}:pids", 0, -1))
    return {int(attempt): int(pid) for attempt, pid in entries}


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def child_pids(worker: Proc) -> list[int]:
    return [child.pid for child in psutil.Process(worker.pid).children()]


def test_a_process_task_runs_in_a_child_with_its_context(
    children: Cluster, records: redis.Redis
) -> None:
    worker = children.worker()
    task = children.enqueue(taskName="crunch", payload={"key": "ctx", "ms": 300})
    done = children.wait_status(task["id"], "completed")
    result = done["result"]
    assert result["pid"] in child_pids(worker)
    assert result["pid"] != worker.pid
    assert result == {"pid": result["pid"], "attempt": 1, "fence": done["fence"],
                      "taskId": task["id"], "queue": "default"}  # fmt: skip
    assert done["progress"] == {"done": True}
    (line,) = wait_until(lambda: [x for x in worker.lines() if x["event"] == "crunch.done"])
    assert line["logger"] == "conveyor.child"
    assert (line["task_id"], line["task_name"], line["attempt"]) == (task["id"], "crunch", 1)
    assert line["worker_id"] == done["workerId"]


def test_what_a_child_s_handler_raises_steers_the_task_as_inline(children: Cluster) -> None:
    children.worker()
    final = children.enqueue(taskName="crunch", payload={"fail": "non_retryable"})
    failed = children.wait_status(final["id"], "failed")
    assert failed["attempts"] == 1
    assert failed["error"]["type"] == "NonRetryableError"
    assert failed["error"]["message"] == "bad input on attempt 1"
    assert "raise NonRetryableError" in failed["error"]["traceback"]
    # RetryAfter's delay, not the task's backoff, decides when the retry runs.
    backoff = {"type": "fixed", "delay": 5_000, "jitter": False}
    later = children.enqueue(taskName="crunch", payload={"fail": "retry_after"}, backoff=backoff)
    retried = children.wait_status(later["id"], "failed")
    assert retried["error"]["type"] == "RetryAfter"
    first, second = retried["history"]
    assert 300 <= at(second["startedAt"]) - at(first["finishedAt"]) < 5_000


def test_a_cpu_bound_child_leaves_the_worker_s_event_loop_free(children: Cluster) -> None:
    """The same spinning handler, in a thread and in a child, beside an async task that
    sleeps 2 ms at a time: in a thread it holds the GIL, and every wake-up of the event
    loop waits for the interpreter's switch interval (5 ms)."""
    children.worker("--concurrency", "4")

    def lateness_ms(beside: str | None) -> float:
        spinner = None
        if beside is not None:
            spinner = children.enqueue(taskName=beside, payload={"key": beside, "ms": 60_000})
            wait_until(lambda: children.task(spinner["id"])["progress"], what="it to spin")
        ticked = children.enqueue(taskName="tick", payload={"n": 100})
        result = children.wait_status(ticked["id"], "completed")["result"]
        if spinner is not None:
            children.http.post(f"/api/tasks/{spinner['id']}/cancel")
            children.wait_status(spinner["id"], "cancelled")
        return float(result["lateMs"])

    alone = lateness_ms(None)
    beside_child = lateness_ms("crunch")
    beside_thread = lateness_ms("crunch_inline")
    print(f"mean lateness of a 2 ms sleep: alone {alone:.2f} ms, beside a child"
          f" {beside_child:.2f} ms, beside a thread {beside_thread:.2f} ms")  # fmt: skip
    assert beside_child < 2.0
    assert beside_thread > 2.0


def test_a_child_running_past_the_lock_ttl_keeps_its_lease_and_runs_once(
    children: Cluster, records: redis.Redis
) -> None:
    children.worker()
    children.worker()  # idle beside it, ready to recover the task were its lease to lapse
    task = children.enqueue(taskName="crunch", payload={"key": "long", "ms": 3 * LOCK_TTL_MS})
    done = children.wait_status(task["id"], "completed", timeout_s=30)
    assert done["stalls"] == 0
    assert [entry["outcome"] for entry in done["history"]] == ["completed"]
    assert list(pids(records, "long")) == [1]


def test_a_timeout_ends_the_child_and_the_retry_runs_in_a_new_one(
    children: Cluster, records: redis.Redis
) -> None:
    worker = children.worker()
    task = children.enqueue(
        taskName="crunch",
        payload={"key": "slow", "first_ms": 60_000, "ms": 10},
        timeoutMs=3_000,  # the first child starts within it, on a slow machine too
        backoff=RETRY_IN_1S,
    )
    retrying = children.wait_status(task["id"], "delayed")
    assert retrying["error"]["type"] == "TaskTimeout"
    first = pids(records, "slow")[1]
    assert not alive(first)
    done = children.wait_status(task["id"], "completed")
    assert done["result"]["pid"] == pids(records, "slow")[2] != first
    assert done["result"]["pid"] in child_pids(worker)


def test_a_child_killed_from_outside_is_a_failed_attempt_and_the_worker_lives_on(
    children: Cluster, records: redis.Redis
) -> None:
    worker = children.worker()
    task = children.enqueue(
        taskName="crunch", payload={"key": "victim", "first_ms": 60_000}, backoff=RETRY_IN_1S
    )
    victim = wait_until(lambda: pids(records, "victim").get(1), what="the first attempt")
    os.kill(victim, signal.SIGKILL)
    retrying = children.wait_status(task["id"], "delayed")
    assert retrying["error"]["type"] == "ChildDied"
    assert f"(pid {victim}) killed by SIGKILL" in retrying["error"]["message"]
    done = children.wait_status(task["id"], "completed")
    assert done["attempts"] == 2
    assert done["result"]["pid"] != victim
    assert worker.process.poll() is None
    crashed = children.enqueue(taskName="crunch", payload={"key": "exit", "fail": "exit"})
    failed = children.wait_status(crashed["id"], "failed")
    assert "exited with code 3" in failed["error"]["message"]
    assert worker.process.poll() is None


def test_cancel_of_a_running_process_task_ends_its_child(
    children: Cluster, records: redis.Redis
) -> None:
    children.worker()
    task = children.enqueue(taskName="crunch", payload={"key": "doomed", "ms": 60_000})
    doomed = wait_until(lambda: pids(records, "doomed").get(1), what="the handler to start")
    response = children.http.post(f"/api/tasks/{task['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = children.wait_status(task["id"], "cancelled", timeout_s=5)
    assert [entry["outcome"] for entry in cancelled["history"]] == ["cancelled"]
    wait_until(lambda: not alive(doomed), timeout_s=5, what="the child to end")


def test_a_stopped_worker_leaves_no_child_behind(children: Cluster, records: redis.Redis) -> None:
    worker = children.worker(env={"SHUTDOWN_GRACE_MS": "200"})
    quick = children.enqueue(taskName="crunch", payload={"key": "quick"})
    children.wait_status(quick["id"], "completed")
    busy = children.enqueue(taskName="crunch", payload={"key": "busy", "ms": 60_000})
    wait_until(lambda: pids(records, "busy").get(1), what="the handler to start")
    handlers = {pids(records, "quick")[1], pids(records, "busy")[1]}
    started = child_pids(worker)
    assert handlers <= set(started)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout_s=15) == 0
    assert not [pid for pid in handlers if alive(pid)]  # ended before the worker exits
    # multiprocessing's resource tracker leaves once it sees the worker's pipe close.
    wait_until(lambda: not [pid for pid in started if alive(pid)], 5.0, "every child to leave")
    assert children.task(busy["id"])["status"] == "waiting"  # given back, as inline


def test_the_children_of_a_killed_worker_leave_by_themselves(
    children: Cluster, records: redis.Redis
) -> None:
    worker = children.worker()
    payload = {"key": "orphan", "ms": 60_000, "quiet": True}
    children.enqueue(taskName="crunch", payload=payload)
    wait_until(lambda: pids(records, "orphan").get(1), what="the handler to start")
    started = child_pids(worker)
    worker.signal(signal.SIGKILL)
    worker.wait()
    wait_until(lambda: not [pid for pid in started if alive(pid)], what="the children to leave")
