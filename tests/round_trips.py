"""Counting the round trips a test's code makes to Redis, on the client side (the server
may be shared with other clients): each trip is the list of commands it carried."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline


@contextmanager
def round_trips(
    monkeypatch: pytest.MonkeyPatch, client: Redis | None = None
) -> Iterator[list[list[str]]]:
    """The commands of each round trip meanwhile (a pipeline is one trip): those `client`
    sends, or, without one, those of every client of this process."""
    trips: list[list[str]] = []
    pipelined = Pipeline.execute

    async def many(self: Pipeline, *args: Any, **options: Any) -> Any:
        trips.append([str(command[0][0]) for command in self.command_stack])
        return await pipelined(self, *args, **options)

    with monkeypatch.context() as patched:
        patched.setattr(Pipeline, "execute", many)
        if client is None:
            unbound: Callable[..., Awaitable[Any]] = Redis.execute_command

            async def any_client(self: Redis, *args: Any, **options: Any) -> Any:
                trips.append([str(args[0])])
                return await unbound(self, *args, **options)

            patched.setattr(Redis, "execute_command", any_client)
        else:
            bound: Callable[..., Awaitable[Any]] = client.execute_command

            async def this_client(*args: Any, **options: Any) -> Any:
                trips.append([str(args[0])])
                return await bound(*args, **options)

            patched.setattr(client, "execute_command", this_client)
        yield trips
