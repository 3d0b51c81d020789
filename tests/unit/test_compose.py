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
