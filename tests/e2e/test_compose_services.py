"""docker-compose.yml's services as local processes: each runs its compose command with its
compose environment, service names turned into loopback addresses on free ports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from infrastructure.embedded_redis import find_redis_server, redis_answers
from tests import compose
from tests.e2e.conftest import Proc, free_port, wait_until
from tests.redis_cluster import cluster_port

pytestmark = pytest.mark.slow

# Where the image's PATH finds `conveyor` and `python` (/opt/conveyor/bin): the venv's bin.
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"  # what the compose file binds the API to
# Options a Redis container may set for itself, each with a value, which a local server
# must choose afresh; --daemonize would leave a process the test cannot stop by PID. A
# cluster node announces its service name, which resolves in the compose network only: a
# local one gives its loopback address instead.
REDIS_OWN_OPTIONS = {
    "--port", "--bind", "--dir", "--logfile", "--daemonize",
    "--cluster-announce-hostname", "--cluster-preferred-endpoint-type",
}  # fmt: skip


@dataclass
class Running:
    service: str
    proc: Proc
    ports: dict[str, str]  # the container's port -> the local one
    env: dict[str, str]


class Deployment:
    """What `docker compose up` starts, run as processes of the test's own."""

    def __init__(self, config: dict[str, Any], profiles: Sequence[str], tmp_path: Path) -> None:
        self.services = compose.running(config, profiles)
        self.redis = compose.redis_addresses(config, profiles)
        self.tmp_path = tmp_path
        self.addresses: dict[str, str] = {}  # "redis:6379" -> "127.0.0.1:<port>"
        self.processes: list[Running] = []

    def start(self) -> None:
        for name in self.redis:
            self._start_redis(name)
        if self.cluster_nodes:
            self._create_cluster()
        for name, service in self.services.items():
            if service["command"][0] == "conveyor":
                for _ in range(service.get("deploy", {}).get("replicas", 1)):
                    self._start_conveyor(name, service)

    def stop(self) -> None:
        for running in reversed(self.processes):
            running.proc.stop()

    def of(self, service: str) -> list[Running]:
        return [running for running in self.processes if running.service == service]

    def redis_url(self, service: str) -> str:
        return f"redis://{self.addresses[self.redis[service]]}/0"

    @property
    def cluster_nodes(self) -> list[str]:
        """The Redis services that run as Cluster nodes."""
        return [
            name for name in self.redis if "--cluster-enabled" in self.services[name]["command"]
        ]

    def _create_cluster(self) -> None:
        """What the one-shot init service does (`redis-cli --cluster create` of the
        nodes), on the local nodes' addresses."""
        nodes = [self.addresses[self.redis[name]] for name in self.cluster_nodes]
        cli = Path(find_redis_server()).with_name("redis-cli")
        argv = [str(cli) if cli.exists() else "redis-cli", "--cluster", "create", *nodes]
        done = subprocess.run([*argv, "--cluster-yes"], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

        def joined() -> bool:
            info = redis.Redis.from_url(self.redis_url(self.cluster_nodes[0]))
            try:
                return bool(info.cluster("INFO")["cluster_state"] == "ok")
            finally:
                info.close()

        wait_until(joined, 30, "the cluster to be up")

    def _start_redis(self, name: str) -> None:
        node = "--cluster-enabled" in self.services[name]["command"]
        port = str(cluster_port() if node else free_port())  # a node's bus port must fit
        data = self.tmp_path / name
        data.mkdir()
        argv = [
            find_redis_server(),
            *_without(self.services[name]["command"][1:], REDIS_OWN_OPTIONS),
            "--port", port, "--bind", LOOPBACK, "--dir", str(data),
        ]  # fmt: skip
        env = {"PATH": os.environ["PATH"]}
        proc = Proc(argv, env, self.tmp_path / f"{name}.log")
        self.processes.append(Running(name, proc, {}, env))
        self.addresses[self.redis[name]] = f"{LOOPBACK}:{port}"
        wait_until(lambda: redis_answers(self.redis_url(name)), what=f"{name} to answer")

    def _start_conveyor(self, name: str, service: dict[str, Any]) -> None:
        command = list(service["command"])
        ports = {}
        if "--port" in command:
            at = command.index("--port") + 1
            ports[command[at]] = str(free_port())
            command[at] = ports[command[at]]
        mounts = self._mounts(service)
        environment = service.get("environment") or {}
        env = {"PATH": os.environ["PATH"]}
        env.update(
            {key: self.localize(str(value), ports, mounts) for key, value in environment.items()}
        )
        log = self.tmp_path / f"{name}-{len(self.processes)}.log"
        proc = Proc([_executable(command[0]), *command[1:]], env, log)
        self.processes.append(Running(name, proc, ports, env))

    def _mounts(self, service: dict[str, Any]) -> dict[str, Path]:
        """The container's mount points -> local directories, one per named volume."""
        found = {}
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source, target = volume.split(":")[:2]
            else:
                source, target = volume["source"], volume["target"]
            found[target] = self.tmp_path / "volumes" / source
            found[target].mkdir(parents=True, exist_ok=True)
        return found

    def localize(
        self, value: str, ports: dict[str, str], mounts: dict[str, Path] | None = None
    ) -> str:
        """A value as the local processes need it: service names in URLs, the container's
        own ports and its mount points replaced."""
        if value == ALL_INTERFACES:
            return LOOPBACK
        for address, local in self.addresses.items():
            value = re.sub(rf"(?<=//){re.escape(address)}\b", local, value)
        for port, local_port in ports.items():
            value = re.sub(
                rf"\b(127\.0\.0\.1|localhost):{port}\b", f"{LOOPBACK}:{local_port}", value
            )
        for target, directory in (mounts or {}).items():
            if value == target or value.startswith(f"{target}/"):
                value = str(directory) + value.removeprefix(target)
        return value

    def healthy(self, running: Running) -> bool:
        """The service's compose healthcheck, run beside the process as Docker runs it in
        the container."""
        kind, *test = self.services[running.service]["healthcheck"]["test"]
        test = [self.localize(word, running.ports) for word in test]
        argv = [_executable(test[0]), *test[1:]] if kind == "CMD" else ["sh", "-c", *test]
        done = subprocess.run(argv, env=running.env, capture_output=True, timeout=30, check=False)
        return done.returncode == 0


def _without(args: list[str], options: set[str]) -> list[str]:
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        else:
            kept.append(arg)
    return kept


def _executable(name: str) -> str:
    return str(VENV_BIN / name) if (VENV_BIN / name).exists() else name


def _started(running: Running) -> bool:
    if running.proc.process.poll() is not None:
        raise AssertionError(f"{running.service} exited: {running.proc.log.read_text()[-2000:]}")
    return any(line.get("event") == "worker.started" for line in running.proc.lines())


Up = Callable[..., Deployment]


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Up]:
    started: list[Deployment] = []

    def up(profiles: Sequence[str] = (), env: dict[str, str] | None = None) -> Deployment:
        deployment = Deployment(compose.resolved(profiles, env), profiles, tmp_path)
        started.append(deployment)
        deployment.start()
        (api,) = deployment.of("api")
        wait_until(lambda: deployment.healthy(api), 30, "the api's healthcheck to pass")
        wait_until(lambda: all(map(_started, deployment.of("worker"))), 30, "every worker")
        return deployment

    try:
        yield up
    finally:
        for deployment in started:
            deployment.stop()


