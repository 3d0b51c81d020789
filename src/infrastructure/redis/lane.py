"""Lane: a lean asyncio Redis client for the hot path, pipelining every command on one
connection."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, unquote, urlsplit

from hiredis import pack_command
from redis.exceptions import AuthenticationError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infrastructure.redis.client import Sentinels
from infrastructure.redis.lane_connection import CommandNotSent, LaneConnection

CommandArg = str | int | float | bytes
# hiredis's stub declares a tuple of one item; it packs a tuple of any length.
_pack = cast(Callable[[tuple[CommandArg, ...]], bytes], pack_command)


class ScriptLane(Protocol):
    """What the adapters call the hot path through: a Lane, or on a Cluster a ClusterLane."""

    async def execute(self, *args: CommandArg) -> Any: ...

    async def run(
        self, script: Script, keys: Sequence[CommandArg], args: Sequence[CommandArg]
    ) -> Any: ...


class Script:
    """A Lua script, known to Redis by the SHA1 of its source."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Endpoint:
    """Where a Lane connects, and what it sends first on each connection."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host and port
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    sentinels: Sentinels | None = None  # then the master they name, asked on each connect

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """`redis://[[user]:password@]host:port/db`, `rediss://...` (TLS) or
        `unix://[[user]:password@]/path?db=N`."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a Redis URL: scheme {parts.scheme!r}")
        db = parse_qs(parts.query).get("db", [""])[0]
        if parts.scheme == "unix":
            place: dict[str, Any] = {"path": unquote(parts.path)}
        else:
            db = db or parts.path.strip("/")
            place = {"host": parts.hostname or "localhost", "port": parts.port or 6379}
        return cls(
            **place,
            tls=parts.scheme == "rediss",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            db=int(db or 0),
        )

    def handshake(self) -> list[tuple[CommandArg, ...]]:
        auth: list[tuple[CommandArg, ...]] = []
        if self.password is not None:
            user = (self.username,) if self.username else ()
            auth = [("AUTH", *user, self.password)]
        return [*auth, ("SELECT", self.db)] if self.db else auth

    async def open(self, timeout_s: float) -> LaneConnection:
        loop = asyncio.get_running_loop()
        factory = partial(LaneConnection, timeout_s)
        if self.path is not None:
            _, unix = await loop.create_unix_connection(factory, self.path)
            return unix
        context = ssl.create_default_context() if self.tls else None
        host, port = self.host, self.port
        if self.sentinels is not None:
            host, port = await self.sentinels.master_address(timeout_s)
        transport, tcp = await loop.create_connection(factory, host, port, ssl=context)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a half-open connection (peer gone silently) is found in time
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return tcp

    def __str__(self) -> str:
        if self.sentinels is not None:
            return f"the master {self.sentinels.master!r} of the sentinels"
        return self.path or f"{self.host}:{self.port}"


