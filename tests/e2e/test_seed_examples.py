"""The seeds' examples against real `conveyor api` and `conveyor worker` processes.

The JSON bodies and query strings are the seed documents' own (see
tests/integration/test_seed_compat.py, which checks the routes without a worker).
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.conftest import Cluster, wait_until
from tests.integration.test_seed_compat import (
    SEED_001_CREATE_JOB,
    SEED_001_EXPORT,
    SEED_001_TASK_TYPES,
    SEED_003_ENQUEUE,
)

JSON = {"content-type": "application/json"}


class Inbox:
    """An aiosmtpd handler that keeps the messages it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def post_raw(cluster: Cluster, path: str, body: str) -> dict[str, Any]:
    response = cluster.http.post(path, content=body.encode(), headers=JSON)
    assert response.status_code in (200, 202), response.text
    result: dict[str, Any] = response.json()
    return result


def job_status(cluster: Cluster, job_id: str, status: str) -> dict[str, Any]:
    """Wait until seed 001's listing shows the job in `status`; the job as listed then."""

    def listed() -> dict[str, Any] | None:
        jobs = cluster.http.get("/api/jobs", params={"status": status}).json()["jobs"]
        return next((job for job in jobs if job["id"] == job_id), None)

    found: dict[str, Any] = wait_until(listed, 20.0, f"job {job_id} to be {status}")
    return found


def test_seed_000_post_tasks_runs_the_task(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    response = cluster.http.post("/tasks", json={"taskName": "echo", "payload": {"n": 1}})
    assert response.status_code == 200
    assert response.json()["message"] == "Task enqueued successfully"
    task = cluster.wait_status(response.json()["id"], "completed")
    assert task["result"] == {"n": 1}


def test_seed_001_write_file_and_create_folder_jobs_act_under_the_base_dir(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.api()
    cluster.worker()
    folder, write, _ = SEED_001_TASK_TYPES
    jobs = [
        post_raw(cluster, "/api/job", f'{{"task": {task}, "scheduled_at": "2026-02-19T10:00:00Z"}}')
        for task in (folder, write)
    ]
    done = [job_status(cluster, job["id"], "completed") for job in jobs]
    base = tmp_path / "files"
    assert (base / "path/to/folder").is_dir()
    assert (base / "path/to/file.txt").read_text() == "File content here"
    for job in done:
        assert job["picked_at"] is not None
        assert job["completed_at"] is not None
        assert job["completed_at"] >= job["started_at"]


def test_seed_001_send_email_example_is_delivered_then_exported(
    cluster: Cluster, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    cluster.api()
    cluster.worker(env={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)})
    created = post_raw(cluster, "/api/job", SEED_001_CREATE_JOB)
    job_status(cluster, created["id"], "completed")
    [message] = inbox.messages
    assert message["To"] == "user@example.com"
    assert message["Subject"] == "Hello"
    assert message.get_content().strip() == "This is a test email"
    response = cluster.http.get(SEED_001_EXPORT)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(row["id"], row["status"]) for row in rows] == [(created["id"], "completed")]


def test_seed_001_cancel_of_a_running_job_is_recorded_by_its_worker(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    task_id = cluster.enqueue(taskName="sleep", payload={"ms": 30_000})["id"]
    job_status(cluster, task_id, "running")
    asked = cluster.http.post(f"/api/cancel/{task_id}")
    assert asked.status_code == 200
    job_status(cluster, task_id, "cancelled")


def test_seed_003_enqueue_example_completes_after_its_delay(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    task = post_raw(cluster, "/jobs/enqueue", SEED_003_ENQUEUE)
    assert task["status"] == "delayed"
    done = cluster.wait_status(task["id"], "completed", timeout_s=30.0)
    started = datetime.fromisoformat(done["startedAt"])
    assert started - datetime.fromisoformat(done["createdAt"]) >= timedelta(milliseconds=5000)
    assert cluster.http.get(f"/jobs/{task['id']}").json()["status"] == "completed"
    assert cluster.http.get("/jobs/stats").json()["completed"] == 1


def test_seed_003_kill_stops_a_running_job(cluster: Cluster) -> None:
    cluster.api()
    worker = cluster.worker()
    task = post_raw(cluster, "/jobs/enqueue", '{"type": "sleep", "payload": {"ms": 30000}}')
    cluster.wait_status(task["id"], "active")
    killed = cluster.http.post(f"/jobs/{task['id']}/kill")
    assert killed.status_code == 200
    assert killed.json()["status"] == "failed"
    failed = cluster.http.get("/jobs/failed/jobs").json()["items"]
    assert [item["id"] for item in failed] == [task["id"]]
    # The worker stopped the handler and wrote nothing over the operator's outcome.
    wait_until(
        lambda: any(line.get("event") == "task.killed" for line in worker.lines()),
        what="the worker to stop the killed handler",
    )
    assert cluster.task(task["id"])["status"] == "failed"
    assert cluster.task(task["id"])["error"]["type"] == "Killed"


def test_seed_003_paused_queue_runs_nothing_until_resumed(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker("--queues", "default,other")
    assert cluster.http.post("/jobs/pause").json() == {"queue": "default", "paused": True}
    held = post_raw(cluster, "/jobs/enqueue", '{"type": "echo", "payload": {}}')
    # The worker is busy meanwhile with another queue, and leaves the paused one alone.
    other = cluster.enqueue(taskName="echo", payload={}, queue="other")
    cluster.wait_status(other["id"], "completed")
    assert cluster.task(held["id"])["status"] == "waiting"
    assert cluster.http.post("/jobs/resume").json() == {"queue": "default", "paused": False}
    cluster.wait_status(held["id"], "completed")
