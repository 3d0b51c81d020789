"""The Lane on the tests' Redis: replies matched in order under load, errors, arguments."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from itertools import accumulate
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from infrastructure.redis.lane import Lane, Script
from infrastructure.redis.lane_connection import CommandNotSent
from tests.conftest import TEST_REDIS_URL
from tests.integration.lane.conftest import wait_until_blocked

TIMEOUT_MS = 3_000
WAIT_S = 10.0  # bound on any wait, far above what a correct client takes


@pytest.fixture
async def lane(redis: Redis) -> AsyncIterator[Lane]:
    """A Lane on the tests' database, flushed around the test by `redis`."""
    made = Lane.from_url(TEST_REDIS_URL, timeout_ms=TIMEOUT_MS)
    try:
        yield made
    finally:
        await made.aclose()


async def within(call: Any) -> Any:
    return await asyncio.wait_for(call, WAIT_S)


async def test_a_thousand_concurrent_commands_each_get_their_own_reply(lane: Lane) -> None:
    amounts = range(1, 1001)
    totals = await within(asyncio.gather(*(lane.execute("INCRBY", "sum", n) for n in amounts)))
    # Written in the order they were called, so each sees the sum of those before it.
    assert totals == list(accumulate(amounts))
    echoes = await within(asyncio.gather(*(lane.execute("ECHO", f"e{n}") for n in range(1000))))
    assert echoes == [f"e{n}" for n in range(1000)]


async def test_many_tasks_interleaving_their_commands_each_get_their_own_replies(
    lane: Lane,
) -> None:
    async def caller(name: int) -> list[str]:
        return [await lane.execute("ECHO", f"{name}:{n}") for n in range(40)]

    replies = await within(asyncio.gather(*(caller(name) for name in range(50))))
    assert replies == [[f"{name}:{n}" for n in range(40)] for name in range(50)]


async def test_an_error_reply_fails_its_own_command_only(lane: Lane) -> None:
    await lane.execute("SET", "text", "abc")
    outcomes = await within(
        asyncio.gather(
            lane.execute("ECHO", "before"),
            lane.execute("INCR", "text"),
            lane.execute("NOSUCHCOMMAND"),
            lane.execute("EVALSHA", "0" * 40, 0),
            lane.execute("GET", "text"),
            return_exceptions=True,
        )
    )
    assert outcomes[0] == "before"
    assert isinstance(outcomes[1], ResponseError)
    assert "not an integer" in str(outcomes[1])
    assert isinstance(outcomes[2], ResponseError)
    assert isinstance(outcomes[3], NoScriptError)  # classified as redis-py classifies it
    assert outcomes[4] == "abc"


async def test_replies_are_decoded_like_redis_py_s(lane: Lane, redis: Redis) -> None:
    await lane.execute("RPUSH", "list", "é", "b")
    assert await lane.execute("LRANGE", "list", 0, -1) == ["é", "b"]
    assert await lane.execute("LLEN", "list") == 2
    assert await lane.execute("GET", "missing") is None
    assert await lane.execute("HGETALL", "missing") == []


async def test_bytes_int_and_float_arguments(lane: Lane, redis: Redis) -> None:
    await lane.execute("MSET", b"bytes", "é".encode(), "int", 42, "float", 1.5)
    assert await redis.mget("bytes", "int", "float") == ["é", "42", "1.5"]
    assert await lane.execute("INCRBYFLOAT", "float", 0.25) == "1.75"
    assert await lane.execute("INCRBY", "int", -2) == 40


@pytest.mark.parametrize("bad", [None, True, ["a"], {"a": 1}, object()])
async def test_other_arguments_raise_type_error_before_anything_is_written(
    lane: Lane, redis: Redis, bad: Any
) -> None:
    with pytest.raises(TypeError):
        await lane.execute("SET", "bad", bad)
    with pytest.raises(TypeError):
        await lane.run(Script("return 1"), ["bad"], [bad])
    with pytest.raises(TypeError):
        await lane.execute()
    assert await lane.execute("ECHO", "next") == "next"
    assert await redis.exists("bad") == 0


