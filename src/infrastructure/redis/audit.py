"""RedisAuditLog: IAuditLog on one capped Redis stream, read newest first."""

from __future__ import annotations

import re
from typing import cast

from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from domain.audit import AuditEntry
from domain.errors import InvalidTask
from infrastructure.redis.keys import AUDIT_LOG

MAX_ENTRIES = 100_000
_STREAM_ID = re.compile(r"\d+-\d+")
_ENTRY = TypeAdapter(AuditEntry)
_FIELD = "entry"

StreamRecord = tuple[str, dict[str, str]]


class RedisAuditLog:
    """The audit log in a stream; the client must decode responses to str.

    Stream ids are the cursors: Redis makes them strictly increasing, so "older than the
    last id seen" resumes a page exactly, even while new entries are appended.
    """

    def __init__(self, client: Redis, max_entries: int = MAX_ENTRIES) -> None:
        self._client = client
        self._max_entries = max_entries

    async def record(self, entry: AuditEntry) -> None:
        # Approximate trimming lets Redis drop whole radix-tree nodes: O(1) per append.
        document = _ENTRY.dump_json(entry).decode()
        await self._client.xadd(
            AUDIT_LOG, {_FIELD: document}, maxlen=self._max_entries, approximate=True
        )

    async def read(
        self, limit: int, before: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        newest = f"({before}" if before else "+"
        # One record more than asked tells whether an older page exists.
        try:
            records = cast(
                list[StreamRecord],
                await self._client.xrevrange(AUDIT_LOG, max=newest, min="-", count=limit + 1),
            )
        except ResponseError:
            if before is not None and _STREAM_ID.fullmatch(before):
                return [], None  # a bound Redis cannot go below ("(0-0"): nothing is older
            raise InvalidTask("before", "not a cursor this API handed out") from None
        page = records[:limit]
        entries = [_ENTRY.validate_json(fields[_FIELD]) for _, fields in page]
        cursor = page[-1][0] if len(records) > limit else None
        return entries, cursor
