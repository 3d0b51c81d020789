"""Listing cursors, and the newest-first scan, capped per call, behind search."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from domain.errors import InvalidTask
from domain.task import Task
from domain.values import TaskPage, TaskQuery
from infrastructure.redis import codec
from infrastructure.redis.keys import keys_of

SCAN_CAP = 2_000  # candidates examined per call at most; the cursor resumes after them
_CHUNK = 200

Position = tuple[float, str, str]  # (index score, task id, queue): where a listing stands
IdPosition = tuple[str, str]  # (task id, queue): where an id-prefix search stands
Candidate = tuple[float, str, str]  # (index score, task id, queue)
Matcher = Callable[[Task, TaskQuery, str | None], bool]

# A cursor is a kind letter and its position, as JSON in URL-safe base64: "s" for a
# listing or scan (newest first), "i" for an id-prefix search (by id, descending).
_LISTING, _BY_ID = "s", "i"


@dataclass(frozen=True)
class Bound:
    """Where the next page starts: at most `score`, and below `after` (task id, queue) at
    that score; entries are ordered by (score, id, queue), descending."""

    score: float
    after: tuple[str, str] | None = None

    def admits(self, score: float, task_id: str, queue: str) -> bool:
        if self.after is None:
            return score <= self.score
        return score < self.score or (score == self.score and (task_id, queue) < self.after)


def encode_cursor(score: float, task_id: str, queue: str) -> str:
    return _encode([_LISTING, score, task_id, queue])


def encode_id_cursor(task_id: str, queue: str) -> str:
    return _encode([_BY_ID, task_id, queue])


def is_id_cursor(cursor: str | None) -> bool:
    return cursor is not None and _decode(cursor)[0] == _BY_ID


def decode_cursor(cursor: str) -> Position:
    match _decode(cursor):
        case ["s", float() | int() as score, str() as task_id, str() as queue] if _finite(score):
            return float(score), task_id, queue
    raise _invalid()


def _finite(score: float) -> bool:
    """A cursor holds the score of a real entry: never a boolean, an infinity or NaN
    (`1e999`, `NaN`), nor an integer no float holds (float() would raise)."""
    if isinstance(score, bool):
        return False
    try:
        return math.isfinite(float(score))
    except OverflowError:
        return False


def decode_id_cursor(cursor: str) -> IdPosition:
    match _decode(cursor):
        case ["i", str() as task_id, str() as queue]:
            return task_id, queue
    raise _invalid()


def _encode(parts: list[Any]) -> str:
    raw = json.dumps(parts, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid() from None
    if not isinstance(parts, list) or not parts or parts[0] not in (_LISTING, _BY_ID):
        raise _invalid()
    return parts


def _invalid() -> InvalidTask:
    return InvalidTask("cursor", "not a cursor this API handed out")


def cursor_bound(cursor: str | None, high: float) -> Bound:
    if cursor is None:
        return Bound(high)
    score, task_id, queue = decode_cursor(cursor)
    return Bound(min(score, high), (task_id, queue)) if score <= high else Bound(high)


class Scan:
    """Walks sorted sets newest first, examining at most SCAN_CAP candidates per call.

    Several sources (one per queue, say) are merged in score order; a chunk is only
    examined down to the lowest score every unfinished source has reached, so no entry
    is skipped between calls.
    """

    def __init__(self, client: Redis, query: TaskQuery, matches: Matcher) -> None:
        self._redis = client
        self._query = query
        self._matches = matches

    async def run(
        self, sources: Sequence[tuple[str, str]], *, tokens: Sequence[str], text: str | None
    ) -> TaskPage:
        """One page: `offset` matches are skipped first (they count against the cap)."""
        skip = self._query.offset
        limit = skip + self._query.limit
        bound = cursor_bound(self._query.cursor, float("inf"))
        found: list[tuple[Position, Task]] = []
        examined = 0
        exhausted = False
        while not exhausted and examined < SCAN_CAP and len(found) <= limit:
            candidates, last_chunk = await self._chunk(sources, bound)
            for candidate, task in await self._check(candidates, tokens, text):
                examined += 1
                bound = Bound(candidate[0], (candidate[1], candidate[2]))
                if task is not None:
                    found.append((candidate, task))
                if len(found) > limit or examined >= SCAN_CAP:
                    break
            else:
                exhausted = last_chunk or not candidates
        items = [task for _, task in found[skip:limit]]
        if len(found) > limit:
            return TaskPage(items, None, encode_cursor(*found[limit - 1][0]))
        resume = (
            None if exhausted or bound.after is None else encode_cursor(bound.score, *bound.after)
        )
        return TaskPage(items, None, resume)

    async def _chunk(
        self, sources: Sequence[tuple[str, str]], bound: Bound
    ) -> tuple[list[Candidate], bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, key in sources:
                pipe.zrevrangebyscore(key, bound.score, "-inf", 0, _CHUNK, withscores=True)
            replies = await pipe.execute()
        frontier = float("-inf")
        for entries in replies:
            if len(entries) == _CHUNK:  # this source may have more below its last entry
                frontier = max(frontier, entries[-1][1])
        merged = sorted(
            (
                (score, task_id, queue)
                for (queue, _), entries in zip(sources, replies, strict=True)
                for task_id, score in entries
                if bound.admits(score, task_id, queue) and score >= frontier
            ),
            reverse=True,
        )
        return merged, frontier == float("-inf")

    async def _check(
        self, candidates: Sequence[Candidate], tokens: Sequence[str], text: str | None
    ) -> list[tuple[Candidate, Task | None]]:
        others = list(tokens)  # the words besides the one whose index is scanned
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, task_id, queue in candidates:
                keys = keys_of(queue)
                pipe.hgetall(keys.task(task_id))
                for token in others:
                    pipe.zscore(keys.token(token), task_id)
            replies: list[Any] = await pipe.execute()
        step = 1 + len(others)
        checked = []
        for position, candidate in enumerate(candidates):
            fields, *scores = replies[position * step : (position + 1) * step]
            task = codec.decode(fields) if fields and None not in scores else None
            keep = task is not None and self._matches(task, self._query, text)
            checked.append((candidate, task if keep else None))
        return checked
