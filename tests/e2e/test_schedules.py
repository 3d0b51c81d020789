"""A 1-second schedule under three workers and two API processes, all of them firing: each
slot becomes one task, with no slot left out, across a worker's SIGKILL and an API's
restart."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from typing import Any

import pytest
import redis

from interfaces.cli import main
from tests.e2e.conftest import Cluster, free_port, wait_until

PROBES = {"CONVEYOR_TASK_MODULES": "infrastructure.tasks.demo,tests.e2e.probe_tasks"}
RUN_S = 60.0


def schedule_tasks(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"search": f"schedule:{name}:", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = cluster.http.get("/api/tasks", params=params).json()
        found += [t for t in page["items"] if t["id"].startswith(f"schedule:{name}:")]
        cursor = page["nextCursor"]
        if not cursor:
            return found


def test_each_slot_fires_once_across_kills_and_restarts(
    cluster: Cluster, records: redis.Redis
) -> None:
    cluster.env.update(PROBES)
    api = cluster.api()
    second = cluster.start("api", "--port", str(free_port()))
    workers = [cluster.worker() for _ in range(3)]
    wait_until(lambda: any(line.get("event") == "api.started" for line in second.lines()))
    created = cluster.http.post(
        "/api/schedules",
        json={
            "name": "tick",
            "everyMs": 1000,
            "task": {"taskName": "probe", "payload": {"key": "t"}},
        },
    )
    assert created.status_code == 201, created.text
    anchor = _ms(created.json()["createdAt"])  # an interval counts from its creation
    started = time.monotonic()

    def at(seconds: float) -> None:
        wait_until(lambda: time.monotonic() - started >= seconds, timeout_s=RUN_S + 30)

    at(15)
    workers[0].signal(signal.SIGKILL)
    at(30)
    api.signal(signal.SIGTERM)
    api.wait()  # uvicorn ends gracefully, then re-raises the signal
    cluster.api()  # the same port again
    at(RUN_S)
    deleted = cluster.http.delete("/api/schedules/tick")
    assert deleted.status_code == 204

    tasks = schedule_tasks(cluster, "tick")
    slots = sorted(int(task["id"].rsplit(":", 1)[1]) for task in tasks)
    assert len(slots) >= RUN_S - 3, f"only {len(slots)} slots fired in {RUN_S} s"
    assert slots == [anchor + 1000 * k for k in range(1, len(slots) + 1)]  # no gap, no extra

    for task in tasks:
        cluster.wait_status(task["id"], "completed", timeout_s=30)
    starts = records.lrange("probe:t:starts", 0, -1)
    # One execution per slot; a task running on the killed worker runs once more.
    assert len(slots) <= len(starts) <= len(slots) + 1
    lateness = sorted(_ms(task["createdAt"]) - int(task["id"].rsplit(":", 1)[1]) for task in tasks)
    assert lateness[0] >= 0
    assert lateness[len(lateness) // 2] < 500, lateness


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_the_cli_manages_schedules(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.api()
    url = ["--url", cluster.url]

    def cli(*argv: str) -> tuple[int, str, str]:
        status = main([*argv, *url])
        out, err = capsys.readouterr()
        return status, out, err

    status, out, _ = cli(
        "schedules", "create", "nightly", "echo", "--cron", "30 2 * * *",
        "--timezone", "Europe/Paris", "--payload", '{"report": "daily"}',
        "--missed-policy", "all", "--overlap-policy", "skip",
    )  # fmt: skip
    assert status == 0, out
    assert "30 2 * * * (Europe/Paris)" in out
    assert "next runs:" in out
    status, out, _ = cli("schedules", "list")
    assert status == 0
    assert "nightly" in out
    assert "active" in out
    status, out, _ = cli("schedules", "pause", "nightly", "--json")
    assert json.loads(out)["status"] == "paused"
    status, out, _ = cli("schedules", "update", "nightly", "echo", "--every-ms", "60000")
    assert status == 0
    assert "every 60000 ms" in out
    status, out, _ = cli("schedules", "trigger", "nightly")
    assert status == 0
    assert out.startswith("enqueued schedule:nightly:now-")
    status, _, err = cli("schedules", "create", "bad", "echo", "--cron", "61 * * * *")
    assert status == 1
    assert "cron" in err
    status, _, err = cli(
        "schedules", "create", "bad", "echo", "--cron", "* * * * *", "--payload", "[]"
    )
    assert status == 2
    assert "JSON object" in err
    status, out, _ = cli("schedules", "delete", "nightly")
    assert (status, out.strip()) == (0, "deleted nightly")
    status, _, err = cli("schedules", "show", "nightly")
    assert status == 1
    assert "not found" in err
