"""RedisAuditLog: IAuditLog on one capped Redis stream, and a small one per target."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from domain.audit import AuditEntry
from domain.errors import InvalidTask
from infrastructure.redis.keys import AUDIT_LOG, audit_of

MAX_ENTRIES = 100_000
PER_TARGET = 100  # the latest entries kept per target
TARGET_TTL_MS = 30 * 24 * 3_600_000  # a target's entries, after its last one (see target_ttl_ms)
_STREAM_ID = re.compile(r"\d+-\d+")
_ENTRY = TypeAdapter(AuditEntry)
_FIELD = "entry"

StreamRecord = tuple[str, dict[str, str]]


def target_ttl_ms(retentions_ms: Iterable[int]) -> int:
    """How long a target's entries outlive its last one: as long as the longest kept
    finished task (by then the task is gone), counting a retention of 0 (forever) as
    TARGET_TTL_MS, so that no setting lets the per-target streams pile up."""
    return max((ms or TARGET_TTL_MS for ms in retentions_ms), default=TARGET_TTL_MS)


class RedisAuditLog:
    """The audit log in a stream; the client must decode responses to str.

    Stream ids are the cursors: Redis makes them strictly increasing, so "older than the
    last id seen" resumes a page exactly, even while new entries are appended. Each entry
    also goes to its target's stream, capped at `per_target` entries, which expires
    `target_ttl_ms` after its latest entry: a task's page reads its entries there, without
    a scan of the whole log. Both are written in one MULTI (one hash slot).
    """

    def __init__(
        self,
        client: Redis,
        max_entries: int = MAX_ENTRIES,
        *,
        per_target: int = PER_TARGET,
        target_ttl_ms: int = TARGET_TTL_MS,
    ) -> None:
        self._client = client
        self._max_entries = max_entries
        self._per_target = per_target
        self._target_ttl_ms = target_ttl_ms

    async def record(self, entry: AuditEntry) -> None:
        document = _ENTRY.dump_json(entry).decode()
        target = audit_of(entry.target)
        async with self._client.pipeline(transaction=True) as pipe:
            # Approximate trimming lets Redis drop whole radix-tree nodes: O(1) per append.
            pipe.xadd(AUDIT_LOG, {_FIELD: document}, maxlen=self._max_entries, approximate=True)
            # A target's stream is small: trimmed exactly, one entry per append.
            pipe.xadd(target, {_FIELD: document}, maxlen=self._per_target, approximate=False)
            pipe.pexpire(target, self._target_ttl_ms)
            await pipe.execute()

    async def read(
        self, limit: int, before: str | None = None, target: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        key = AUDIT_LOG if target is None else audit_of(target)
        newest = f"({before}" if before else "+"
        # One record more than asked tells whether an older page exists.
        try:
            records = cast(
                list[StreamRecord],
                await self._client.xrevrange(key, max=newest, min="-", count=limit + 1),
            )
        except ResponseError:
            if before is not None and _STREAM_ID.fullmatch(before):
                return [], None  # a bound Redis cannot go below ("(0-0"): nothing is older
            raise InvalidTask("before", "not a cursor this API handed out") from None
        page = records[:limit]
        entries = [_ENTRY.validate_json(fields[_FIELD]) for _, fields in page]
        cursor = page[-1][0] if len(records) > limit else None
        return entries, cursor
