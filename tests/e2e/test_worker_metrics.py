"""What workers count reaches /metrics through their heartbeats: locks, pickups, run times,
round trips; and a worker paused past its lock TTL shows as a lost lock (or a refused
outcome) and a recovered stall."""

from __future__ import annotations

import signal

import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import LOCK_TTL_MS, Cluster, wait_until
from tests.e2e.test_reliability import running_probe

HEARTBEAT_S = 15.0  # a beat every 5 s hands the counts over: a few beats at most


def samples(cluster: Cluster) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = cluster.http.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(cluster: Cluster, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, found), value in samples(cluster).items()
        if sample == name and wanted <= set(found)
    )


def test_locks_pickups_run_times_and_round_trips_are_counted(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    ids = [cluster.enqueue(taskName="echo", payload={"n": n})["id"] for n in range(5)]
    for task_id in ids:
        cluster.wait_status(task_id, "completed")

    def counted() -> bool:
        return (
            total(cluster, "conveyor_locks_acquired_total") >= 5
            and total(cluster, "conveyor_pickup_latency_seconds_count", queue="default") >= 5
            and total(cluster, "conveyor_task_run_seconds_count", task_name="echo") >= 5
            and total(cluster, "conveyor_redis_round_trip_seconds_count") >= 1
        )

    wait_until(counted, timeout_s=HEARTBEAT_S, what="the worker's counts in /metrics")
    assert total(cluster, "conveyor_locks_denied_total") == 0
    assert total(cluster, "conveyor_fencing_refusals_total") == 0
    assert total(cluster, "conveyor_task_run_seconds_bucket", task_name="echo", le="+Inf") >= 5


def test_a_worker_paused_past_its_ttl_counts_a_lost_lock_and_a_recovered_stall(
    cluster: Cluster, records: redis.Redis
) -> None:
    paused, task = running_probe(cluster, records, "metered", 2 * LOCK_TTL_MS)
    paused.signal(signal.SIGSTOP)
    cluster.wait_status(task["id"], "completed", timeout_s=30)
    paused.signal(signal.SIGCONT)

    def counted() -> bool:
        lost = total(cluster, "conveyor_locks_lost_total")
        refused = total(cluster, "conveyor_fencing_refusals_total")
        stalls = total(cluster, "conveyor_stalls_recovered_total", queue="default")
        return lost + refused >= 1 and stalls >= 1

    wait_until(counted, timeout_s=30, what="the lost lock and the stall in /metrics")
