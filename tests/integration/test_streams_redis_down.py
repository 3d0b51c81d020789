"""Streamed answers with Redis down: refused before the first byte, in the one error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app
from tests.conftest import LOCAL
from tests.e2e.conftest import free_port


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    """The API with its Redis on a port where nothing listens."""
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", files_base_dir=tmp_path / "files"
    )
    container = Container()
    container.settings.override(providers.Object(settings))
    async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "path",
    ["/api/tasks/export", "/api/tasks/export?status=failed", "/api/jobs/export",
     "/api/jobs/export?status=pending", "/api/events"],
)  # fmt: skip
async def test_a_stream_is_refused_with_503_before_its_first_byte(
    client: AsyncTestClient[Any], path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "error": "unavailable",
        "detail": "Redis is unreachable; retry shortly",
    }
