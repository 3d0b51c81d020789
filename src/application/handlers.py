"""What a task handler sees: its context, and the errors it may raise to steer retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from domain.values import FencedWrite


class Logger(Protocol):
    """The slice of a structured logger that handlers and use cases call."""

    def debug(self, event: str, **fields: Any) -> Any: ...
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...
    def error(self, event: str, **fields: Any) -> Any: ...
    def exception(self, event: str, **fields: Any) -> Any: ...


class NonRetryableError(Exception):
    """Raise from a handler to fail the task at once, whatever attempts remain."""


class RetryAfter(Exception):
    """Raise from a handler to retry after `delay_ms` instead of the configured backoff."""

    def __init__(self, delay_ms: int, reason: str = "") -> None:
        super().__init__(reason or f"retry requested in {delay_ms} ms")
        self.delay_ms = delay_ms


class TaskCancelled(Exception):
    """Raised by `raise_if_cancelled()` once the task's execution has been aborted."""


class FenceLost(TaskCancelled):
    """Raised by a fenced write (`ctx.fenced`) once this execution no longer holds its task:
    the write was not applied, and the handler should stop."""


Sent = TypeVar("Sent")
Scalar = str | int | float

_MAX_NAME = 512
_MAX_VALUES = 1_000  # per call; more values take more calls
_MAX_INT = 2**63 - 1


class FencedWrites(Generic[Sent]):
    """A handler's own Redis writes, each applied only if its execution still holds the
    task (active, under its fencing token), checked by Redis in the same script as the
    write: a worker that lost its task (stopped past its lease, partitioned) gets
    `FenceLost` and writes nothing, while the worker that took the task over writes on.

    `ctx.fenced` awaits each call (async handlers); `ctx.fenced_sync` blocks (sync
    handlers, which run in a thread, and those in child processes). A name is one of the
    task's queue's effect keys: `key(name)` is the full Redis key, for whatever reads it
    (in the queue's hash slot, so on a Cluster the check and the write are one script).
    Values are strings or numbers, stored as Redis stores them: as strings.
    """

    __slots__ = ("_key", "_send")

    def __init__(self, send: Callable[[FencedWrite], Sent], key: Callable[[str], str]) -> None:
        self._send = send
        self._key = key

    def key(self, name: str) -> str:
        return self._key(_name(name))

    def set(self, name: str, value: Scalar, *, ttl_ms: int | None = None) -> Sent:
        """SET, with an expiry when `ttl_ms` is given."""
        expiry = () if ttl_ms is None else ("PX", str(_positive("ttl_ms", ttl_ms)))
        return self._write("SET", name, _scalar(value), *expiry)

    def delete(self, name: str) -> Sent:
        """DEL: 1 if the key was there, else 0."""
        return self._write("DEL", name)

    def expire(self, name: str, ttl_ms: int) -> Sent:
        """PEXPIRE: 1 if the key was there, else 0."""
        return self._write("PEXPIRE", name, str(_positive("ttl_ms", ttl_ms)))

    def incrby(self, name: str, amount: int = 1) -> Sent:
        """INCRBY: the new value."""
        return self._write("INCRBY", name, str(_integer("amount", amount)))

    def hset(self, name: str, fields: Mapping[str, Scalar]) -> Sent:
        """HSET: how many of the fields are new."""
        pairs = [part for item in fields.items() for part in (_field(item[0]), _scalar(item[1]))]
        return self._write("HSET", name, *_counted(pairs, len(fields)))

    def hincrby(self, name: str, field: str, amount: int = 1) -> Sent:
        """HINCRBY: the field's new value."""
        return self._write("HINCRBY", name, _field(field), str(_integer("amount", amount)))

    def rpush(self, name: str, *values: Scalar) -> Sent:
        """RPUSH: the list's new length."""
        return self._write("RPUSH", name, *_counted([_scalar(v) for v in values], len(values)))

    def sadd(self, name: str, *members: Scalar) -> Sent:
        """SADD: how many of the members are new."""
        return self._write("SADD", name, *_counted([_scalar(m) for m in members], len(members)))

    def _write(self, command: str, name: str, *args: str) -> Sent:
        return self._send(FencedWrite(command, _name(name), args))


def _name(name: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME:
        raise ValueError(f"a fenced write's name is a string of 1 to {_MAX_NAME} characters")
    return name


def _field(field: str) -> str:
    if not isinstance(field, str):
        raise TypeError(f"a hash field is a string, not {type(field).__name__}")
    return field


def _scalar(value: Scalar) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    raise TypeError(f"a fenced write stores strings and numbers, not {type(value).__name__}")


def _integer(what: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _MAX_INT:
        raise ValueError(f"{what} must be an integer within 64 bits")
    return value


def _positive(what: str, value: int) -> int:
    if _integer(what, value) <= 0:
        raise ValueError(f"{what} must be positive")
    return value


def _counted(args: list[str], count: int) -> list[str]:
    if not 0 < count <= _MAX_VALUES:
        raise ValueError(f"a fenced write takes 1 to {_MAX_VALUES} values")
    return args


def _unavailable(write: FencedWrite | str) -> Any:
    """A context made outside a worker (a test's, say) has no store to write to."""
    raise RuntimeError("fenced writes need a running worker's context")


class TaskContext:
    """Handed to every handler: who the task is, and ways to talk back to the worker.

    `fence` is this execution's fencing token: strictly greater than any earlier
    execution's, so a handler can use it to make its own writes idempotent. `fenced` and
    `fenced_sync` write Redis keys of the handler's own only while this execution holds
    the task (see FencedWrites).
    """

    __slots__ = (
        "_cancelled", "_lease_valid", "_on_progress", "attempt", "fence", "fenced",
        "fenced_sync", "log", "queue", "task_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        task_id: str,
        queue: str,
        attempt: int,
        fence: int,
        log: Logger,
        on_progress: Callable[[Any], None],
        lease_valid: Callable[[], bool] = lambda: True,
        write: Callable[[FencedWrite], Awaitable[Any]] = _unavailable,
        write_sync: Callable[[FencedWrite], Any] = _unavailable,
        effect_key: Callable[[str], str] = _unavailable,
    ) -> None:
        self.task_id = task_id
        self.queue = queue
        self.attempt = attempt
        self.fence = fence
        self.log = log
        self._on_progress = on_progress
        self._lease_valid = lease_valid
        self.fenced = FencedWrites(write, effect_key)
        self.fenced_sync = FencedWrites(write_sync, effect_key)
        # A plain flag: a sync handler's thread reads what the worker's thread wrote (the
        # interpreter's lock orders them), and no handler ever waits on it.
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def lease_valid(self) -> bool:
        """Whether this execution still holds the task: not aborted, and its lease not run
        out by the monotonic clock (which keeps counting while the worker is stopped).
        Ask just before a write outside the task; then write with `fence`."""
        return not self._cancelled and self._lease_valid()

    def raise_if_cancelled(self) -> None:
        """Call this often in a sync handler: it stops there once the task is aborted or
        its lease has run out (a worker stopped past it, say)."""
        if not self.lease_valid():
            raise TaskCancelled(self.task_id)

    async def checkpoint(self) -> None:
        """Await this in an async handler just before a write outside the task: it lets
        a pending stop reach the handler, then raises TaskCancelled if the execution no
        longer holds the task."""
        await asyncio.sleep(0)
        self.raise_if_cancelled()

    def report_progress(self, progress: Any) -> None:
        """Record progress (any JSON value); safe to call from a sync handler's thread."""
        self._on_progress(progress)

    def cancel(self) -> None:
        self._cancelled = True
