"""One pipelined Redis connection: a FIFO of futures answered in order, one watchdog timer."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A sentinel no RESP2 reply can be: hiredis answers it while a reply is still incomplete.
_INCOMPLETE: Any = object()
_NOT_SENT = "the connection to Redis was lost before the command was sent"


class CommandNotSent(RedisConnectionError):
    """The connection was gone, or could not be made, before the command was written:
    Redis never saw it, so it is safe to send again."""


def reply_reader() -> hiredis.Reader:
    """Replies as str (like redis-py with decode_responses=True); an error reply as the
    exception redis-py would raise for it (ResponseError, NoScriptError, ...), through
    redis-py's own table (a private module: the version is locked, and the Lane's tests
    check the classes), so callers handle errors the same way on either client."""
    return hiredis.Reader(
        encoding="utf-8", replyError=BaseParser.parse_error, notEnoughData=_INCOMPLETE
    )


class LaneConnection(asyncio.Protocol):
    """Commands written in the order `request` was called, coalesced into one write per
    loop pass; the n-th reply answers the n-th command. A command whose caller was
    cancelled keeps its place in the FIFO, so its reply is read and dropped.

    One timer watches the oldest unanswered write: when it gets no reply within the
    timeout the connection is aborted and every command still waiting fails (a reply
    arriving later could otherwise answer the wrong command).
    """

    def __init__(self, timeout_s: float) -> None:
        self.ready = False  # open and not paused: a command may be queued at once
        self.closed = False
        self._timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self._reader = reply_reader()
        self._transport: asyncio.Transport | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._buffer: list[bytes] = []
        self._queued = 0  # commands ever queued, written and answered on this connection
        self._written = 0
        self._answered = 0
        self._writes: deque[tuple[int, float]] = deque()  # (commands written by then, when)
        self._watchdog: asyncio.TimerHandle | None = None
        self._paused = False
        self._drainers: list[asyncio.Future[None]] = []
        self._lost = self._loop.create_future()

    def request(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue a packed command (the connection must be `ready`): the future of its reply."""
        future = self._loop.create_future()
        if self.closed:  # lost between the caller's check and now (a connection just made)
            future.set_exception(CommandNotSent(_NOT_SENT))
            return future
        self._pending.append(future)
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(packed)
        self._queued += 1
        return future

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its high-water mark."""
        while self._paused and not self.closed:
            waiter = self._loop.create_future()
            self._drainers.append(waiter)
            await waiter
        if self.closed:
            raise CommandNotSent(_NOT_SENT)

    async def close(self) -> None:
        """Close the connection; commands still waiting fail with ConnectionError."""
        self._shut(lambda: RedisConnectionError("the connection was closed by the client"))
        if self._transport is not None:  # aborted: connection_lost follows
            await asyncio.shield(self._lost)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ready = True

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._shut(lambda: RedisConnectionError(f"the connection to Redis was lost{reason}"))
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True
        self.ready = False

    def resume_writing(self) -> None:
        self._paused = False
        self.ready = not self.closed
        self._wake_drainers()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                self._answer()
                return
            except UnicodeDecodeError as exc:  # hiredis consumed that whole reply
                self._answered += 1
                self._settle(self._pending.popleft(), exc)
            except (hiredis.ProtocolError, IndexError):  # garbage, or a reply to nothing
                self._shut(lambda: RedisConnectionError("Redis sent an unreadable reply"))
                return

    def _answer(self) -> None:
        gets = self._reader.gets
        popleft = self._pending.popleft
        while (reply := gets()) is not _INCOMPLETE:
            self._answered += 1
            future = popleft()
            if future.done():
                continue  # its caller was cancelled
            if isinstance(reply, ReadOnlyError):
                # A master demoted to a replica (a failover): this connection can only
                # fail now; the next one is opened where the master is.
                future.set_exception(RedisConnectionError(f"Redis is a replica now: {reply}"))
                self._shut(lambda: RedisConnectionError("Redis became a replica"))
                return
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def _flush(self) -> None:
        if self.closed or self._transport is None:
            return
        buffer = self._buffer
        self._buffer = []
        self._transport.write(buffer[0] if len(buffer) == 1 else b"".join(buffer))
        self._written = self._queued
        writes = self._writes
        while writes and writes[0][0] <= self._answered:  # keeps it short between watches
            writes.popleft()
        now = self._loop.time()
        writes.append((self._written, now))
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(now + self._timeout_s, self._watch)

    def _watch(self) -> None:
        # Both loops read the sockets between a callback that blocked them and their next
        # look at due timers, so a reply that came meanwhile is read before this runs.
        self._watchdog = None
        writes = self._writes
        while writes and writes[0][0] <= self._answered:
            writes.popleft()
        if not writes:
            return
        deadline = writes[0][1] + self._timeout_s
        if self._loop.time() < deadline:
            self._watchdog = self._loop.call_at(deadline, self._watch)
        else:
            millis = round(self._timeout_s * 1000)
            self._shut(lambda: RedisTimeoutError(f"no reply from Redis within {millis} ms"))

    def _shut(self, error: Callable[[], Exception]) -> None:
        """Fail every waiting command: a written one with `error()` (it may have run), one
        still in the buffer with CommandNotSent. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.ready = False
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._transport is not None:
            self._transport.abort()
        unwritten = self._queued - self._written
        self._buffer = []
        pending, self._pending = self._pending, deque()
        written = len(pending) - unwritten
        for index, future in enumerate(pending):
            self._settle(future, error() if index < written else CommandNotSent(_NOT_SENT))
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        drainers, self._drainers = self._drainers, []
        for waiter in drainers:
            if not waiter.done():
                waiter.set_result(None)

    @staticmethod
    def _settle(future: asyncio.Future[Any], error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)
