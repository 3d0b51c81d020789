"""What no web page may do to an API on localhost, over HTTP with a real Redis: drive it by
DNS rebinding (a foreign Host), post it a body without a preflight (anything but JSON), or
write to it from a foreign origin; and a refused CORS preflight answers in the one shape."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app
from tests.conftest import LOCAL

Client = AsyncTestClient[Any]
Factory = Callable[..., AbstractAsyncContextManager[Client]]

ADMIN_KEY = "admin-key-0123456789"
ADMIN = {"X-API-Key": ADMIN_KEY}
ENQUEUE = b'{"taskName": "echo", "payload": {"n": 1}}'
# What a page may send cross-site without a preflight, and a body that names no type.
NOT_JSON = [
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    None,
]


def make_app(**overrides: Any) -> Litestar:
    files = Path(tempfile.gettempdir()) / "conveyor-boundary"
    settings = Settings(redis_url="redis://127.0.0.1:1/0", files_base_dir=files, **overrides)
    container = Container()
    container.settings.override(providers.Object(settings))
    return create_app(container)


def json_body_routes() -> list[tuple[str, str]]:
    """(METHOD, path) of every route whose handler reads a JSON body, read from the app
    (no Redis), path parameters filled in: a route added later is covered too."""
    found = []
    for route in make_app().routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if "data" in handler.parsed_fn_signature.parameters:
                path = re.sub(r"\{[^}]*\}", "some-id", route.path)
                found += [(method, path) for method in sorted(handler.http_methods)]
    return found


JSON_BODY_ROUTES = json_body_routes()


@pytest.fixture
def make_api(redis: Redis, redis_url: str, tmp_path: Path) -> Factory:
    @asynccontextmanager
    async def make(base_url: str = LOCAL, **overrides: Any) -> AsyncIterator[Client]:
        settings = Settings(redis_url=redis_url, files_base_dir=tmp_path / "files", **overrides)
        container = Container()
        container.settings.override(providers.Object(settings))
        async with AsyncTestClient(app=create_app(container), base_url=base_url) as client:
            yield client

    return make


@pytest.fixture
async def client(make_api: Factory) -> AsyncIterator[Client]:
    async with make_api() as made:
        yield made


def test_the_routes_that_read_a_body_are_found() -> None:
    assert ("POST", "/api/tasks") in JSON_BODY_ROUTES
    assert ("POST", "/jobs/enqueue") in JSON_BODY_ROUTES
    assert len(JSON_BODY_ROUTES) >= 13


# --- only JSON bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("content_type", NOT_JSON)
@pytest.mark.parametrize(("method", "path"), JSON_BODY_ROUTES)
async def test_a_body_that_is_not_json_is_415_on_every_route_that_reads_one(
    client: Client, method: str, path: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.request(method, path, content=ENQUEUE, headers=headers)
    assert response.status_code == 415
    body = response.json()
    assert body["error"] == "unsupported_media_type"
    assert "application/json" in body["detail"]
    assert (await client.get("/api/tasks")).json()["total"] == 0  # nothing was stored


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/vnd.conveyor+json",
        "application/merge-patch+json; charset=utf-8",
    ],
)
async def test_json_is_taken_with_or_without_a_charset(client: Client, content_type: str) -> None:
    response = await client.post(
        "/api/tasks", content=ENQUEUE, headers={"content-type": content_type}
    )
    assert response.status_code == 202


async def test_a_route_with_an_optional_body_still_takes_none(client: Client) -> None:
    created = await client.post("/api/tasks", json={"taskName": "echo", "payload": {}})
    response = await client.post(f"/api/tasks/{created.json()['id']}/duplicate")
    assert response.status_code == 202


async def test_a_route_that_reads_no_body_is_not_asked_for_one(client: Client) -> None:
    created = await client.post("/api/tasks", json={"taskName": "echo", "payload": {}})
    response = await client.post(
        f"/api/tasks/{created.json()['id']}/cancel",
        content=b"x",
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 200


# --- the Host header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:3000", "127.0.0.1", "127.0.0.1:3000", "[::1]:3000", "[::1]"]
)
async def test_an_open_api_serves_the_loopback_names(client: Client, host: str) -> None:
    response = await client.get("/api/tasks", headers={"host": host})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:3000", "10.0.0.7:3000"])
async def test_an_open_api_refuses_any_other_host_in_the_uniform_shape(
    client: Client, host: str
) -> None:
    """DNS rebinding: a page of evil.example.com whose name now resolves to 127.0.0.1."""
    enqueue = await client.post(
        "/api/tasks", content=ENQUEUE, headers={"host": host, "content-type": "application/json"}
    )
    assert enqueue.status_code == 400
    assert enqueue.json() == {
        "error": "bad_request",
        "detail": f"this API does not serve the host {host!r} (see ALLOWED_HOSTS)",
    }
    assert (await client.get("/api/stats", headers={"host": host})).status_code == 400
    assert (await client.get("/api/tasks")).json()["total"] == 0


async def test_the_health_probes_answer_any_host(make_api: Factory) -> None:
    """A compose healthcheck or a kubelet calls by address, whatever ALLOWED_HOSTS names."""
    async with make_api(allowed_hosts="conveyor.example.com") as client:
        assert (await client.get("/health", headers={"host": "10.0.0.7:3000"})).status_code == 200
        assert (await client.get("/ready", headers={"host": "10.0.0.7:3000"})).status_code == 200


async def test_with_api_keys_any_host_is_served(make_api: Factory) -> None:
    async with make_api(api_keys=f"ops:{ADMIN_KEY}:admin") as client:
        response = await client.get("/api/tasks", headers={**ADMIN, "host": "conveyor.example.com"})
        assert response.status_code == 200
        # The host is checked before the key: a foreign host learns nothing about keys.
        assert (
            await client.get("/api/tasks", headers={"host": "x.example.com"})
        ).status_code == 401


async def test_allowed_hosts_narrows_an_api_with_keys(make_api: Factory) -> None:
    async with make_api(
        api_keys=f"ops:{ADMIN_KEY}:admin", allowed_hosts="conveyor.example.com, *.internal"
    ) as client:
        for host, status in [
            ("conveyor.example.com:443", 200),
            ("queue.internal", 200),
            ("evil.example.com", 400),
            ("localhost:3000", 400),  # named hosts replace the loopback default
        ]:
            response = await client.get("/api/tasks", headers={**ADMIN, "host": host})
            assert response.status_code == status, host


async def test_allowed_hosts_opens_an_api_without_keys_to_the_names_given(
    make_api: Factory,
) -> None:
    async with make_api(allowed_hosts="conveyor.lan") as client:
        assert (
            await client.get("/api/tasks", headers={"host": "conveyor.lan:3000"})
        ).status_code == 200
        assert (await client.get("/api/tasks", headers={"host": "other.lan"})).status_code == 400


async def test_a_star_serves_every_host(make_api: Factory) -> None:
    async with make_api(allowed_hosts="*") as client:
        assert (
            await client.get("/api/tasks", headers={"host": "anything.example"})
        ).status_code == 200


# --- origins --------------------------------------------------------------------------------

DASHBOARD = "https://dash.example.com"
EVIL = "https://evil.example.com"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key",
    }


@pytest.mark.parametrize("cors_origins", ["", DASHBOARD])
async def test_a_refused_preflight_answers_in_the_uniform_shape(
    make_api: Factory, cors_origins: str
) -> None:
    async with make_api(cors_origins=cors_origins) as client:
        response = await client.options("/api/tasks", headers=preflight(EVIL))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "error": "bad_request",
        "detail": f"CORS: the origin {EVIL!r} is not allowed (see CORS_ORIGINS)",
    }
    assert "access-control-allow-origin" not in response.headers


async def test_an_allowed_preflight_is_answered_with_the_origin(make_api: Factory) -> None:
    async with make_api(cors_origins=DASHBOARD) as client:
        response = await client.options("/api/tasks/some-id/kill", headers=preflight(DASHBOARD))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == DASHBOARD
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-api-key" in response.headers["access-control-allow-headers"]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/api/tasks", {"content-type": "text/plain"}),  # a page's simple request
        ("POST", "/api/tasks", {"content-type": "application/json"}),
        ("POST", "/jobs/pause", {}),  # a bare POST: no body, no preflight
        ("POST", "/api/tasks/some-id/kill", {}),
        ("DELETE", "/jobs/some-id", {}),
    ],
)
async def test_a_page_of_another_origin_cannot_write(
    client: Client, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(
        method, path, content=ENQUEUE, headers={**headers, "origin": EVIL}
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    stats = (await client.get("/api/stats")).json()
    assert stats["waiting"] == 0
    assert stats["queues"].get("default", {}).get("paused") is not True


async def test_a_page_of_another_origin_may_read_but_gets_no_cors_grant(client: Client) -> None:
    response = await client.get("/api/tasks", headers={"origin": EVIL})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_the_api_s_own_origin_and_allowed_origins_may_write(make_api: Factory) -> None:
    async with make_api(cors_origins=DASHBOARD) as client:
        own = await client.post(
            "/api/tasks", content=ENQUEUE,
            headers={"origin": "http://127.0.0.1:3000", "content-type": "application/json"},
        )  # fmt: skip
        assert own.status_code == 202
        allowed = await client.post(
            "/api/tasks", content=ENQUEUE,
            headers={"origin": DASHBOARD, "content-type": "application/json"},
        )  # fmt: skip
        assert allowed.status_code == 202
        assert allowed.headers["access-control-allow-origin"] == DASHBOARD


def dependency_named_bodies() -> list[tuple[str, str, str]]:
    """(METHOD, path, name) for each dependency of each route that reads a body: litestar
    matched a body field's error to a dependency by its name and answered 500."""
    found = []
    app = make_app()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if "data" not in handler.parsed_fn_signature.parameters:
                continue
            path = re.sub(r"\{[^}]*\}", "some-id", route.path)
            parameters = handler.parsed_fn_signature.parameters
            for name in set(handler.resolve_dependencies()) & set(parameters):
                found += [(method, path, name) for method in sorted(handler.http_methods)]
    return sorted(found)


@pytest.mark.parametrize(("method", "path", "name"), dependency_named_bodies())
async def test_a_body_field_named_like_a_dependency_is_a_422(
    client: Client, method: str, path: str, name: str
) -> None:
    response = await client.request(method, path, json={"taskName": "echo", name: {}})
    assert 400 <= response.status_code < 500, response.text


async def test_a_dependency_named_field_is_named_in_the_422(client: Client) -> None:
    body = {"taskName": "echo", "payload": {}, "enqueue_task": 1, "principal": "admin"}
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 422
    assert set(response.json()["fields"]) == {"enqueue_task", "principal"}
