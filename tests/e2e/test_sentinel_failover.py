"""Redis Sentinel: a master, a replica and three sentinels on loopback; the API and two
workers follow the master the sentinels name. Under a steady trickle of enqueues the master
is killed: the API answers 503 until the sentinels promote the replica, the workers carry on
without a restart, every task that survived completes once, and the figures are printed
(`pytest -s`) for the README."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
import redis

from infrastructure.embedded_redis import find_redis_server
from tests.e2e.conftest import Cluster, free_port, wait_until

pytestmark = pytest.mark.slow

MASTER = "conveyor-test"
DOWN_AFTER_MS = 1_000


@dataclass
class Servers:
    """redis-server processes of the test's own, stopped by PID."""

    tmp_path: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[int, BinaryIO] = field(default_factory=dict)

    def redis(self, *options: str) -> int:
        port = free_port()
        self._start(port, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.tmp_path), *options)  # fmt: skip
        return port

    def sentinel(self, master_port: int) -> int:
        port = free_port()
        config = self.tmp_path / f"sentinel-{port}.conf"  # a sentinel rewrites its own
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.tmp_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self._start(port, str(config), "--sentinel")
        return port

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)
        self.logs.pop(port).close()

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill(port)

    def _start(self, port: int, *args: str) -> None:
        log = self.logs[port] = (self.tmp_path / f"redis-{port}.log").open("wb")
        self.processes[port] = subprocess.Popen(
            [find_redis_server(), *args], stdout=log, stderr=subprocess.STDOUT
        )
        client = redis.Redis(port=port)
        wait_until(lambda: _answers(client), what=f"redis-server on {port}")
        client.close()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    found = Servers(tmp_path)
    try:
        yield found
    finally:
        found.stop()


def primary_and_replica(servers: Servers) -> tuple[int, int]:
    """A master and its replica, in sync: not just connected, since a diskless first sync
    waits seconds before it starts, and the replica would hold nothing meanwhile."""
    primary = servers.redis()
    replica = servers.redis("--replicaof", "127.0.0.1", str(primary))
    client = redis.Redis(port=replica, decode_responses=True)
    try:
        wait_until(lambda: client.info("replication")["master_link_status"] == "up",
                   timeout_s=30, what="the replica to be in sync")  # fmt: skip
    finally:
        client.close()
    return primary, replica


def master_port(sentinel: int) -> int | None:
    client = redis.Redis(port=sentinel, decode_responses=True)
    try:
        address = client.sentinel_get_master_addr_by_name(MASTER)
    except redis.RedisError:
        return None
    finally:
        client.close()
    return int(address[1]) if address else None


class Trickle(threading.Thread):
    """Enqueues one task every few milliseconds until stopped, noting each answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=10)
        self.accepted: list[str] = []
        self.refused: list[float] = []  # when an enqueue was answered other than 202
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            n += 1
            try:
                response = self.http.post("/api/tasks", json={"taskName": "echo",
                                                               "payload": {"n": n}})  # fmt: skip
            except httpx.HTTPError:
                self.refused.append(time.monotonic())
                continue
            if response.status_code == 202:
                self.accepted.append(response.json()["id"])
            else:
                assert response.status_code == 503, response.text  # never a 500
                self.refused.append(time.monotonic())
            time.sleep(0.005)


def test_a_master_killed_under_load_is_followed_without_restarts(
    servers: Servers, tmp_path: Path
) -> None:
    primary, replica = primary_and_replica(servers)
    sentinels = [servers.sentinel(primary) for _ in range(3)]
    sentinel_client = redis.Redis(port=sentinels[0], decode_responses=True)
    wait_until(lambda: len(sentinel_client.sentinel_slaves(MASTER)) == 1, timeout_s=30,
               what="the sentinels to know the replica")  # fmt: skip

    cluster = Cluster(tmp_path)
    cluster.env.update(
        REDIS_URL=f"redis://127.0.0.1:{primary}/0",  # only its database counts
        REDIS_SENTINELS=",".join(f"127.0.0.1:{port}" for port in sentinels),
        REDIS_MASTER_NAME=MASTER,
    )
    try:
        cluster.api()
        workers = [cluster.worker(), cluster.worker()]
        trickle = Trickle(cluster.url)
        trickle.start()
        wait_until(lambda: len(trickle.accepted) >= 100, what="enqueues before the kill")

        killed_at = time.monotonic()
        servers.kill(primary)
        wait_until(lambda: master_port(sentinels[0]) == replica, timeout_s=30,
                   what="the sentinels to promote the replica")  # fmt: skip
        promoted_at = time.monotonic()
        before = len(trickle.accepted)
        wait_until(lambda: len(trickle.accepted) >= before + 100, timeout_s=30,
                   what="enqueues on the new master")  # fmt: skip
        trickle.halt.set()
        trickle.join(15)
        trickle.http.close()

        unanswered = [at for at in trickle.refused if at >= killed_at]
        outage_s = (max(unanswered) - killed_at) if unanswered else 0.0
        states = {task_id: _status(cluster, task_id) for task_id in trickle.accepted}
        lost = [task_id for task_id, state in states.items() if state is None]
        for task_id, state in states.items():
            if state is not None:
                cluster.wait_status(task_id, "completed", timeout_s=30)
        histories = [cluster.task(task_id)["history"] for task_id in states if task_id not in lost]
        print(  # the figures the README reports
            f"\nsentinel failover: promoted {promoted_at - killed_at:.1f} s after the kill; "
            f"enqueues refused for {outage_s:.1f} s ({len(unanswered)} answers 503); "
            f"{len(trickle.accepted)} accepted, {len(lost)} lost"
        )

        assert all(worker.process.poll() is None for worker in workers)  # no restart
        assert all(
            sum(entry["outcome"] == "completed" for entry in history) == 1 for history in histories
        )
        assert trickle.accepted[-1] not in lost  # after the failover nothing goes missing
    finally:
        cluster.close()
        sentinel_client.close()


def _status(cluster: Cluster, task_id: str) -> str | None:
    response = cluster.http.get(f"/api/tasks/{task_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def test_with_enqueue_replicas_no_202_before_a_replica_holds_the_task(
    servers: Servers, tmp_path: Path
) -> None:
    primary, replica = primary_and_replica(servers)
    cluster = Cluster(tmp_path)
    cluster.env.update(
        REDIS_URL=f"redis://127.0.0.1:{primary}/0",
        ENQUEUE_REPLICAS="1",
        ENQUEUE_REPLICAS_TIMEOUT_MS="300",
    )
    try:
        cluster.api()
        body = {"taskName": "echo", "payload": {"n": 1}, "customJobId": "held-by-a-replica"}
        assert cluster.http.post("/api/tasks", json=body).status_code == 202

        servers.processes[replica].send_signal(signal.SIGSTOP)
        late = {**body, "customJobId": "not-confirmed"}
        refused = cluster.http.post("/api/tasks", json=late)
        assert refused.status_code == 503, refused.text
        assert "enqueue again with the same id" in refused.json()["detail"]
        servers.processes[replica].send_signal(signal.SIGCONT)

        # Stored on the master already: the same task (200), confirmed on the replica now.
        again = cluster.http.post("/api/tasks", json=late)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == "not-confirmed"
    finally:
        servers.processes[replica].send_signal(signal.SIGCONT)
        cluster.close()
