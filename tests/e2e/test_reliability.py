"""The execution guarantees under failure: lock renewal, fencing, crashes, chaos."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from typing import Any

import redis

from tests.e2e.conftest import LOCK_TTL_MS, Cluster, Proc, wait_until

PROBES = {"CONVEYOR_TASK_MODULES": "infrastructure.tasks.demo,tests.e2e.probe_tasks"}


def starts(records: redis.Redis, key: str) -> list[str]:
    return list(records.lrange(f"probe:{key}:starts", 0, -1))


def ends(records: redis.Redis, key: str) -> list[str]:
    return list(records.lrange(f"probe:{key}:ends", 0, -1))


def logged(proc: Proc, *events: str) -> bool:
    return any(line.get("event") in events for line in proc.lines())


def test_a_task_running_three_ttls_beside_idle_workers_runs_once(
    cluster: Cluster, records: redis.Redis
) -> None:
    cluster.env.update(PROBES)
    cluster.api()
    for _ in range(3):
        cluster.worker()
    task = cluster.enqueue(taskName="probe", payload={"key": "long", "ms": 3 * LOCK_TTL_MS})
    done = cluster.wait_status(task["id"], "completed", timeout_s=30)
    assert len(starts(records, "long")) == 1
    assert done["stalls"] == 0
    assert [entry["outcome"] for entry in done["history"]] == ["completed"]


def running_probe(
    cluster: Cluster, records: redis.Redis, key: str, ms: int, **body: Any
) -> tuple[Proc, dict[str, Any]]:
    """A worker running a probe task (started), and a second, idle worker beside it."""
    cluster.env.update(PROBES)
    cluster.api()
    first = cluster.worker()
    task = cluster.enqueue(taskName="probe", payload={"key": key, "ms": ms}, **body)
    wait_until(lambda: starts(records, key), what="the handler to start")
    cluster.worker()
    return first, task


def test_a_killed_workers_task_runs_again_within_a_ttl_and_a_second(
    cluster: Cluster, records: redis.Redis
) -> None:
    # A long backoff: a first stall must not wait it out (a task that stalls again does).
    backoff = {"type": "fixed", "delay": 30_000, "jitter": False}
    doomed, task = running_probe(cluster, records, "takeover", LOCK_TTL_MS, backoff=backoff)
    killed_at = time.monotonic()
    doomed.signal(signal.SIGKILL)
    wait_until(lambda: len(starts(records, "takeover")) == 2, what="a live worker to take over")
    taken_over_s = time.monotonic() - killed_at
    assert taken_over_s <= (LOCK_TTL_MS + 1_000) / 1_000
    done = cluster.wait_status(task["id"], "completed", timeout_s=30)
    assert (done["stalls"], done["attempts"]) == (1, 1)
    assert [entry["outcome"] for entry in done["history"]] == ["stalled", "completed"]


def test_a_paused_worker_past_its_ttl_cannot_record_an_outcome_nor_run_on(
    cluster: Cluster, records: redis.Redis
) -> None:
    # Paused until the task completed elsewhere: its handler's sleep is long over when it
    # resumes, and the renewal that would find the lease gone may run after it.
    paused, task = running_probe(cluster, records, "paused", 2 * LOCK_TTL_MS)
    paused.signal(signal.SIGSTOP)
    done = cluster.wait_status(task["id"], "completed", timeout_s=30)
    paused.signal(signal.SIGCONT)
    wait_until(
        lambda: logged(paused, "task.abandoned", "lease.lost", "task.outcome_refused"),
        what="the paused worker to find its lease gone",
    )
    final = cluster.task(task["id"])
    assert final == done  # the record is the second worker's, untouched
    assert [entry["outcome"] for entry in final["history"]] == ["stalled", "completed"]
    first_pid = starts(records, "paused")[0].split(":")[0]
    assert final["history"][0]["workerId"].split(":")[1] == first_pid
    assert final["workerId"].split(":")[1] != first_pid
    # The thawed handler stopped where it slept: it never reached its last write.
    assert [mark.split(":")[0] for mark in ends(records, "paused")] == [
        final["workerId"].split(":")[1]
    ]


def test_a_sync_handler_past_its_timeout_keeps_its_lock_until_it_returns(
    cluster: Cluster, records: redis.Redis
) -> None:
    cluster.env.update(PROBES)
    cluster.api()
    for _ in range(2):
        cluster.worker()
    runs_ms = 2 * LOCK_TTL_MS  # the timeout fires long before; the thread cannot be stopped
    body = {"key": "stubborn", "ms": runs_ms}
    task = cluster.enqueue(taskName="stubborn", payload=body, timeoutMs=200, attempts=2)
    failed = cluster.wait_status(task["id"], "failed", timeout_s=30)
    assert failed["error"]["type"] == "TaskTimeout"
    assert failed["stalls"] == 0  # the lock and lease were renewed all along
    begun = [float(run.split(":")[2]) for run in starts(records, "stubborn")]
    ended = [float(run.split(":")[2]) for run in records.lrange("probe:stubborn:ends", 0, -1)]
    assert len(begun) == len(ended) == 2
    assert begun[1] >= ended[0], "the retry started only after the first thread returned"


def test_chaos_every_task_completes_once_while_workers_are_killed(
    cluster: Cluster, records: redis.Redis
) -> None:
    cluster.env.update(PROBES)
    cluster.api()
    ids = []
    for n in range(2_000):
        body = {"key": f"c{n}", "ms": random.randint(20, 120)}
        ids.append(cluster.enqueue(taskName="probe", payload=body)["id"])

    def settled() -> bool:
        counts = {s: records.zcard(f"conveyor:{{default}}:{s}") for s in ("completed", "failed")}
        return counts["completed"] + counts["failed"] == len(ids)

    workers = [cluster.worker("--concurrency", "10") for _ in range(3)]
    killed: set[str] = set()
    while not settled() and len(killed) < 12:
        time.sleep(random.uniform(0.3, 1.0))
        victim = workers.pop(random.randrange(len(workers)))
        killed.add(str(victim.pid))
        victim.signal(signal.SIGKILL)
        victim.wait()
        workers.append(cluster.worker("--concurrency", "10"))
    wait_until(settled, timeout_s=120, what="every chaos task to settle")
    repeated = 0
    for n, task_id in enumerate(ids):
        task = cluster.task(task_id)
        assert task["status"] == "completed", task
        outcomes = Counter(entry["outcome"] for entry in task["history"])
        assert outcomes["completed"] == 1
        runs = starts(records, f"c{n}")
        if len(runs) > 1:
            repeated += 1
            # Only an execution cut short by a killed worker may repeat.
            assert {run.split(":")[0] for run in runs[:-1]} <= killed, runs
    print(f"chaos: {len(killed)} workers killed, {repeated} of {len(ids)} tasks ran twice")
