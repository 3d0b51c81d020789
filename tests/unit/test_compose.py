"""docker-compose.yml (no Docker engine here): its shape is what README promises, and
Compose itself accepts it, with and without the quorum and cluster profiles."""

from __future__ import annotations

import itertools
import shlex
from typing import Any

import pytest
import yaml

from tests import compose
from tests.compose import COMPOSE


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return loaded


def test_redis_runs_with_append_only_persistence() -> None:
    command = services()["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"


def test_the_api_listens_on_3000_and_workers_run_three_replicas() -> None:
    found = services()
    assert "3000:3000" in found["api"]["ports"]
    assert found["worker"]["deploy"]["replicas"] == 3
    assert found["worker"]["command"][:2] == ["conveyor", "worker"]
    assert found["api"]["environment"]["REDIS_URL"] == found["worker"]["environment"]["REDIS_URL"]


def test_the_api_listens_on_every_interface_of_its_container_and_says_to_set_keys() -> None:
    """The port is published, so the API must not bind the container's loopback; that makes
    it reachable from outside, so the file tells how to protect it."""
    found = services()
    assert found["api"]["environment"]["HOST"] == "0.0.0.0"
    assert "HOST" not in found["worker"]["environment"]  # a worker binds no port
    text = COMPOSE.read_text()
    assert "API_KEYS" in text
    assert "ALLOWED_HOSTS" in text
    assert "API_KEYS" not in found["api"]["environment"]  # a placeholder key would be a real one


def test_the_api_and_the_workers_share_their_configuration() -> None:
    api, worker = services()["api"]["environment"], services()["worker"]["environment"]
    assert {name: value for name, value in api.items() if name != "HOST"} == worker


QUORUM_ENV, QUORUM_PROFILES = compose.documented_command("quorum")
CLUSTER_ENV, CLUSTER_PROFILES = compose.documented_command("cluster")
CLUSTER_NODES = ["redis-node-1", "redis-node-2", "redis-node-3"]


@pytest.mark.parametrize(
    ("profiles", "env"),
    [
        ((), {}),
        (("quorum",), {}),
        (QUORUM_PROFILES, QUORUM_ENV),
        (("cluster",), {}),
        (CLUSTER_PROFILES, CLUSTER_ENV),
    ],
    ids=[
        "plain",
        "profile-alone",
        "documented-quorum-command",
        "cluster-profile-alone",
        "documented-cluster-command",
    ],
)
def test_compose_accepts_the_file(profiles: tuple[str, ...], env: dict[str, str]) -> None:
    done = compose.run("config", "-q", profiles=profiles, env=env)
    assert done.returncode == 0, f"docker-compose config -q: {done.stderr}"


def test_the_documented_quorum_command_runs_three_masters_and_locks_on_all_three() -> None:
    config = compose.resolved(QUORUM_PROFILES, QUORUM_ENV)
    masters = compose.redis_addresses(config, QUORUM_PROFILES)
    assert len(masters) == 3, masters
    for name in ("api", "worker"):
        environment = config["services"][name]["environment"]
        named = compose.redlock_addresses(environment)
        assert sorted(named) == sorted(masters.values()), f"{name}: REDLOCK_URLS names {named}"
        assert compose.address(environment["REDIS_URL"]) in named  # the queue's Redis is one


def test_without_the_profile_no_url_names_a_redis_that_does_not_run() -> None:
    config = compose.resolved()
    masters = compose.redis_addresses(config, ())
    assert list(masters) == ["redis"]
    for name, service in compose.running(config, ()).items():
        environment = service.get("environment") or {}
        named = compose.redlock_addresses(environment)
        assert set(named) <= set(masters.values()), f"{name}: REDLOCK_URLS names {named}"
        if "REDIS_URL" in environment:
            assert compose.address(environment["REDIS_URL"]) in masters.values()
        assert not environment.get("REDIS_CLUSTER_URLS"), name  # empty: not a cluster


def test_the_extra_masters_run_only_in_the_profile_and_write_each_lock_to_disk_first() -> None:
    found = services()
    extra = [name for name, service in found.items() if "quorum" in service.get("profiles", [])]
    assert sorted(extra) == ["redis-2", "redis-3"]
    for name in extra:
        assert found[name]["profiles"] == ["quorum"]
        command = found[name]["command"]
        assert command[command.index("--appendfsync") + 1] == "always", name
        assert found[name]["volumes"] != found["redis"]["volumes"]
    assert found["redis-2"]["volumes"] != found["redis-3"]["volumes"]


def test_every_service_of_a_profile_is_a_quorum_master_or_of_the_cluster() -> None:
    profiled = {name: service["profiles"] for name, service in services().items()
                if service.get("profiles")}  # fmt: skip
    assert profiled == {
        "redis-2": ["quorum"],
        "redis-3": ["quorum"],
        **{name: ["cluster"] for name in [*CLUSTER_NODES, "redis-cluster-init"]},
    }


def cluster_addresses(environment: dict[str, str]) -> list[str]:
    urls = environment.get("REDIS_CLUSTER_URLS") or ""
    return [compose.address(url.strip()) for url in urls.split(",") if url.strip()]


def test_the_documented_cluster_command_seeds_api_and_workers_with_the_three_nodes() -> None:
    assert CLUSTER_PROFILES == ["cluster"]
    config = compose.resolved(CLUSTER_PROFILES, CLUSTER_ENV)
    running = compose.running(config, CLUSTER_PROFILES)
    nodes = {
        name: address
        for name, address in compose.redis_addresses(config, CLUSTER_PROFILES).items()
        if "--cluster-enabled" in running[name]["command"]
    }
    assert sorted(nodes) == CLUSTER_NODES
    for name in ("api", "worker"):
        named = cluster_addresses(config["services"][name]["environment"])
        assert sorted(named) == sorted(nodes.values()), f"{name}: REDIS_CLUSTER_URLS names {named}"


def test_the_cluster_profile_alone_leaves_the_queues_on_redis_url() -> None:
    config = compose.resolved(("cluster",))
    for name in ("api", "worker"):
        assert config["services"][name]["environment"]["REDIS_CLUSTER_URLS"] == ""


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_cluster_nodes_run_cluster_enabled_append_only_and_announce_their_names() -> None:
    found = services()
    for name in CLUSTER_NODES:
        command = found[name]["command"]
        assert command[0] == "redis-server", name
        assert option(command, "--cluster-enabled") == "yes", name
        assert option(command, "--appendonly") == "yes", name
        assert option(command, "--appendfsync") == "everysec", name
        assert option(command, "--cluster-announce-hostname") == name
        assert option(command, "--cluster-preferred-endpoint-type") == "hostname", name
        assert "--port" not in command, name  # the 6379 that REDIS_CLUSTER_URLS names
        assert found[name]["image"] == found["redis"]["image"], name
        assert found[name]["healthcheck"] == found["redis"]["healthcheck"], name
    volumes = [found[name]["volumes"] for name in [*CLUSTER_NODES, "redis"]]
    assert len({tuple(volume) for volume in volumes}) == len(volumes)  # each its own data


def test_the_init_service_creates_the_cluster_from_exactly_the_three_nodes_once() -> None:
    init = services()["redis-cluster-init"]
    assert init["restart"] == "no"
    assert init["depends_on"] == {name: {"condition": "service_healthy"} for name in CLUSTER_NODES}
    shell, flag, script = init["command"]
    assert (shell, flag) == ("sh", "-c")
    guard, _, create = script.partition("||")
    assert "cluster_state:ok" in guard  # a cluster already up is left alone, exit 0
    assert guard.split()[:3] == ["redis-cli", "-h", "redis-node-1"]
    words = shlex.split(create)
    assert words[:3] == ["redis-cli", "--cluster", "create"]
    addresses = list(itertools.takewhile(lambda word: not word.startswith("-"), words[3:]))
    assert addresses == [f"{name}:{compose.REDIS_PORT}" for name in CLUSTER_NODES]
    assert "--cluster-yes" in words
    assert "--cluster-replicas" not in words  # three masters, no replicas
