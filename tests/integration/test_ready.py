"""The open /ready says whether Redis answers, never where Redis is."""

from __future__ import annotations

from pathlib import Path

from dependency_injector import providers
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app
from tests.conftest import LOCAL
from tests.e2e.conftest import free_port


async def test_ready_503_names_neither_host_nor_port_but_the_log_does(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", files_base_dir=tmp_path)
    container = Container()
    container.settings.override(providers.Object(settings))
    async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as client:
        with capture_logs() as logs:
            response = await client.get("/ready")
    assert response.status_code == 503
    detail = "Redis is unreachable; retry shortly"
    assert response.json() == {"error": "unavailable", "detail": detail}
    assert "127.0.0.1" not in response.text
    assert str(port) not in response.text
    [logged] = [entry for entry in logs if entry["event"] == "ready.redis_unreachable"]
    assert logged["log_level"] == "warning"
    assert str(port) in logged["reason"]
