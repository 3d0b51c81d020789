"""Real `conveyor` processes against the tests' Redis database, stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import TEST_REDIS_URL

CONVEYOR = [sys.executable, "-m", "interfaces.cli"]
LOCK_TTL_MS = 2_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        time.sleep(0.02)


class Proc:
    """One `conveyor` child process, with its output kept in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            argv, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout_s: float = 30.0) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._out.close()

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (every line must be JSON); a last line still
        being written is left for the next call."""
        finished = self.log.read_text().split("\n")[:-1]
        return [json.loads(line) for line in finished if line.strip()]


class Cluster:
    """Starts API and worker processes on a shared configuration; cleans up after the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            REDIS_URL=TEST_REDIS_URL,
            QUEUES="default,other",
            LOCK_TTL_MS=str(LOCK_TTL_MS),
            FILES_BASE_DIR=str(tmp_path / "files"),
            SHUTDOWN_GRACE_MS="5000",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        self.procs: list[Proc] = []
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        name = f"{args[0]}-{len(self.procs)}"
        proc = Proc([*CONVEYOR, *args], {**self.env, **(env or {})}, self.tmp_path / f"{name}.log")
        self.procs.append(proc)
        return proc

    def api(self) -> Proc:
        proc = self.start("api", "--port", str(self.port))
        wait_until(self._ready, what="the API to answer /ready")
        return proc

    def worker(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = self.start("worker", *args, env=env)
        wait_until(lambda: _logged(proc, "worker.started"), what="the worker to start")
        return proc

    def _ready(self) -> bool:
        try:
            return self.http.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def enqueue(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/api/tasks", json=body)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/tasks/{task_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait_status(self, task_id: str, *statuses: str, timeout_s: float = 20.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            task = self.task(task_id)
            return task if task["status"] in statuses else None

        result: dict[str, Any] = wait_until(reached, timeout_s, f"{task_id} to be {statuses}")
        return result

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.http.close()


def _logged(proc: Proc, event: str) -> bool:
    if proc.process.poll() is not None:
        raise AssertionError(f"process exited early: {proc.log.read_text()[-2000:]}")
    return any(line.get("event") == event for line in proc.lines())


@pytest.fixture
def records() -> Iterator[redis.Redis]:
    """A client of the test Redis, where probe tasks record what they did."""
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    flush = redis.Redis.from_url(TEST_REDIS_URL)
    flush.flushdb()
    group = Cluster(tmp_path)
    try:
        yield group
    finally:
        group.close()
        flush.flushdb()
        flush.close()
