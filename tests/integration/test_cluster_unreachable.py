"""A Redis Cluster none of whose nodes answers: every route that needs Redis is a 503 in
the uniform shape, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app
from tests.conftest import LOCAL
from tests.e2e.conftest import free_port


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/ready", None),
        ("POST", "/api/tasks", {"taskName": "echo", "payload": {}}),
        ("POST", "/api/tasks/bulk", {"tasks": [{"taskName": "echo", "payload": {}}]}),
        ("GET", "/api/tasks/some-id", None),
        ("GET", "/api/tasks", None),
        ("GET", "/api/stats", None),
        ("POST", "/api/tasks/some-id/retry", None),
        ("GET", "/api/workers", None),
        ("GET", "/api/schedules", None),
    ],
)
async def test_every_route_is_a_503_when_no_cluster_node_answers(
    tmp_path: Path, method: str, path: str, body: object
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()},redis://127.0.0.1:{free_port()}"
    settings = Settings(redis_cluster_urls=nowhere, redis_timeout_ms=1_000, files_base_dir=tmp_path)
    container = Container()
    container.settings.override(providers.Object(settings))
    async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "unavailable"
