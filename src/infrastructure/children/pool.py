"""ChildPool: the worker's child processes, started with 'spawn' and read by its event loop."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from application.handlers import FenceLost
from application.running.children import ChildDied, ChildJob
from application.running.failures import RaisedInChild
from domain.values import FencedWrite
from infrastructure.children.child import ChildSpec, serve

TERM_GRACE_S = 1.0  # after SIGTERM, this long before SIGKILL
CLOSE_GRACE_S = 2.0  # an idle child told to leave at shutdown, before it is ended
REAP_POLL_S = 0.002
# The worker runs an event loop and threads: a forked copy of it would inherit their
# locks mid-use. 'spawn' starts a fresh interpreter that imports only what it needs.
_SPAWN = multiprocessing.get_context("spawn")


def _ignore(progress: Any) -> None:
    """No job is running: nobody to tell."""


async def _no_store(write: FencedWrite) -> Any:
    raise RuntimeError("this pool's jobs have no fenced writes")


class _Child:
    """One child process and the worker's end of its pipe, both watched by the event loop
    (the pipe for its messages, the process's sentinel for its end), never waited on."""

    def __init__(self, spec: ChildSpec, on_gone: Callable[[_Child], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_gone = on_gone
        self.conn, child_end = _SPAWN.Pipe()
        # daemon: should the worker exit without closing its pool, multiprocessing ends
        # the children at exit (a handler cannot start processes of its own with it).
        self.process = _SPAWN.Process(
            target=serve, args=(child_end, spec), name="conveyor-child", daemon=True
        )
        # In the event loop: fork, exec and a few hundred bytes down a pipe, 0.5-5 ms here,
        # once per child; its imports happen in the child, before its "ready".
        self.process.start()
        child_end.close()
        assert self.process.pid is not None
        self.pid: int = self.process.pid
        self._fd = self.conn.fileno()
        self.reply: asyncio.Future[Any] | None = self._loop.create_future()  # its "ready"
        self.on_progress: Callable[[Any], None] = _ignore
        self.on_write: Callable[[FencedWrite], Awaitable[Any]] = _no_store
        self._writes: set[asyncio.Task[None]] = set()  # answered to the child when done
        self.gone: asyncio.Future[int] = self._loop.create_future()  # its exit code
        self._reaper: asyncio.Task[None] | None = None
        self._reading = True
        self._loop.add_reader(self._fd, self._readable)
        self._loop.add_reader(self.process.sentinel, self._ended)

    async def ready(self) -> None:
        await self._answer()

    async def call(
        self,
        job: ChildJob,
        on_progress: Callable[[Any], None],
        on_write: Callable[[FencedWrite], Awaitable[Any]] = _no_store,
    ) -> Any:
        """The child's reply to `job`: ("done", result) or ("failed", failure)."""
        self.reply = self._loop.create_future()
        self.on_progress = on_progress
        self.on_write = on_write
        with contextlib.suppress(OSError):  # it died idle: its reaper answers for it
            self.conn.send(job)
        return await self._answer()

    async def _answer(self) -> Any:
        assert self.reply is not None
        try:
            return await self.reply
        finally:
            self.reply = None
            self.on_progress = _ignore
            self.on_write = _no_store

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                kind, value = self.conn.recv()
                if kind == "progress":
                    self.on_progress(value)
                elif kind == "write":
                    write = self._loop.create_task(self._write(self.on_write, value))
                    self._writes.add(write)
                    write.add_done_callback(self._writes.discard)
                elif self.reply is not None and not self.reply.done():
                    self.reply.set_result((kind, value))
        except (EOFError, OSError):
            self._stop_reading()

    async def _write(
        self, on_write: Callable[[FencedWrite], Awaitable[Any]], fenced: FencedWrite
    ) -> None:
        """Carry out the child's fenced write and send it the answer it waits for."""
        try:
            answer: tuple[str, Any] = ("written", await on_write(fenced))
        except FenceLost as exc:
            answer = ("refused", ("fence_lost", str(exc)))
        except ValueError as exc:
            answer = ("refused", ("invalid", str(exc)))
        except Exception as exc:  # noqa: BLE001 - the handler's write failed: it decides
            answer = ("refused", ("failed", repr(exc)))
        with contextlib.suppress(OSError):  # it was ended meanwhile
            self.conn.send(answer)

    def _stop_reading(self) -> None:
        # Once only: after the pipe is closed its descriptor's number may be reused.
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _ended(self) -> None:
        self._loop.remove_reader(self.process.sentinel)
        self._readable()  # what it said before it ended comes first
        self._stop_reading()
        self._reaper = self._loop.create_task(self._reap())

    async def _reap(self) -> None:
        # Its sentinel closes as it exits, a moment before the kernel can report its status.
        code = self.process.exitcode
        while code is None:
            await asyncio.sleep(REAP_POLL_S)
            code = self.process.exitcode
        self.conn.close()
        self.process.close()
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ChildDied(_death(self.pid, code)))
        self.gone.set_result(code)
        self._on_gone(self)

    def hang_up(self) -> None:
        """Close the worker's end of the pipe: an idle child then leaves by itself."""
        self._stop_reading()
        self.conn.close()

    async def end(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after TERM_GRACE_S; back once it
        has been reaped."""
        if self.gone.done():
            return
        self.process.terminate()
        try:
            async with asyncio.timeout(TERM_GRACE_S):
                await asyncio.shield(self.gone)
        except TimeoutError:
            self.process.kill()
            await asyncio.shield(self.gone)
        except asyncio.CancelledError:
            if not self.gone.done():
                self.process.kill()
            raise


def _death(pid: int, code: int) -> str:
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    return f"the handler's child process (pid {pid}) {how} before it answered"


class ChildPool:
    """Up to `size` children, started one at a time as jobs need them (a worker with no
    process task types starts none). A child that ended, or was ended, is replaced by
    the next job that finds no idle child."""

    def __init__(self, spec: ChildSpec, size: int, log: Any) -> None:
        self._spec = spec
        self._size = size
        self._log = log
        self._children: set[_Child] = set()  # started and not yet reaped
        self._idle: list[_Child] = []
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        return sorted(child.pid for child in self._children)

    async def run(
        self,
        job: ChildJob,
        on_progress: Callable[[Any], None],
        on_write: Callable[[FencedWrite], Awaitable[Any]] | None = None,
    ) -> Any:
        child = await self._take()
        try:
            kind, value = await child.call(job, on_progress, on_write or _no_store)
        except BaseException:  # cancelled (timeout, abort, shutdown), or the child died
            await child.end()
            raise
        self._idle.append(child)
        self._wake_one()
        if kind == "failed":
            raise RaisedInChild(value)
        return value

    async def _take(self) -> _Child:
        while True:
            if self._closed:
                raise ChildDied("the worker's child processes are shut down")
            while self._idle:
                child = self._idle.pop()
                if not child.gone.done():
                    return child
            if len(self._children) < self._size:
                return await self._start()
            await self._wait()

    async def _start(self) -> _Child:
        child = _Child(self._spec, self._gone)
        self._children.add(child)
        try:
            await child.ready()
        except BaseException:
            await child.end()
            raise
        self._log.info("child.started", pid=child.pid)
        return child

    async def _wait(self) -> None:
        """Until a child is given back or ends (the first waiter first)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():  # woken, then cancelled: wake the next one instead
                self._wake_one()
            raise

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _gone(self, child: _Child) -> None:
        self._children.discard(child)
        if child in self._idle:
            self._idle.remove(child)
        if not self._closed:
            self._log.info("child.ended", pid=child.pid, exit_code=child.gone.result())
        self._wake_one()

    async def close(self) -> None:
        """Every child gone: idle ones are told to leave, busy ones (the worker drained
        its tasks first, so none should be) are ended."""
        self._closed = True
        for waiter in self._waiting:  # woken to find the pool closed
            if not waiter.done():
                waiter.set_result(None)
        children = list(self._children)
        for child in children:
            if child in self._idle:
                child.hang_up()
            else:
                await child.end()
        for child in children:
            try:
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await asyncio.shield(child.gone)
            except TimeoutError:
                await child.end()