def _api(deployment: Deployment) -> httpx.Client:
    (api,) = deployment.of("api")
    (port,) = api.ports.values()
    return httpx.Client(base_url=f"http://{LOOPBACK}:{port}", timeout=10)


def _enqueue(http: httpx.Client, task_name: str, payload: dict[str, Any]) -> str:
    response = http.post("/api/tasks", json={"taskName": task_name, "payload": payload})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["id"]
    return task_id


def _status(http: httpx.Client, task_id: str) -> dict[str, Any]:
    response = http.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


def _completed(http: httpx.Client, task_ids: list[str]) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        tasks = [_status(http, task_id) for task_id in task_ids]
        return tasks if all(task["status"] == "completed" for task in tasks) else None

    tasks: list[dict[str, Any]] = wait_until(done, 30, f"{len(task_ids)} tasks to complete")
    return tasks


def test_the_compose_services_run_tasks_as_local_processes(deploy: Up) -> None:
    deployment = deploy()
    workers = deployment.of("worker")
    assert len(workers) == deployment.services["worker"]["deploy"]["replicas"]
    worker_pids = {str(running.proc.pid) for running in workers}
    with _api(deployment) as http:
        task_ids = [_enqueue(http, "echo", {"n": n}) for n in range(20)]
        for task in _completed(http, task_ids):
            assert task["workerId"].split(":")[1] in worker_pids, task


def test_the_cluster_command_keeps_the_queues_on_the_three_nodes(deploy: Up) -> None:
    env, profiles = compose.documented_command("cluster")
    deployment = deploy(profiles, env)
    assert len(deployment.cluster_nodes) == 3
    (api,) = deployment.of("api")
    seeds = api.env["REDIS_CLUSTER_URLS"].split(",")
    assert sorted(seeds) == sorted(deployment.redis_url(name)[:-2] for name in
                                   deployment.cluster_nodes)  # fmt: skip
    with _api(deployment) as http:
        task_ids = [_enqueue(http, "echo", {"n": n}) for n in range(20)]
        _completed(http, task_ids)
    nodes = redis.RedisCluster.from_url(seeds[0], decode_responses=True)
    try:
        assert nodes.hget(f"conveyor:{{default}}:task:{task_ids[0]}", "status") == "completed"
    finally:
        nodes.close()
    plain = redis.Redis.from_url(deployment.redis_url("redis"))
    try:
        assert plain.keys("conveyor:*") == []  # REDIS_URL's server holds nothing
    finally:
        plain.close()


def _lock_holders(deployment: Deployment, task_id: str) -> list[str]:
    holders = []
    for service in deployment.redis:
        client = redis.Redis.from_url(deployment.redis_url(service))
        try:
            if client.exists(f"lock:task:{task_id}"):
                holders.append(service)
        finally:
            client.close()
    return holders


def test_the_quorum_command_takes_each_lock_on_all_three_masters(deploy: Up) -> None:
    env, profiles = compose.documented_command("quorum")
    deployment = deploy(profiles, env)
    assert len(deployment.redis) == 3
    with _api(deployment) as http:
        slow = _enqueue(http, "sleep", {"ms": 3_000})
        wait_until(
            lambda: _lock_holders(deployment, slow) == list(deployment.redis),
            10,
            "the sleeping task's lock on every master",
        )
        assert _status(http, slow)["status"] == "active"
        quick = [_enqueue(http, "echo", {"n": n}) for n in range(10)]
        _completed(http, [slow, *quick])
    wait_until(lambda: not _lock_holders(deployment, slow), 10, "the lock released everywhere")
