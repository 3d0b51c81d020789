"""No metric label takes a value a producer chose: /metrics keeps the same series however
hostile the requests before it (unknown paths, methods, queues, task names, ids, groups)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.conftest import api_client


def series(text: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def hostile_requests(client: AsyncTestClient[Any], n: int) -> None:
    for name in (f"made-up-{n}", f"other-{n}"):
        body = {"taskName": "echo", "payload": {}, "queue": name}
        assert (await client.post("/api/tasks", json=body)).status_code == 422
        bulk = {"tasks": [{"taskName": "echo", "payload": {}, "queue": name}] * 3}
        assert (await client.post("/api/tasks/bulk", json=bulk)).status_code == 422
        unknown_type = {"taskName": name, "payload": {}}
        assert (await client.post("/api/tasks", json=unknown_type)).status_code == 422
        assert (await client.post(f"/api/queues/{name}/pause")).status_code == 422
        assert (await client.get(f"/api/tasks/{name}")).status_code == 404
        assert (await client.get(f"/no/such/route/{name}")).status_code == 404
        assert (await client.request("PURGE", "/api/tasks")).status_code == 405
        grouped = {"taskName": "echo", "payload": {}, "group": f"tenant-{n}"}
        assert (await client.post("/api/tasks", json=grouped)).status_code == 202


async def test_metric_series_do_not_grow_with_hostile_requests(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    async with api_client(redis_url, tmp_path) as client:
        await hostile_requests(client, 0)  # every route template and status, seen once
        before = series((await client.get("/metrics")).text)
        for n in range(1, 20):
            await hostile_requests(client, n)
        after = series((await client.get("/metrics")).text)

    assert after == before
    labels = {value for _, pairs in after for _, value in pairs}
    assert not any(word in value for value in labels for word in ("made-up", "other-", "tenant-"))
