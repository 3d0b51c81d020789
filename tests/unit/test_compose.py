"""docker-compose.yml (no Docker engine here): its shape is what README promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


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
