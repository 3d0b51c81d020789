"""`conveyor up`: API + workers (+ an embedded Redis) as one command, stopped by Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from tests.e2e.conftest import Cluster, free_port, wait_until


def _up(cluster: Cluster, env: dict[str, str]) -> tuple[int, int]:
    proc = cluster.start("up", "--workers", "2", "--port", str(cluster.port), env=env)
    wait_until(cluster._ready, timeout_s=30, what="the API behind conveyor up")
    task_id = cluster.enqueue(taskName="echo", payload={"hello": "up"})["id"]
    assert cluster.wait_status(task_id, "completed")["result"] == {"hello": "up"}
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.signal(signal.SIGINT)
    code = proc.wait(timeout_s=60)
    alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive
    return code, len(children)


def test_up_runs_api_and_workers_on_a_given_redis(cluster: Cluster) -> None:
    code, children = _up(cluster, {})
    assert code == 0
    assert children == 3  # the API and two workers


def test_up_starts_an_embedded_redis_when_none_answers(cluster: Cluster, tmp_path: Path) -> None:
    data = tmp_path / "redis-data"
    env = {"REDIS_URL": "", "EMBEDDED_REDIS_PORT": str(free_port()), "REDIS_DATA_DIR": str(data)}
    cluster.env.pop("REDIS_URL")
    code, children = _up(cluster, env)
    assert code == 0
    assert children == 4  # and the Redis server
    assert list(data.rglob("*.aof*")), "the embedded Redis keeps an append-only file"
