"""The hot routes resolve at most one litestar dependency each, without a server: with two
or more in a batch litestar spawns an anyio task group per request, a measured sixth of an
enqueue's cost. They read the caller from the request instead (`auth.caller`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from dependency_injector import providers
from litestar.routes import HTTPRoute

from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app

HOT_ROUTES = [
    ("POST", "/api/tasks"),
    ("POST", "/api/tasks/bulk"),
    ("POST", "/tasks"),  # seed 000
    ("POST", "/api/job"),  # seed 001
    ("POST", "/jobs/enqueue"),  # seed 003
    ("GET", "/api/tasks/{task_id:str}"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/export"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/export"),
    ("GET", "/jobs"),
    ("GET", "/jobs/failed/jobs"),
]


def dependencies() -> dict[tuple[str, str], list[str]]:
    """(METHOD, path) -> the dependencies litestar resolves for it."""
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0", files_base_dir=Path(tempfile.gettempdir())
    )
    container = Container()
    container.settings.override(providers.Object(settings))
    found = {}
    for route in create_app(container).routes:
        if isinstance(route, HTTPRoute):
            for method, (_, kwargs_model) in route.route_handler_map.items():
                keys = [d.key for batch in kwargs_model.dependency_batches for d in batch]
                found[method, route.path] = keys
    return found


DEPENDENCIES = dependencies()


@pytest.mark.parametrize(("method", "path"), HOT_ROUTES)
def test_a_hot_route_resolves_one_dependency_at_most(method: str, path: str) -> None:
    assert len(DEPENDENCIES[method, path]) <= 1, DEPENDENCIES[method, path]
