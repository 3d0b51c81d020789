"""RedisTemplateStore: ITemplateStore on a hash of JSON documents and a sorted index."""

from __future__ import annotations

from typing import cast

from pydantic import TypeAdapter
from redis.asyncio import Redis

from domain.errors import TemplateNotFound
from domain.task import JSONObject
from domain.templates import Template
from infrastructure.redis.keys import TEMPLATES, TEMPLATES_BY_CREATED, TEMPLATES_SEQ

_TEMPLATE = TypeAdapter(Template)


class RedisTemplateStore:
    """Templates in Redis; the client must decode responses to str.

    The hash and its index change together in one MULTI, so a listing never names a
    template that is gone or misses one that was stored.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client

    async def add(self, name: str, task_type: str, data: JSONObject, now: int) -> Template:
        template_id = str(await self._client.incr(TEMPLATES_SEQ))
        template = Template(template_id, name, task_type, data, now)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(TEMPLATES, template_id, _TEMPLATE.dump_json(template).decode())
            pipe.zadd(TEMPLATES_BY_CREATED, {template_id: now})
            await pipe.execute()
        return template

    async def list(self) -> list[Template]:
        ids = cast(list[str], await self._client.zrange(TEMPLATES_BY_CREATED, 0, -1, desc=True))
        if not ids:
            return []
        documents = await self._client.hmget(TEMPLATES, ids)
        templates = [_TEMPLATE.validate_json(doc) for doc in documents if doc is not None]
        # Equal scores come back in reverse lexicographic order ("9" before "10").
        return sorted(templates, key=lambda t: (t.created_at, int(t.id)), reverse=True)

    async def get(self, template_id: str) -> Template:
        document = await self._client.hget(TEMPLATES, template_id)
        if document is None:
            raise TemplateNotFound(template_id)
        return _TEMPLATE.validate_json(document)

    async def remove(self, template_id: str) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(TEMPLATES, template_id)
            pipe.zrem(TEMPLATES_BY_CREATED, template_id)
            removed, _ = await pipe.execute()
        if not removed:
            raise TemplateNotFound(template_id)
