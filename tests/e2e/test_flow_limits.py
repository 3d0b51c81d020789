"""Flow limits across three worker processes, judged by the tasks' own start and end
times: a rate holds within 10%, and a concurrency limit is never exceeded."""

from __future__ import annotations

from datetime import datetime

import redis

from tests.e2e.conftest import Cluster, wait_until

PROBES = {"CONVEYOR_TASK_MODULES": "infrastructure.tasks.demo,tests.e2e.probe_tasks"}


def spans(records: redis.Redis, key: str) -> list[tuple[float, float]]:
    found = []
    for entry in records.lrange(f"probe:{key}:spans", 0, -1):
        start, end = entry.split(":")
        found.append((float(start), float(end)))
    return sorted(found)


def start_all(cluster: Cluster, limits: dict[str, object], key: str, count: int, ms: int) -> None:
    cluster.env.update(PROBES)
    cluster.api()
    for _ in range(3):
        cluster.worker("--concurrency", "10")
    response = cluster.http.put("/api/queues/default/limits", json=limits)
    assert response.status_code == 200, response.text
    body = {"tasks": [{"taskName": "timed", "payload": {"key": key, "ms": ms}}] * count}
    assert cluster.http.post("/api/tasks/bulk", json=body).status_code == 202


def test_a_rate_limit_holds_within_ten_percent(cluster: Cluster, records: redis.Redis) -> None:
    start_all(cluster, {"rate": {"max": 20, "windowMs": 1000}}, "rate", 100, 0)
    wait_until(lambda: records.llen("probe:rate:spans") == 100, timeout_s=30, what="100 tasks")
    # A task starts when a worker claims it: its startedAt, on that worker's clock.
    page = cluster.http.get("/api/tasks", params={"taskName": "timed", "limit": 100}).json()
    starts = sorted(_seconds(task["startedAt"]) for task in page["items"])
    assert len(starts) == 100
    # 100 starts at 20 per second take five windows: four whole ones from the first start.
    achieved = sum(1 for t in starts if t < starts[0] + 4.0) / 4.0
    assert 18 <= achieved <= 22, achieved
    busiest = max(sum(1 for t in starts if first <= t < first + 1.0) for first in starts)
    assert busiest <= 22, busiest  # in any one second, within 10% (the workers' clocks)


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_a_concurrency_limit_is_never_exceeded(cluster: Cluster, records: redis.Redis) -> None:
    start_all(cluster, {"taskTypes": {"timed": {"concurrency": 2}}}, "conc", 20, 150)
    wait_until(lambda: records.llen("probe:conc:spans") == 20, timeout_s=30, what="20 tasks")
    events = sorted(
        [(start, 1) for start, _ in spans(records, "conc")]
        + [(end, -1) for _, end in spans(records, "conc")],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2  # never more, and the limit was used