async def test_an_undecodable_reply_fails_its_own_command_only(lane: Lane, redis: Redis) -> None:
    await lane.execute("SET", "raw", b"\xff\xfe")
    outcomes = await within(
        asyncio.gather(
            lane.execute("GET", "raw"), lane.execute("ECHO", "after"), return_exceptions=True
        )
    )
    assert isinstance(outcomes[0], UnicodeDecodeError)
    assert outcomes[1] == "after"


async def test_a_script_runs_by_its_sha_and_is_loaded_when_redis_lacks_it(
    lane: Lane, redis: Redis
) -> None:
    # A fresh source, so Redis cannot know it (SCRIPT FLUSH is tested on a server of our own).
    script = Script(f"return {{KEYS[1], ARGV[1], ARGV[2], '{uuid.uuid4()}'}}")
    assert await redis.script_exists(script.sha) == [False]
    first = await lane.run(script, ["k"], [1.5, b"b"])
    assert first[:3] == ["k", "1.5", "b"]
    assert await redis.script_exists(script.sha) == [True]
    assert await lane.run(script, ["k2"], [2, "x"]) == ["k2", "2", "x", first[3]]


async def test_a_script_error_is_a_response_error(lane: Lane) -> None:
    with pytest.raises(ResponseError, match="boom"):
        await lane.run(Script("return redis.error_reply('boom')"), [], [])
    assert await lane.execute("ECHO", "next") == "next"


async def test_a_cancelled_caller_does_not_shift_the_replies(lane: Lane, redis: Redis) -> None:
    # Redis answers one connection in order, so the commands behind the BLPOP wait for it.
    lane_id = await lane.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(lane.execute("BLPOP", "queue", 2))
    behind = [asyncio.ensure_future(lane.execute("ECHO", name)) for name in ("b", "c")]
    await wait_until_blocked(redis, lane_id)
    blocked.cancel()
    await redis.rpush("queue", "item")  # the cancelled BLPOP's reply: read, and dropped
    assert await within(asyncio.gather(*behind)) == ["b", "c"]
    assert await lane.execute("ECHO", "d") == "d"
    assert await redis.llen("queue") == 0
    assert blocked.cancelled()


async def test_a_command_lost_after_it_was_written_is_not_sent_again(
    lane: Lane, redis: Redis
) -> None:
    lane_id = await lane.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(lane.execute("BLPOP", "queue", 5))
    await wait_until_blocked(redis, lane_id)
    await redis.client_kill_filter(_id=lane_id)
    with pytest.raises(RedisConnectionError) as lost:
        await within(blocked)
    assert not isinstance(lost.value, CommandNotSent)  # it was written: it may have run
    # A fresh connection answers at once: the BLPOP was not sent again ahead of this.
    assert await within(lane.execute("ECHO", "after")) == "after"
    assert await lane.execute("CLIENT", "ID") != lane_id


async def test_a_connection_dropped_while_idle_is_opened_again(lane: Lane, redis: Redis) -> None:
    lane_id = await lane.execute("CLIENT", "ID")
    await redis.client_kill_filter(_id=lane_id)
    assert await within(lane.execute("ECHO", "again")) == "again"


async def test_the_database_of_the_url_is_selected(lane: Lane, redis: Redis) -> None:
    await lane.execute("SET", "where", "here")
    assert await redis.get("where") == "here"  # the same database as TEST_REDIS_URL's


async def test_closing_fails_the_waiting_commands_and_a_later_command_opens_again(
    lane: Lane, redis: Redis
) -> None:
    lane_id = await lane.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(lane.execute("BLPOP", "queue", 5))
    await wait_until_blocked(redis, lane_id)
    await within(lane.aclose())
    with pytest.raises(RedisConnectionError, match="closed by the client"):
        await within(blocked)
    assert await lane.execute("ECHO", "again") == "again"
