"""The Prometheus document built from a stats snapshot: names, labels, units."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from application.get_stats import Stats, TypeStats
from domain.task import TaskStatus
from domain.values import QueueStats, WorkerInfo
from interfaces.http.metrics import exposition


def snapshot() -> Stats:
    counts = dict.fromkeys(TaskStatus, 0) | {TaskStatus.COMPLETED: 7, TaskStatus.FAILED: 2}
    queue = QueueStats("mail", True, counts, {"email": counts}, {"email": [40, 60]}, 9, 30)
    email = TypeStats(counts, p50_ms=40, p95_ms=60)
    pending = TypeStats(dict.fromkeys(TaskStatus, 0), p50_ms=None, p95_ms=None)
    return Stats(counts, [queue], {"email": email, "pending": pending}, 9, 30)


def families() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    worker = WorkerInfo("w1", ["mail"], 10, 3, 55, 1_000, 2_000)
    text = exposition(snapshot(), [worker]).decode()
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
