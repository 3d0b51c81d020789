"""redis-py asyncio clients, configured once."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from hiredis import pack_command as hiredis_pack_command
from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _HiredisPacking:
    """redis-py's asyncio connections pack every command in Python, argument by argument:
    a sixth of a worker's CPU per task. hiredis packs the same bytes in C; whatever it
    refuses (a command name of two words, a value of an odd type) redis-py packs, and
    reports, as before."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0] if args else None
        if isinstance(name, str) and " " not in name:
            try:
                return [hiredis_pack_command(args)]
            except TypeError:
                pass
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        return packed


class _TcpConnection(_HiredisPacking, Connection):
    pass


class _TlsConnection(_HiredisPacking, SSLConnection):
    pass


class _UnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_CONNECTIONS: dict[str, type[AbstractConnection]] = {
    "redis": _TcpConnection,
    "rediss": _TlsConnection,
    "unix": _UnixConnection,
}


def _connection_class(url: str) -> type[AbstractConnection]:
    return _CONNECTIONS.get(urlsplit(url).scheme, _TcpConnection)


def create_redis(url: str) -> Redis:
    """A pooled client that decodes replies to str and retries dropped connections."""
    return Redis.from_url(
        url,
        connection_class=_connection_class(url),
        decode_responses=True,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def create_blocking_redis(url: str) -> Redis:
    """One connection for blocking commands: no socket timeout (the command has its own)
    and no silent retry, so the connection a CLIENT ID named is the one that blocks."""
    return Redis.from_url(
        url,
        connection_class=_connection_class(url),
        decode_responses=True,
        max_connections=1,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), retries=0),
    )


def create_lock_redis(url: str, lock_ttl_ms: int) -> Redis:
    """A Redlock master: it fails fast. A master that does not answer within a small part
    of the lock's TTL counts as down, so that the quorum of the others decides in time."""
    budget_s = lock_ttl_ms / 1000
    return Redis.from_url(
        url,
        connection_class=_connection_class(url),
        decode_responses=True,
        socket_connect_timeout=min(1.0, budget_s / 10),
        socket_timeout=min(2.0, budget_s / 5),
        retry=Retry(NoBackoff(), retries=0),
    )


def database_of(client: Redis) -> int:
    """The database number `client` selects (0 unless its URL names another)."""
    return int(client.connection_pool.connection_kwargs.get("db") or 0)
