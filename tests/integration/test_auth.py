"""API keys, roles, CORS, the body size limit and the audit log, over HTTP with a real Redis."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar import get
from litestar.di import NamedDependency
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from structlog.testing import capture_logs

from application.audit import RecordAudit
from application.clock import system_clock
from infrastructure.redis.audit import RedisAuditLog
from infrastructure.settings import Settings
from interfaces.container import Container, resolve
from interfaces.http.app import MAX_BODY_BYTES, create_app
from interfaces.http.auth import Principal
from tests.asgi import post_scope
from tests.conftest import LOCAL

Client = AsyncTestClient[Any]

ADMIN_KEY = "admin-key-0123456789"
PRODUCER_KEY = "producer-key-0123456789"
API_KEYS = f"ops:{ADMIN_KEY}:admin,ci:{PRODUCER_KEY}:producer"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PRODUCER = {"X-API-Key": PRODUCER_KEY}
ALLOWED_ORIGIN = "https://dash.example.com"


@get("/test/whoami")
async def whoami(principal: NamedDependency[Principal]) -> dict[str, str]:
    return {"name": principal.name, "role": principal.role}


Factory = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def make_api(redis: Redis, redis_url: str, tmp_path: Path) -> Factory:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Client]:
        settings = Settings(redis_url=redis_url, files_base_dir=tmp_path / "files", **overrides)
        container = Container()
        container.settings.override(providers.Object(settings))
        app = create_app(container)
        app.register(whoami)
        async with AsyncTestClient(app=app, base_url=LOCAL) as client:
            yield client

    return make


@pytest.fixture
async def client(make_api: Factory) -> AsyncIterator[Client]:
    async with make_api(api_keys=API_KEYS, cors_origins=f"{ALLOWED_ORIGIN}, ") as client:
        yield client


async def enqueue(client: Client, headers: dict[str, str], **body: Any) -> Any:
    body = {"taskName": "echo", "payload": {"n": 1}, **body}
    return await client.post("/api/tasks", json=body, headers=headers)


# --- who may call what --------------------------------------------------------------------


async def test_no_key_is_401_in_the_uniform_shape_with_a_challenge(client: Client) -> None:
    response = await enqueue(client, {})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "X-API-Key" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-key"},
        {"X-API-Key": "wrong-key"},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"X-API-Key": ADMIN_KEY[:-1]},
    ],
)
async def test_a_wrong_key_is_401(client: Client, headers: dict[str, str]) -> None:
    response = await client.get("/api/audit", headers=headers)
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/tasks/some-id"),
        ("GET", "/api/audit"),
        ("GET", "/api/templates"),
    ],
)
async def test_a_producer_on_an_admin_route_is_403(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path, headers=PRODUCER)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "admin role" in response.json()["detail"]


async def test_every_route_answers_and_documents_what_a_missing_or_weak_key_gets(
    client: Client,
) -> None:
    """401 without a key, and 403 with the producer's where the route is the admin's; each
    status is in the route's documented responses, and the body in the error shape."""
    schema = (await client.get("/schema/openapi.json")).json()
    checked = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == [{}] or path.startswith("/test/"):
                continue  # /health and /ready: open by design (tested above); whoami
            url = re.sub(r"\{[^}]+\}", "some-id", path)
            anonymous = await client.request(method.upper(), url)
            producer = await client.request(method.upper(), url, headers=PRODUCER)
            for response in (anonymous, producer):
                if response.status_code not in (401, 403):
                    continue  # the producer's own routes: what they answer is tested elsewhere
                where = f"{method.upper()} {path}: {response.status_code}"
                assert str(response.status_code) in operation["responses"], where
                ref = operation["responses"][str(response.status_code)]["content"]
                assert ref["application/json"]["schema"]["$ref"].endswith("/ErrorBody"), where
                assert set(response.json()) == {"error", "detail"}, where
            assert anonymous.status_code == 401, f"{method.upper()} {path}"
            checked += 1
    assert checked >= 40  # every guarded operation of the schema


async def test_a_producer_enqueues_and_reads_its_own_task(client: Client) -> None:
    created = await enqueue(client, PRODUCER, customJobId="mine")
    assert created.status_code == 202
    bearer = {"Authorization": f"Bearer {PRODUCER_KEY}"}
    response = await client.get("/api/tasks/mine", headers=bearer)
    assert response.status_code == 200
    assert response.json()["id"] == "mine"


async def test_an_admin_may_do_everything(client: Client) -> None:
    await enqueue(client, PRODUCER, customJobId="doomed")
    assert (await client.delete("/api/tasks/doomed", headers=ADMIN)).status_code == 204
    assert (await client.get("/api/audit", headers={"X-API-Key": ADMIN_KEY})).status_code == 200


async def test_the_principal_is_the_key_s_name_and_role(client: Client) -> None:
    response = await client.get("/test/whoami", headers=ADMIN)
    assert response.json() == {"name": "ops", "role": "admin"}


