"""Redis going away: a restart under load loses nothing; Redlock needs a quorum of masters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from infrastructure.embedded_redis import EmbeddedRedis
from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import Cluster, Proc, free_port, wait_until

PROBES = "infrastructure.tasks.demo,tests.e2e.probe_tasks"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    """Redis servers of the test's own (AOF on), on free ports, stopped by PID at the end."""
    started: list[EmbeddedRedis] = []
    try:
        for n in range(3):
            server = EmbeddedRedis(tmp_path / f"redis-{n}", port=free_port())
            server.start()
            started.append(server)
        yield started
    finally:
        for server in started:
            server.stop()


class Producer(threading.Thread):
    """Enqueues probe tasks at a steady pace over its own HTTP connection."""

    def __init__(self, url: str, count: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.count = count
        self.accepted: list[str] = []
        self.statuses: Counter[int] = Counter()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            for n in range(self.count):
                body = {"taskName": "probe", "payload": {"key": f"r{n}", "ms": 5}}
                response = http.post("/api/tasks", json=body)
                self.statuses[response.status_code] += 1
                if response.status_code == 202:
                    self.accepted.append(response.json()["id"])
                time.sleep(0.01)


def test_a_redis_restart_under_load_loses_no_accepted_task(
    cluster: Cluster, servers: list[EmbeddedRedis], records: redis.Redis
) -> None:
    queue_redis = servers[0]
    cluster.env.update(
        REDIS_URL=queue_redis.url, PROBE_REDIS_URL=TEST_REDIS_URL, CONVEYOR_TASK_MODULES=PROBES
    )
    api = cluster.api()
    workers = [cluster.worker() for _ in range(2)]
    producer = Producer(cluster.url, 400)
    producer.start()
    wait_until(lambda: len(producer.accepted) > 100, what="load before the restart")

    queue_redis.stop()  # SHUTDOWN: Redis writes its AOF and exits
    down = cluster.http.get("/ready")
    assert down.status_code == 503
    assert down.json()["error"] == "unavailable"
    wait_until(lambda: producer.statuses[503] > 0, what="an enqueue refused with 503")
    queue_redis.start()

    producer.join(timeout=120)
    assert set(producer.statuses) <= {202, 503}, producer.statuses
    cluster.http.timeout = httpx.Timeout(30)
    for task_id in producer.accepted:
        assert cluster.wait_status(task_id, "completed", timeout_s=60)["id"] == task_id
    for proc in [api, *workers]:
        assert proc.process.poll() is None, "no process had to be restarted"


def lock_refusals(proc: Proc) -> list[str]:
    return [
        line.get("reason", "") for line in proc.lines() if line.get("event") == "task.lock_denied"
    ]


def test_locks_need_a_majority_of_redlock_masters(
    cluster: Cluster, servers: list[EmbeddedRedis], records: redis.Redis
) -> None:
    cluster.env.update(
        REDLOCK_URLS=",".join(server.url for server in servers),
        CONVEYOR_TASK_MODULES=PROBES,
        LOCK_RETRY_MS="300",
    )
    cluster.api()
    worker = cluster.worker()

    servers[0].stop()
    one_down = cluster.enqueue(taskName="probe", payload={"key": "one-down"})
    cluster.wait_status(one_down["id"], "completed")

    servers[1].stop()
    two_down = cluster.enqueue(taskName="probe", payload={"key": "two-down"})
    wait_until(lambda: len(lock_refusals(worker)) >= 2, what="refusals for want of quorum")
    assert "no quorum" in lock_refusals(worker)[-1]
    assert records.llen("probe:two-down:starts") == 0
    assert cluster.task(two_down["id"])["attempts"] == 0

    servers[1].start()
    done = cluster.wait_status(two_down["id"], "completed")
    assert done["attempts"] == 1
    assert records.llen("probe:two-down:starts") == 1
