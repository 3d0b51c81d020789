"""Live views: the workers' heartbeats and the server-sent feed of task transitions."""

from __future__ import annotations

import json
import signal
import threading

import httpx

from tests.e2e.conftest import Cluster, wait_until


def test_live_workers_come_and_go(cluster: Cluster) -> None:
    cluster.api()
    worker = cluster.worker("--concurrency", "7")

    def listed() -> list[dict[str, object]]:
        found: list[dict[str, object]] = cluster.http.get("/api/workers").json()["workers"]
        return found

    (entry,) = wait_until(listed, what="the worker's heartbeat")
    assert entry["concurrency"] == 7
    assert entry["queues"] == ["default"]
    assert str(entry["workerId"]).split(":")[1] == str(worker.pid)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    wait_until(lambda: not listed(), what="a stopped worker to leave the list")


def test_the_event_feed_shows_a_task_s_transitions(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    seen: list[dict[str, str]] = []
    subscribed = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=cluster.url, timeout=15) as client,
            client.stream("GET", "/api/events") as response,
        ):
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                    subscribed.set()
                elif line.startswith("data:") and kind == "task":
                    seen.append(json.loads(line.removeprefix("data:")))
                    if seen[-1]["status"] == "completed":
                        return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    subscribed.wait(10)
    # The feed subscribes to Redis as the response starts: give it its first event early.
    task_id = wait_until(
        lambda: cluster.enqueue(taskName="echo", payload={})["id"] if subscribed.is_set() else None
    )
    reader.join(15)
    statuses = [event["status"] for event in seen if event["id"] == task_id]
    assert statuses[-3:] == ["waiting", "active", "completed"] or statuses == [
        "active",
        "completed",
    ]
