"""Defaults that keep a deployment safe or bounded when nothing is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from application.registry import TaskType
from infrastructure.registry import build_registry, configured_queues
from infrastructure.settings import Settings


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "API_KEYS", "QUEUES", "CONVEYOR_TASK_MODULES"):
        monkeypatch.delenv(name, raising=False)


def test_an_open_api_listens_on_loopback_only() -> None:
    assert Settings().listen_host == "127.0.0.1"


def test_an_api_with_keys_listens_on_every_interface() -> None:
    assert Settings(api_keys="ops:k" + "x" * 31 + ":admin").listen_host == "0.0.0.0"


def test_host_decides_whatever_the_keys() -> None:
    assert Settings(host="0.0.0.0").listen_host == "0.0.0.0"
    assert Settings(host="10.0.0.7", api_keys="ops:k" + "x" * 31 + ":admin").listen_host == (
        "10.0.0.7"
    )


class _Empty(BaseModel):
    pass


async def _noop(payload: _Empty, ctx: object) -> None:
    return None


def test_queues_default_to_default_and_the_queues_task_types_name(tmp_path: Path) -> None:
    settings = Settings(files_base_dir=tmp_path, task_modules="")
    registry = build_registry(settings)
    registry.add(TaskType("mail", _Empty, _noop, queue="mail"))

    assert configured_queues(settings, registry) == sorted({"default", "mail", *registry.queues})
    assert "mail" in configured_queues(settings, registry)


def test_queues_set_are_the_only_queues(tmp_path: Path) -> None:
    settings = Settings(files_base_dir=tmp_path, task_modules="", queues="a, b")
    registry = build_registry(settings)
    registry.add(TaskType("mail", _Empty, _noop, queue="mail"))

    assert configured_queues(settings, registry) == ["a", "b"]
