"""Live views: the workers' heartbeats and the server-sent feed of task transitions."""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

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


class Listener:
    """A thread reading GET /api/events (with `params`): each event of `kind` as it
    arrives, with the moment it did, until `done(events)` holds."""

    def __init__(
        self,
        cluster: Cluster,
        kind: str,
        done: Callable[[list[dict[str, Any]]], bool],
        **params: str,
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.subscribed = threading.Event()
        self._args = (cluster.url, kind, done, params)
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        assert self.subscribed.wait(10)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _listen(self) -> None:
        url, wanted, done, params = self._args
        with (
            httpx.Client(base_url=url, timeout=15) as client,
            client.stream("GET", "/api/events", params=params) as response,
        ):
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                    self.subscribed.set()
                elif line.startswith("data:") and kind == wanted:
                    self.events.append(json.loads(line.removeprefix("data:")))
                    self.arrivals.append(time.monotonic())
                    if done(self.events):
                        return


def test_the_event_feed_shows_a_task_s_transitions(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    listener = Listener(cluster, "task", lambda seen: seen[-1]["status"] == "completed")
    # The feed subscribes to Redis as the response starts: give it its first event early.
    task_id = cluster.enqueue(taskName="echo", payload={})["id"]
    listener.join(15)
    statuses = [event["status"] for event in listener.events if event["id"] == task_id]
    assert statuses[-3:] == ["waiting", "active", "completed"] or statuses == [
        "active",
        "completed",
    ]


def test_the_summary_feed_says_what_changed_at_most_once_a_second(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    listener = Listener(
        cluster, "changes", lambda got: sum(c["count"] for c in got) >= 450, summary="true"
    )
    tasks = [{"taskName": "echo", "payload": {"n": n}} for n in range(150)]
    response = cluster.http.post("/api/tasks/bulk", json={"tasks": tasks})
    assert response.status_code == 202, response.text
    ids = [task["id"] for task in response.json()["tasks"]]
    listener.join(20)

    # Each task waiting, active, completed: every transition counted, in few summaries.
    assert sum(changes["count"] for changes in listener.events) == 450
    first = listener.events[0]
    assert (first["queues"], first["ids"], first["more"]) == (["default"], ids[:100], True)
    gaps = [later - earlier for earlier, later in itertools.pairwise(listener.arrivals)]
    assert all(gap > 0.8 for gap in gaps), gaps