class Lane:
    """One Redis connection shared by every caller, commands pipelined automatically.

    Ordering: commands are written in the order `execute` (or `run`) was called and the
    replies are matched to them in that order; commands called within one loop pass go
    out in one write. Replies are str, int, list or None, as redis-py's with
    `decode_responses=True`; an error reply raises the exception redis-py would
    (ResponseError, NoScriptError, ...).

    Delivery: the connection is opened on the first command and again on the first
    command after it was lost (AUTH and SELECT first, each time). A command that could
    not be written (the connection was refused, or lost before it went out) is sent once
    more on a fresh connection; raised again it is a CommandNotSent (a ConnectionError),
    and Redis never saw it. A command lost after it was written raises ConnectionError and
    is not sent again: it may have run.

    Timeout: a command without a reply within `timeout_ms` raises TimeoutError. Redis may
    still run it (it runs what it has read when it resumes). Its connection is then closed
    and every other command waiting on it fails too, with TimeoutError; a timeout is never
    retried. Opening a connection has the same budget. A caller that is cancelled does not
    disturb the others: its reply is read and dropped.

    Not for blocking commands (BLPOP, BZPOPMIN, ...) nor pub/sub: Redis answers a
    connection in order, so one blocked command would hold up every caller behind it.
    """

    def __init__(self, endpoint: Endpoint, *, timeout_ms: int) -> None:
        self.endpoint = endpoint
        self._timeout_s = timeout_ms / 1000
        self._conn: LaneConnection | None = None
        self._connecting: asyncio.Task[LaneConnection] | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout_ms: int, sentinels: Sentinels | None = None) -> Lane:
        endpoint = dataclasses.replace(Endpoint.parse(url), sentinels=sentinels)
        return cls(endpoint, timeout_ms=timeout_ms)

    async def execute(self, *args: CommandArg) -> Any:
        """Send one command and return its reply. Arguments are str, int, float or bytes;
        anything else raises TypeError before anything is written."""
        if not args:
            raise TypeError("a command needs a name")
        packed = _pack(args)
        try:
            return await self._submit(packed)
        except CommandNotSent:
            return await self._submit(packed)

    async def run(
        self,
        script: Script,
        keys: Sequence[CommandArg],
        args: Sequence[CommandArg],
        *,
        asking: bool = False,
    ) -> Any:
        """EVALSHA `script`; one that Redis does not know is loaded and run once more.
        With `asking`, right behind ASKING on the same connection: a Cluster node that is
        importing a slot runs the one command after ASKING for a key of that slot."""
        send = self._asking if asking else self._call
        packed = _pack(("EVALSHA", script.sha, len(keys), *keys, *args))
        try:
            return await send(packed)
        except NoScriptError:
            await self._call(_pack(("SCRIPT", "LOAD", script.source)))
            return await send(packed)

    async def _asking(self, packed: bytes) -> Any:
        conn = await self._connection()
        await conn.drain()
        # Queued together, with no await between: nothing of another caller's comes between.
        asking, reply = conn.request(_pack(("ASKING",))), conn.request(packed)
        await asking
        return await reply

    async def aclose(self) -> None:
        """Close the connection; commands still waiting fail with ConnectionError."""
        if self._connecting is not None:
            await asyncio.wait({self._connecting})
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _call(self, packed: bytes) -> Any:
        try:
            return await self._submit(packed)
        except CommandNotSent:
            return await self._submit(packed)

    def _submit(self, packed: bytes) -> Awaitable[Any]:
        conn = self._conn
        if conn is not None and conn.ready:
            return conn.request(packed)
        return self._submit_when_ready(packed)

    async def _submit_when_ready(self, packed: bytes) -> Any:
        conn = await self._connection()
        await conn.drain()
        return await conn.request(packed)

    async def _connection(self) -> LaneConnection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(self._connected)
        # Shielded: one caller cancelled must not abort the connection the others wait for.
        return await asyncio.shield(self._connecting)

    def _connected(self, task: asyncio.Task[LaneConnection]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved, even when every waiter was cancelled

    async def _connect(self) -> LaneConnection:
        opened: list[LaneConnection] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                opened.append(await self.endpoint.open(self._timeout_s))
                await self._handshake(opened[0])
        except BaseException as exc:
            if opened:
                await opened[0].close()
            translated = _connect_error(exc, self.endpoint)
            if translated is exc:
                raise
            raise translated from exc
        self._conn = opened[0]
        return opened[0]

    async def _handshake(self, conn: LaneConnection) -> None:
        # Awaited before any caller's command is written: pipelined behind a failed AUTH or
        # SELECT, those commands would run unauthenticated or in database 0.
        replies = [conn.request(_pack(command)) for command in self.endpoint.handshake()]
        for outcome in await asyncio.gather(*replies, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome


def _connect_error(exc: BaseException, endpoint: Endpoint) -> BaseException:
    """The error a failed connection attempt raises: CommandNotSent when a fresh attempt
    may succeed (refused, reset), TimeoutError when Redis did not answer in time."""
    if isinstance(exc, TimeoutError):
        return RedisTimeoutError(f"Timeout connecting to {endpoint}")
    if isinstance(exc, OSError):
        return CommandNotSent(f"Error connecting to {endpoint}: {exc}")
    if isinstance(exc, RedisConnectionError) and not isinstance(exc, AuthenticationError):
        return CommandNotSent(f"Error connecting to {endpoint}: {exc}")
    return exc
