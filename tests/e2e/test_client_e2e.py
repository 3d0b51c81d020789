"""The Python client and `conveyor enqueue` against a real API and worker."""

from __future__ import annotations

import json
import subprocess

import pytest

from interfaces.client import AsyncConveyorClient, ConveyorClient, NotFound
from tests.e2e.conftest import CONVEYOR, Cluster


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    cluster.api()
    cluster.worker()
    return cluster


def test_the_sync_client_enqueues_and_waits_for_the_outcome(running: Cluster) -> None:
    with ConveyorClient(running.url) as conveyor:
        task = conveyor.enqueue("echo", {"hello": "sync"}, priority=1)
        assert task["status"] in ("waiting", "active", "completed")
        done = conveyor.wait(task["id"], 15)
    assert done["status"] == "completed"
    assert done["result"] == {"hello": "sync"}


async def test_the_async_client_enqueues_and_waits_for_the_outcome(running: Cluster) -> None:
    async with AsyncConveyorClient(running.url) as conveyor:
        task = await conveyor.enqueue("echo", {"hello": "async"}, task_id="async-1")
        again = await conveyor.enqueue("echo", {"hello": "async"}, task_id="async-1")
        done = await conveyor.wait(task["id"], 15)
    assert again["id"] == "async-1"
    assert done["status"] == "completed"
    assert done["result"] == {"hello": "async"}


def test_an_unknown_id_is_not_found(cluster: Cluster) -> None:
    cluster.api()
    with ConveyorClient(cluster.url) as conveyor, pytest.raises(NotFound) as caught:
        conveyor.get("no-such-task")
    assert caught.value.status == 404
    assert caught.value.error == "not_found"


def test_the_cli_enqueues_and_waits(running: Cluster) -> None:
    argv = [*CONVEYOR, "enqueue", "echo", "--payload", '{"a":1}', "--wait", "10", "--json"]
    env = {**running.env, "CONVEYOR_URL": running.url}
    finished = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert finished.returncode == 0, finished.stderr
    task = json.loads(finished.stdout)
    assert task["status"] == "completed"
    assert task["result"] == {"a": 1}
