"""docker-compose.yml (no Docker engine here): its shape is what README promises, and
Compose itself accepts it, with and without the quorum profile."""

from __future__ import annotations

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


QUORUM_ENV, QUORUM_PROFILES = compose.documented_quorum_command()


@pytest.mark.parametrize(
    ("profiles", "env"),
    [((), {}), (("quorum",), {}), (QUORUM_PROFILES, QUORUM_ENV)],
    ids=["plain", "profile-alone", "documented-quorum-command"],
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


def test_the_extra_masters_run_only_in_the_profile_and_write_each_lock_to_disk_first() -> None:
    found = services()
    extra = [name for name, service in found.items() if service.get("profiles")]
    assert sorted(extra) == ["redis-2", "redis-3"]
    for name in extra:
        assert found[name]["profiles"] == ["quorum"]
        command = found[name]["command"]
        assert command[command.index("--appendfsync") + 1] == "always", name
        assert found[name]["volumes"] != found["redis"]["volumes"]
    assert found["redis-2"]["volumes"] != found["redis-3"]["volumes"]
