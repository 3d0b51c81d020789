"""SharedAnswer: one answer a second, however many ask; a failure is not kept."""

from __future__ import annotations

import asyncio

import pytest

from interfaces.http.overview import SharedAnswer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_callers_within_the_age_share_one_answer() -> None:
    clock = Clock()
    shared = SharedAnswer(1.0, clock)
    made: list[int] = []

    async def make() -> bytes:
        made.append(1)
        return f"answer {len(made)}".encode()

    assert await shared.get(make) == b"answer 1"
    clock.now += 0.99
    assert await shared.get(make) == b"answer 1"
    clock.now += 0.01
    assert await shared.get(make) == b"answer 2"
    assert len(made) == 2


async def test_callers_that_come_while_it_is_made_wait_for_that_one() -> None:
    shared = SharedAnswer(1.0, Clock())
    release = asyncio.Event()
    made: list[int] = []

    async def make() -> bytes:
        made.append(1)
        await release.wait()
        return b"the one"

    waiting = [asyncio.create_task(shared.get(make)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(*waiting) == [b"the one"] * 20
    assert len(made) == 1


async def test_a_caller_that_leaves_does_not_cancel_the_others_answer() -> None:
    shared = SharedAnswer(1.0, Clock())
    release = asyncio.Event()

    async def make() -> bytes:
        await release.wait()
        return b"kept"

    leaving = asyncio.create_task(shared.get(make))
    staying = asyncio.create_task(shared.get(make))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()

    assert await staying == b"kept"


async def test_a_failure_reaches_its_callers_and_the_next_one_tries_again() -> None:
    shared = SharedAnswer(1.0, Clock())
    attempts: list[int] = []

    async def make() -> bytes:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("redis went away")
        return b"back"

    with pytest.raises(ConnectionError):
        await shared.get(make)
    assert await shared.get(make) == b"back"


async def test_the_age_counts_from_when_the_answer_began_to_be_read() -> None:
    clock = Clock()
    shared = SharedAnswer(1.0, clock)

    async def slow() -> bytes:
        clock.now += 0.8  # reading took 0.8 s: the answer is that old when it arrives
        return b"read at 100.0"

    await shared.get(slow)
    clock.now += 0.25

    async def fresh() -> bytes:
        return b"read at 101.05"

    assert await shared.get(fresh) == b"read at 101.05"
