"""The Prometheus document built from a stats snapshot: names, labels, units."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from application.get_stats import Stats, TypeStats
from application.meter import LOCKS_ACQUIRED, LOCKS_LOST, PICKUP, Meter, series
from domain.task import TaskStatus
from domain.values import QueueStats, WorkerInfo
from interfaces.http.metrics import exposition


def snapshot() -> Stats:
    counts = dict.fromkeys(TaskStatus, 0) | {TaskStatus.COMPLETED: 7, TaskStatus.FAILED: 2}
    queue = QueueStats("mail", True, counts, {"email": counts}, {"email": [40, 60]}, 9, 30)
    email = TypeStats(counts, p50_ms=40, p95_ms=60)
    pending = TypeStats(dict.fromkeys(TaskStatus, 0), p50_ms=None, p95_ms=None)
    return Stats(counts, [queue], {"email": email, "pending": pending}, 9, 30)


def document() -> str:
    worker = WorkerInfo("w1", ["mail"], 10, 3, 55, 1_000, 2_000)
    meter = Meter()
    meter.count(LOCKS_ACQUIRED, 3, "claim")
    meter.count(LOCKS_LOST)
    meter.observe(PICKUP, 0.003, "mail")
    meter.observe(PICKUP, 0.2, "mail")
    meter.observe(PICKUP, 99_999.0, "mail")
    return exposition(snapshot(), [worker], series(meter.drain())).decode()


def families() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = document()
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
        if family.name.startswith("conveyor_")
    }


def test_queues_are_labelled_by_name_and_status_with_their_pause() -> None:
    found = families()
    assert found["conveyor_tasks"][(("queue", "mail"), ("status", "completed"))] == 7
    assert found["conveyor_queue_paused"] == {(("queue", "mail"),): 1}
    assert found["conveyor_tasks_finished_recent"] == {
        (("window", "1h"),): 30,
        (("window", "1m"),): 9,
    }


def test_durations_are_in_seconds_and_absent_for_a_type_with_none() -> None:
    durations = families()["conveyor_task_duration_seconds"]
    assert durations == {
        (("quantile", "0.5"), ("task_name", "email")): 0.04,
        (("quantile", "0.95"), ("task_name", "email")): 0.06,
    }


def test_workers_are_counted_and_labelled_by_id() -> None:
    found = families()
    assert found["conveyor_workers"] == {(): 1}
    assert found["conveyor_worker_running_tasks"] == {(("worker_id", "w1"),): 3}
    assert found["conveyor_worker_concurrency"] == {(("worker_id", "w1"),): 10}
    assert found["conveyor_worker_processed_tasks"] == {(("worker_id", "w1"),): 55}


def test_what_workers_counted_is_a_counter_or_histogram_family_each() -> None:
    found = families()  # a counter's family is named without its _total
    assert found["conveyor_locks_acquired"] == {(("via", "claim"),): 3}
    assert found["conveyor_locks_lost"] == {(): 1}
    assert found["conveyor_locks_denied"] == {(): 0}  # there before its first count
    assert found["conveyor_fencing_refusals"] == {}
    assert found["conveyor_task_run_seconds"] == {}
    pickup = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(document())
        if family.name == "conveyor_pickup_latency_seconds"
        for sample in family.samples
    }
    bucket = "conveyor_pickup_latency_seconds_bucket"
    assert pickup[bucket, "0.005"] == 1
    assert pickup[bucket, "0.5"] == 2  # cumulative
    assert pickup[bucket, "1800.0"] == 2
    assert pickup[bucket, "+Inf"] == 3
    assert pickup["conveyor_pickup_latency_seconds_count", None] == 3
    assert pickup["conveyor_pickup_latency_seconds_sum", None] == 0.003 + 0.2 + 99_999.0
