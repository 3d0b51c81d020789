"""`conveyor up`: API + workers (+ an embedded Redis) as one command, stopped by Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import CONVEYOR, Cluster, Proc, free_port, wait_until
from tests.e2e.on_a_terminal import PtyProc

ADMIN_KEY = "ops-key-for-the-status-line-0123"
PRODUCER_KEY = "app-key-that-reads-no-stats-4567"
STATUS = re.compile(
    r"waiting (?P<waiting>\d+) \| active (?P<active>\d+) \| finished/s (?P<finished>[\d.]+|-)"
    r" \| failed/s (?P<failed>[\d.]+|-) \| workers (?P<workers>\d+)"
)


@pytest.fixture
def up(cluster: Cluster) -> Iterator[Callable[..., Proc]]:
    """Starts `conveyor up` with its output in a file; a test that fails before stopping it
    leaves none of its children behind (they share its session)."""
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        started.append(cluster.start("up", *args, "--port", str(cluster.port), env=env))
        return started[-1]

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _up(cluster: Cluster, up: Callable[..., Proc], env: dict[str, str]) -> tuple[int, int]:
    proc = up("--workers", "2", env=env)
    wait_until(cluster._ready, timeout_s=30, what="the API behind conveyor up")
    task_id = cluster.enqueue(taskName="echo", payload={"hello": "up"})["id"]
    assert cluster.wait_status(task_id, "completed")["result"] == {"hello": "up"}
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.signal(signal.SIGINT)
    code = proc.wait(timeout_s=60)
    alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive
    return code, len(children)


def test_up_runs_api_and_workers_on_a_given_redis(
    cluster: Cluster, up: Callable[..., Proc]
) -> None:
    code, children = _up(cluster, up, {})
    assert code == 0
    assert children == 3  # the API and two workers


def test_up_starts_an_embedded_redis_when_none_answers(
    cluster: Cluster, up: Callable[..., Proc], tmp_path: Path
) -> None:
    data = tmp_path / "redis-data"
    env = {"REDIS_URL": "", "EMBEDDED_REDIS_PORT": str(free_port()), "REDIS_DATA_DIR": str(data)}
    cluster.env.pop("REDIS_URL")
    code, children = _up(cluster, up, env)
    assert code == 0
    assert children == 4  # and the Redis server
    assert list(data.rglob("*.aof*")), "the embedded Redis keeps an append-only file"


@pytest.fixture
def on_a_terminal(cluster: Cluster) -> Iterator[Callable[..., PtyProc]]:
    """Starts `conveyor up --workers 2` on a pseudo-terminal, as a person at one would."""
    started: list[PtyProc] = []

    def start(**env: str) -> PtyProc:
        merged = {**cluster.env, "LOG_FORMAT": "auto", **env}
        for sized in ("COLUMNS", "LINES"):  # the terminal's own size must count
            merged.pop(sized, None)
        argv = [*CONVEYOR, "up", "--workers", "2", "--port", str(cluster.port)]
        started.append(PtyProc(argv, merged))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def _status(proc: PtyProc) -> dict[str, str] | None:
    shown = STATUS.fullmatch(proc.bottom())
    return shown.groupdict() if shown else None


def _shows(proc: PtyProc, **expected: str) -> bool:
    status = _status(proc)
    return status is not None and all(status[name] == value for name, value in expected.items())


def _rate(proc: PtyProc, name: str) -> float:
    status = _status(proc)
    return 0.0 if status is None or status[name] == "-" else float(status[name])


def _block(lines: list[str]) -> list[str] | None:
    """The six lines `conveyor up` prints about where things are, once they are all there."""
    if "conveyor up" not in lines:
        return None
    start = lines.index("conveyor up")
    block = lines[start : start + 6]
    return block if len(block) == 6 and block[-1].startswith("  Redis") else None


def _completed_line(task_id: str, name: str) -> re.Pattern[str]:
    return re.compile(
        r"\d{4}-\d\d-\d\dT[\d:.]+Z \[info\s*\] task\.completed\s+\[conveyor\] attempt=1 "
        rf"duration_ms=\d+ queue=default task_id={task_id} task_name={name} worker_id=\S+"
    )


def test_up_on_a_terminal_prints_its_addresses_and_a_live_status(
    cluster: Cluster, on_a_terminal: Callable[..., PtyProc]
) -> None:
    cluster.http.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    # The producer's key comes first: the status must find the admin key behind it.
    proc = on_a_terminal(API_KEYS=f"app:{PRODUCER_KEY}:producer,ops:{ADMIN_KEY}:admin")
    base = cluster.url
    block = wait_until(lambda: _block(proc.screen()), 30, "the addresses")
    assert block == [
        "conveyor up",
        f"  API        {base} (listening on every interface)",
        f"  dashboard  {base}/admin/queues (asks for an admin key of API_KEYS)",
        f"  docs       {base}/schema (also /schema/swagger)",
        f"  schema     {base}/schema/openapi.json",
        f"  Redis      {TEST_REDIS_URL} (REDIS_URL)",
    ]
    for path in ("/admin/queues", "/schema", "/schema/swagger", "/schema/openapi.json"):
        assert httpx.get(f"{base}{path}").status_code == 200, path
    wait_until(lambda: _shows(proc, waiting="0", active="0", workers="2"), 30, "the status")

    assert cluster.http.post("/api/queues/default/pause").status_code == 200
    ids = [cluster.enqueue(taskName="echo", payload={"n": n})["id"] for n in range(3)]
    wait_until(lambda: _shows(proc, waiting="3"), what="3 waiting in the status")
    assert cluster.http.post("/api/queues/default/resume").status_code == 200
    wait_until(lambda: _shows(proc, waiting="0") and _rate(proc, "finished") > 0, what="a rate")

    cluster.enqueue(taskName="fail", payload={"message": "no", "retryable": False})
    wait_until(lambda: _rate(proc, "failed") > 0, what="a failure rate in the status")
    sleeper = cluster.enqueue(taskName="sleep", payload={"ms": 30_000})["id"]
    wait_until(lambda: _shows(proc, active="1"), what="an active task in the status")
    assert cluster.http.post(f"/api/tasks/{sleeper}/cancel").status_code == 200
    wait_until(lambda: _shows(proc, active="0"), what="no active task in the status")

    screen = proc.screen()
    for task_id in ids:  # the workers' lines, each whole on its own row
        assert any(_completed_line(task_id, "echo").fullmatch(row) for row in screen), task_id
    assert ADMIN_KEY not in proc.raw()
    assert PRODUCER_KEY not in proc.raw()

    children = psutil.Process(proc.pid).children(recursive=True)
    proc.signal(signal.SIGINT)
    assert proc.wait(timeout_s=60) == 0
    assert not [c.pid for c in children if c.is_running() and c.status() != "zombie"]
    screen = proc.screen()
    assert any("up.child_stopped" in row for row in screen)
    assert not [row for row in screen if STATUS.search(row)], "a status left on the screen"


def test_the_status_says_when_the_api_does_not_answer_while_output_goes_on(
    cluster: Cluster, on_a_terminal: Callable[..., PtyProc]
) -> None:
    proc = on_a_terminal()
    wait_until(lambda: _shows(proc, workers="2"), 30, "the status")
    api = next(c for c in psutil.Process(proc.pid).children() if "api" in c.cmdline())
    sleeper = cluster.enqueue(taskName="sleep", payload={"ms": 1_500})["id"]
    api.suspend()
    try:
        wait_until(lambda: proc.bottom() == "api unreachable; retrying", what="api unreachable")
        done = _completed_line(sleeper, "sleep")
        wait_until(lambda: any(done.fullmatch(row) for row in proc.screen()), what="the worker")
    finally:
        api.resume()
    wait_until(lambda: _shows(proc, workers="2"), what="the status again")


def _logged(proc: Proc, event: str) -> dict[str, Any] | None:
    return next((line for line in proc.lines() if line.get("event") == event), None)


def test_up_on_a_pipe_logs_its_addresses_as_json_and_draws_no_status(
    cluster: Cluster, up: Callable[..., Proc]
) -> None:
    proc = up("--workers", "1")
    found = wait_until(lambda: _logged(proc, "up.addresses"), 30, "the addresses")
    assert {name: found[name] for name in ("api", "dashboard", "docs", "schema", "redis")} == {
        "api": cluster.url,
        "dashboard": f"{cluster.url}/admin/queues",
        "docs": f"{cluster.url}/schema",
        "schema": f"{cluster.url}/schema/openapi.json",
        "redis": TEST_REDIS_URL,
    }
    task_id = cluster.enqueue(taskName="echo", payload={})["id"]
    cluster.wait_status(task_id, "completed")
    proc.signal(signal.SIGINT)
    assert proc.wait(timeout_s=60) == 0
    text = proc.log.read_text()
    assert "\x1b" not in text
    assert "\r" not in text
    assert "finished/s" not in text
    assert _logged(proc, "up.child_stopped")  # and every line is JSON


def test_up_on_a_pipe_prints_its_addresses_as_text_with_console_logs(
    cluster: Cluster, up: Callable[..., Proc]
) -> None:
    proc = up("--workers", "1", env={"LOG_FORMAT": "console"})
    block = wait_until(lambda: _block(proc.log.read_text().split("\n")), 30, "the addresses")
    assert block[1] == f"  API        {cluster.url}"
    assert block[2] == f"  dashboard  {cluster.url}/admin/queues"
    proc.signal(signal.SIGINT)
    assert proc.wait(timeout_s=60) == 0
    text = proc.log.read_text()
    assert "\x1b" not in text
    assert "finished/s" not in text