@pytest.mark.parametrize("path", ["/health", "/ready", "/schema", "/schema/openapi.json"])
async def test_health_ready_and_schema_stay_open(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    response = await client.get(path, headers={"Authorization": "Bearer wrong-key"})
    assert response.status_code == 200


async def test_enabled_auth_logs_key_names_never_keys(make_api: Factory) -> None:
    with capture_logs() as logs:
        async with make_api(api_keys=API_KEYS):
            pass
    started = [log for log in logs if log["event"] == "api.auth_enabled"]
    keys = {"ops": "admin", "ci": "producer"}
    assert started == [{"event": "api.auth_enabled", "log_level": "info", "keys": keys}]
    assert ADMIN_KEY not in repr(logs)


async def test_a_bad_api_keys_setting_stops_the_start(make_api: Factory) -> None:
    with pytest.raises(ValueError, match=r"API_KEYS entry 2 \('ci'\): unknown role 'root'"):
        async with make_api(api_keys=f"ops:{ADMIN_KEY}:admin,ci:{PRODUCER_KEY}:root"):
            pass


# --- open mode ------------------------------------------------------------------------------


async def test_without_keys_the_api_is_open_and_says_so_loudly(make_api: Factory) -> None:
    with capture_logs() as logs:
        async with make_api(api_keys="") as client:
            assert (await enqueue(client, {}, customJobId="open")).status_code == 202
            assert (await client.delete("/api/tasks/open")).status_code == 204
            whoami = await client.get("/test/whoami")
    assert whoami.json() == {"name": "anonymous", "role": "admin"}
    warnings = [log for log in logs if log["event"] == "api.auth_disabled"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"


# --- CORS -----------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_preflight_allows_a_configured_origin(client: Client) -> None:
    response = await client.options("/api/tasks", headers=preflight(ALLOWED_ORIGIN))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def test_cors_preflight_refuses_another_origin(client: Client) -> None:
    response = await client.options("/api/tasks", headers=preflight("https://evil.example.com"))
    assert "access-control-allow-origin" not in response.headers


async def test_cors_headers_reach_error_responses_of_an_allowed_origin(client: Client) -> None:
    response = await client.get("/api/audit", headers={"Origin": ALLOWED_ORIGIN})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    other = await client.get("/api/audit", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


async def test_without_cors_origins_no_origin_is_allowed(make_api: Factory) -> None:
    async with make_api(api_keys=API_KEYS) as client:
        response = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert "access-control-allow-origin" not in response.headers


# --- body size ------------------------------------------------------------------------------


def oversized_body() -> bytes:
    return b'{"taskName": "echo", "payload": {"blob": "' + b"x" * MAX_BODY_BYTES + b'"}}'


async def test_an_oversized_body_is_413_in_the_uniform_shape(client: Client) -> None:
    headers = {**PRODUCER, "content-type": "application/json"}
    response = await client.post("/api/tasks", content=oversized_body(), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"error": "payload_too_large", "detail": "Request Entity Too Large"}


async def test_an_oversized_streamed_body_is_413_too(redis_url: str, tmp_path: Path) -> None:
    """Chunked, without a content-length: the limit counts the bytes as they arrive.
    The test client always sends one whole body, so this drives the ASGI app itself."""
    settings = Settings(redis_url=redis_url, files_base_dir=tmp_path, api_keys=API_KEYS)
    container = Container()
    container.settings.override(providers.Object(settings))
    body = oversized_body() + b" " * MAX_BODY_BYTES
    events = [
        {"type": "http.request", "body": body[i : i + 65_536], "more_body": True}
        for i in range(0, len(body), 65_536)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return events.pop(0) if events else {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"x-api-key", PRODUCER_KEY.encode()), (b"content-type", b"application/json")]
    try:
        await create_app(container)(streamed_post("/api/tasks", headers), receive, send)
    finally:
        await resolve(container.shutdown_resources)  # None unless a resource was opened
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "payload_too_large"
    assert events  # refused before the whole body was read


def streamed_post(path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    return post_scope(
        path, [(b"host", b"testserver"), (b"transfer-encoding", b"chunked"), *headers]
    )


# --- audit log ------------------------------------------------------------------------------


async def record(redis: Redis, *entries: tuple[str, str, str]) -> None:
    # The app runs on the test client's own event loop; its Redis client cannot be shared.
    record_audit = RecordAudit(RedisAuditLog(redis), system_clock)
    for actor, action, target in entries:
        await record_audit.execute(actor, action, target, {"queue": "default"})


async def test_audit_entries_read_back_newest_first_a_page_at_a_time(
    client: Client, redis: Redis
) -> None:
    await record(redis, ("ops", "retry", "t1"), ("ops", "cancel", "t2"), ("sam", "pause", "q"))
    first = await client.get("/api/audit?limit=2", headers=ADMIN)
    assert first.status_code == 200
    page = first.json()
    assert [(i["actor"], i["action"], i["target"]) for i in page["items"]] == [
        ("sam", "pause", "q"),
        ("ops", "cancel", "t2"),
    ]
    assert page["items"][0]["detail"] == {"queue": "default"}
    assert datetime.fromisoformat(page["items"][0]["at"]).tzinfo is not None
    assert page["nextCursor"]

    cursor = page["nextCursor"]
    second = await client.get(f"/api/audit?limit=2&before={cursor}", headers=ADMIN)
    assert [i["target"] for i in second.json()["items"]] == ["t1"]
    assert second.json()["nextCursor"] is None


async def test_a_page_that_reaches_the_end_has_no_cursor(client: Client, redis: Redis) -> None:
    await record(redis, ("ops", "kill", "t1"), ("ops", "delete", "t2"))
    page = (await client.get("/api/audit?limit=2", headers=ADMIN)).json()
    assert len(page["items"]) == 2
    assert page["nextCursor"] is None
    default_limit = (await client.get("/api/audit", headers=ADMIN)).json()
    assert len(default_limit["items"]) == 2


async def test_an_empty_audit_log(client: Client) -> None:
    response = await client.get("/api/audit", headers=ADMIN)
    assert response.json() == {"items": [], "nextCursor": None}


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "before=nonsense", "before=1-2-3"])
async def test_bad_audit_parameters_are_4xx_naming_them(client: Client, query: str) -> None:
    response = await client.get(f"/api/audit?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert query.split("=", maxsplit=1)[0] in response.json()["fields"]
