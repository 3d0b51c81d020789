"""Groups across three worker processes: a small group's tasks start within a second while
a large group's backlog of 5,000 is being worked through, and a group's concurrency limit
holds without holding back another group."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis

from tests.e2e.conftest import Cluster, wait_until
from tests.e2e.test_flow_limits import PROBES, spans

BULK_MAX = 1_000  # BulkEnqueueBody takes at most this many tasks a request


def start_cluster(cluster: Cluster) -> None:
    cluster.env.update(PROBES)
    cluster.api()
    for _ in range(3):
        cluster.worker("--concurrency", "10")


def enqueue_timed(cluster: Cluster, key: str, count: int, ms: int, group: str | None) -> list[Any]:
    item = {"taskName": "timed", "payload": {"key": key, "ms": ms}, "group": group}
    items = []
    for first in range(0, count, BULK_MAX):
        body = {"tasks": [item] * min(BULK_MAX, count - first)}
        response = cluster.http.post("/api/tasks/bulk", json=body)
        assert response.status_code == 202, response.text
        items += response.json()["tasks"]
    return items


def waiting(cluster: Cluster) -> int:
    return int(cluster.http.get("/api/stats").json()["waiting"])


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


def test_a_small_group_starts_at_once_behind_a_large_groups_backlog(
    cluster: Cluster, records: redis.Redis
) -> None:
    start_cluster(cluster)
    # 20 ms tasks, 30 at a time: 5,000 keep the workers busy for 3.3 s at the very least.
    enqueue_timed(cluster, "big", 5_000, 20, "big")
    wait_until(lambda: records.llen("probe:big:spans") >= 30, what="the big group to run")
    small = enqueue_timed(cluster, "small", 10, 0, "small")
    wait_until(lambda: records.llen("probe:small:spans") == 10, timeout_s=20, what="10 small")
    for item in small:
        task = cluster.task(item["id"])
        delay_ms = _ms(task["startedAt"]) - _ms(task["createdAt"])
        assert delay_ms < 1_000, (task["id"], delay_ms)
    # The backlog was still there: without groups the small tasks would have waited for it.
    # 30 slots of 20 ms clear at most 1,500 a second, however fast the machine.
    assert waiting(cluster) > 1_000


def running_at_most(found: list[tuple[float, float]]) -> int:
    events = sorted(
        [(start, 1) for start, _ in found] + [(end, -1) for _, end in found],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_a_group_concurrency_limit_holds_and_holds_back_no_other_group(
    cluster: Cluster, records: redis.Redis
) -> None:
    start_cluster(cluster)
    limits = {"groups": {"*": {"concurrency": 2}}}
    response = cluster.http.put("/api/queues/default/limits", json=limits)
    assert response.status_code == 200, response.text
    enqueue_timed(cluster, "first", 20, 150, "first")
    enqueue_timed(cluster, "second", 20, 150, "second")
    both = ("probe:first:spans", "probe:second:spans")
    wait_until(lambda: sum(records.llen(key) for key in both) == 40, 30, "40 tasks")
    first, second = spans(records, "first"), spans(records, "second")
    assert running_at_most(first) == 2  # never more, across three workers, and used
    assert running_at_most(second) == 2
    # The second group ran beside the first, not after it: four at once at times.
    assert running_at_most(first + second) == 4
    # 20 tasks two at a time take ten turns of 150 ms: the second group began long before
    # the first one's last turn.
    assert second[0][0] < first[-1][0] - 1.0
