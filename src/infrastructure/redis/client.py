"""redis-py asyncio clients, configured once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from hiredis import pack_command as hiredis_pack_command
from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


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


class _SentinelConnection(_HiredisPacking, SentinelManagedConnection):
    pass


_CONNECTIONS: dict[str, type[AbstractConnection]] = {
    "redis": _TcpConnection,
    "rediss": _TlsConnection,
    "unix": _UnixConnection,
}


DEFAULT_TIMEOUT_MS = 3_000  # REDIS_TIMEOUT_MS's default
DEFAULT_LONGEST_BLOCK_MS = 6_000  # a worker's longest idle block: 5 s, and 1 s of slack


def _connection_class(url: str) -> type[AbstractConnection]:
    return _CONNECTIONS.get(urlsplit(url).scheme, _TcpConnection)


# What redis-py retries, and why. Its default policy retries a timeout 3 times, so a
# frozen Redis would hold a request for 4 timeouts and the pauses between them.
# A dropped connection (refused, reset, closed while it sat idle in the pool) nearly
# always fails before Redis ran the command, and a fresh connection often works at
# once: worth one retry, without a pause. A timeout is not retried: Redis did not answer
# within the budget and would not answer the retry any sooner, so each retry would add
# a whole REDIS_TIMEOUT_MS to the caller's wait. Either way the command may still have
# run (Redis runs what it had read once it resumes): transitions are fenced and a task's
# id is chosen before it is stored, so running twice changes nothing twice. redis-py
# drops a connection whose read timed out (or was cancelled) rather than return it to
# the pool, so a late reply is never read as the answer to the next command.
def _retry_dropped_once() -> Retry:
    return Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))


@dataclass(frozen=True, slots=True)
class Sentinels:
    """The queue's Redis as Redis Sentinel watches it: the sentinels to ask, and the name of
    the master they watch. The URL beside it gives the database and the credentials."""

    addresses: tuple[tuple[str, int], ...]
    master: str

    def watcher(self, timeout_s: float) -> Sentinel:
        budget = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        return Sentinel(self.addresses, sentinel_kwargs=budget)

    async def master_address(self, timeout_s: float) -> tuple[str, int]:
        """Where the master is now, as a majority of the sentinels that answer see it."""
        watcher = self.watcher(timeout_s)
        try:
            host, port = await watcher.discover_master(self.master)
        finally:
            for client in watcher.sentinels:
                await client.aclose()
        return str(host), int(port)


Address = tuple[str, int]  # a server's host and port


@dataclass(frozen=True, slots=True)
class ClusterSeeds:
    """REDIS_CLUSTER_URLS: nodes to learn the cluster from, and how to speak to every node
    (TLS and credentials, from the first URL). Any master will do as a seed: each knows
    the whole slot map. A Cluster has database 0 only."""

    addresses: tuple[Address, ...]
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ClusterSeeds | None:
        """`redis://[[user]:password@]host:port[/0],...`; None when `spec` names none.
        ValueError names the first entry that is not such a URL."""
        urls = [part.strip() for part in spec.split(",") if part.strip()]
        if not urls:
            return None
        addresses = []
        for url in urls:
            parts = urlsplit(url)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("redis", "rediss") or not parts.hostname or port is None:
                raise ValueError(f"REDIS_CLUSTER_URLS: {url!r} is not redis://host:port")
            if parts.path.strip("/") not in ("", "0"):
                raise ValueError(f"REDIS_CLUSTER_URLS: {url!r}: a Cluster has database 0 only")
            addresses.append((parts.hostname, port))
        first = urlsplit(urls[0])
        return cls(
            tuple(addresses),
            tls=first.scheme == "rediss",
            username=unquote(first.username) if first.username else None,
            password=unquote(first.password) if first.password is not None else None,
        )

    def url_of(self, address: Address) -> str:
        """A plain Redis URL for one node, with the seeds' scheme and credentials."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        host, port = address
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{auth}{host}:{port}/0"


def _client(url: str, sentinels: Sentinels | None, **options: Any) -> Redis:
    """`url`'s Redis; with `sentinels`, whichever server they name master, asked again on
    each new connection (and a connection to a master since demoted fails, for the next
    to find the new one). The URL's host and port then mean nothing."""
    if sentinels is None:
        return Redis.from_url(url, connection_class=_connection_class(url), **options)
    where: dict[str, Any] = {
        name: value
        for name, value in parse_url(url).items()
        if name in ("db", "username", "password")
    }
    timeout_s = options.get("socket_connect_timeout") or DEFAULT_TIMEOUT_MS / 1000
    client: Redis = sentinels.watcher(timeout_s).master_for(
        sentinels.master, Redis, connection_class=_SentinelConnection, **where, **options
    )
    return client


def create_redis(
    url: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, sentinels: Sentinels | None = None
) -> Redis:
    """A pooled client that decodes replies to str: each command answers within
    `timeout_ms` or raises TimeoutError, and a dropped connection is retried once.

    A subscribed connection (pub/sub `listen()`) waits for messages without a deadline:
    redis-py reads it with no timeout, so an idle channel is not an error."""
    timeout_s = timeout_ms / 1000
    return _client(
        url,
        sentinels,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_keepalive=True,
        retry=_retry_dropped_once(),
    )


def create_blocking_redis(
    url: str,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    longest_block_ms: int = DEFAULT_LONGEST_BLOCK_MS,
    sentinels: Sentinels | None = None,
) -> Redis:
    """One connection for blocking commands, and no silent retry, so the connection a
    CLIENT ID named is the one that blocks. A read may wait for the longest block the
    caller sends (`longest_block_ms`, the command's own timeout) plus `timeout_ms`: a
    healthy Redis has answered by then, and a frozen one cannot hang an idle worker."""
    return _client(
        url,
        sentinels,
        decode_responses=True,
        max_connections=1,
        socket_timeout=(longest_block_ms + timeout_ms) / 1000,
        socket_connect_timeout=timeout_ms / 1000,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), retries=0),
    )


def create_lock_redis(url: str, lock_ttl_ms: int, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Redis:
    """A Redlock master: it fails fast. A master that does not answer within
    `timeout_ms`, nor within a small part of the lock's TTL, counts as down, so that the
    quorum of the others decides in time. No retry: pottery asks every master once."""
    budget_s = lock_ttl_ms / 1000
    timeout_s = timeout_ms / 1000
    return Redis.from_url(
        url,
        connection_class=_connection_class(url),
        decode_responses=True,
        socket_connect_timeout=min(timeout_s, budget_s / 10),
        socket_timeout=min(timeout_s, budget_s / 5),
        retry=Retry(NoBackoff(), retries=0),
    )


def database_of(client: Redis) -> int:
    """The database number `client` selects (0 unless its URL names another; always 0 on
    a Cluster, whose client has no single pool)."""
    pool = getattr(client, "connection_pool", None)
    return int(pool.connection_kwargs.get("db") or 0) if pool is not None else 0
