"""/admin/queues as served: a page without data, open to load, closed to framing and to
scripts from anywhere else, and only the page's own files under its assets path. What the
page does in a browser is tested in tests/browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from tests.conftest import api_client

Client = AsyncTestClient[Any]

ADMIN_KEY = "page-admin-key-0123456789abcdef"
PRODUCER_KEY = "page-producer-key-0123456789abcd"


@pytest.fixture
async def guarded(redis: Redis, redis_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    keys = f"ops:{ADMIN_KEY}:admin,shop:{PRODUCER_KEY}:producer"
    async with api_client(redis_url, tmp_path / "files", api_keys=keys) as made:
        yield made


async def test_the_page_loads_without_a_key_and_holds_nothing_but_the_key_form(
    guarded: Client,
) -> None:
    secret = "order-4711-payload-word"
    enqueued = await guarded.post(
        "/api/tasks",
        json={"taskName": "echo", "payload": {"note": secret}},
        headers={"X-API-Key": PRODUCER_KEY},
    )
    assert enqueued.status_code == 202

    page = await guarded.get("/admin/queues")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    inputs = re.findall(r"<input\b[^>]*>", page.text)
    assert len(inputs) == 1
    assert 'type="password"' in inputs[0]
    assert secret not in page.text
    assert enqueued.json()["id"] not in page.text


@pytest.mark.parametrize("path", ["/admin/queues", "/admin/queues/", "/admin/queues/assets/app.js"])
async def test_the_page_cannot_be_framed_nor_run_scripts_from_elsewhere(
    guarded: Client, path: str
) -> None:
    response = await guarded.get(path)

    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript"), ("api.js", "text/javascript"), ("app.css", "text/css")],
)
async def test_assets_are_served_with_their_types(
    guarded: Client, name: str, media_type: str
) -> None:
    response = await guarded.get(f"/admin/queues/assets/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)


@pytest.mark.parametrize(
    "name",
    [
        "routes.py",
        "__init__.py",
        "index.html",
        "..%2Froutes.py",
        "..%2F..%2Fhttp%2Fauth.py",
        "x.js",
    ],
)
async def test_nothing_but_the_page_files_is_served(guarded: Client, name: str) -> None:
    response = await guarded.get(f"/admin/queues/assets/{name}")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")


async def test_what_the_page_calls_is_refused_without_the_admin_key(guarded: Client) -> None:
    """The page is open; the data it shows is not: the routes it reads are admin-only."""
    reads = ["/api/stats", "/api/workers", "/api/schedules", "/api/audit", "/api/templates"]
    for path in reads:
        assert (await guarded.get(path)).status_code == 401, path
        producer = await guarded.get(path, headers={"X-API-Key": PRODUCER_KEY})
        assert producer.status_code == 403, path
        admin = await guarded.get(path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert admin.status_code == 200, path
    events = await guarded.get("/api/events", headers={"X-API-Key": PRODUCER_KEY})
    assert events.status_code == 403


async def test_a_cross_site_form_post_carries_no_key_and_changes_nothing(
    guarded: Client, redis: Redis
) -> None:
    """Another site can make a browser send a form, with its cookies, but not a header: the
    key lives in a header only, so a forged action is refused."""
    for origin in ({"Origin": "https://evil.example"}, {}):
        forged = await guarded.post(
            "/api/queues/default/pause",
            content=b"",
            headers={**origin, "Content-Type": "text/plain"},
        )
        # A foreign origin is refused at the boundary; without one, for want of a key.
        assert forged.status_code == (403 if origin else 401)

    stats = await guarded.get("/api/stats", headers={"X-API-Key": ADMIN_KEY})
    assert stats.json()["queues"].get("default", {}).get("paused", False) is False
