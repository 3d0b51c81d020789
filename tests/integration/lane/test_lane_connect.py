"""What the Lane sends on each new connection (AUTH, SELECT), where it connects, and which
failed commands it sends once more."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from infrastructure.embedded_redis import find_redis_server
from infrastructure.redis.lane import Lane, Script
from infrastructure.redis.lane_connection import CommandNotSent
from tests.freezable_redis import FreezableRedis, free_port

TIMEOUT_MS = 3_000
WAIT_S = 10.0


@pytest.fixture
async def plain(server: FreezableRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def lane_on(lanes: list[Lane], url: str) -> Lane:
    lane = Lane.from_url(url, timeout_ms=TIMEOUT_MS)
    lanes.append(lane)
    return lane


async def stored(server: FreezableRedis, db: int, *keys: str) -> int:
    """How many of `keys` database `db` holds."""
    client = Redis.from_url(f"redis://127.0.0.1:{server.port}/{db}")
    try:
        return int(await client.exists(*keys))
    finally:
        await client.aclose()


async def test_a_password_in_the_url_is_sent_first(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    await plain.config_set("requirepass", "s3cr@t")
    authenticated = lane_on(lanes, f"redis://:s3cr%40t@127.0.0.1:{server.port}/0")
    assert await authenticated.execute("ECHO", "in") == "in"
    with pytest.raises(AuthenticationError):
        await lane_on(lanes, server.url).execute("SET", "intruder", 1)
    with pytest.raises(AuthenticationError):
        await lane_on(lanes, f"redis://:wrong@127.0.0.1:{server.port}/0").execute("SET", "x", 1)
    assert await plain.exists("intruder", "x") == 0


async def test_an_acl_user_and_its_password_and_a_database(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    await plain.acl_setuser("alice", enabled=True, passwords=["+pw"], keys="*", commands=["+@all"])
    lane = lane_on(lanes, f"redis://alice:pw@127.0.0.1:{server.port}/2")
    assert await lane.execute("ACL", "WHOAMI") == "alice"
    await lane.execute("SET", "mine", "alice's")
    assert await stored(server, 2, "mine") == 1


async def test_the_database_is_selected_on_every_new_connection(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    lane = lane_on(lanes, f"redis://127.0.0.1:{server.port}/3")
    await lane.execute("SET", "first", 1)
    await plain.client_kill_filter(_id=await lane.execute("CLIENT", "ID"))
    await lane.execute("SET", "second", 2)
    assert await stored(server, 3, "first", "second") == 2
    assert await plain.exists("first", "second") == 0  # not in database 0


async def test_a_database_redis_lacks_fails_the_command_and_writes_nothing(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    lane = lane_on(lanes, f"redis://127.0.0.1:{server.port}/99")
    with pytest.raises(ResponseError, match="out of range"):
        await lane.execute("SET", "astray", 1)
    assert await plain.exists("astray") == 0  # it never ran in database 0


async def test_a_script_flushed_from_redis_is_loaded_again(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    lane = lane_on(lanes, server.url)
    script = Script("return redis.call('INCR', KEYS[1])")
    assert await lane.run(script, ["runs"], []) == 1
    await plain.script_flush()
    assert await lane.run(script, ["runs"], []) == 2
    assert await plain.script_exists(script.sha) == [True]


@contextmanager
def redis_with(*options: str) -> Iterator[Path]:
    """A redis-server with `options`, in a directory of its own with a short path (a unix
    socket's is limited to about 100 characters)."""
    with tempfile.TemporaryDirectory(prefix="lane-") as data:
        argv = [find_redis_server(), "--save", "", "--appendonly", "no", "--dir", data]
        process = subprocess.Popen([*argv, *options], stdout=subprocess.DEVNULL, cwd=data)
        try:
            yield Path(data)
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_a_unix_socket_url(lanes: list[Lane]) -> None:
    with redis_with("--port", "0", "--unixsocket", "redis.sock") as data:
        lane = lane_on(lanes, f"unix://{data}/redis.sock?db=2")
        assert await asyncio.wait_for(until_it_answers(lane), WAIT_S) == "PONG"
        await lane.execute("SET", "here", 1)
        client = Redis(unix_socket_path=str(data / "redis.sock"), db=2, decode_responses=True)
        assert await client.get("here") == "1"
        await client.aclose()
        await lane.aclose()


def certificates(where: Path) -> None:
    """A CA (ca.pem) and a certificate it signed for localhost (server.pem, server.key)."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (where / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for argv in (
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=lane CA"],
        ["req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext"],
    ):  # fmt: skip
        subprocess.run(["openssl", *argv], cwd=where, check=True, capture_output=True)


async def test_a_rediss_url_speaks_tls_and_checks_the_certificate(
    lanes: list[Lane], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the default context's CA
    port = free_port()
    tls = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
    files = ["--tls-cert-file", str(tmp_path / "server.pem"),
             "--tls-key-file", str(tmp_path / "server.key"),
             "--tls-ca-cert-file", str(tmp_path / "ca.pem")]  # fmt: skip
    with redis_with(*tls, *files):
        lane = lane_on(lanes, f"rediss://localhost:{port}/1")
        assert await asyncio.wait_for(until_it_answers(lane), WAIT_S) == "PONG"
        assert await lane.execute("SET", "secret", 1) == "OK"
        await lane.aclose()
        monkeypatch.delenv("SSL_CERT_FILE")  # a certificate no CA we trust signed: refused
        with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await lane.execute("PING")


async def until_it_answers(lane: Lane) -> str:
    while True:
        try:
            return str(await lane.execute("PING"))
        except RedisConnectionError:  # the server is still starting
            await asyncio.sleep(0.02)


class Hangup:
    """A server that reads the first bytes of each connection, then hangs up."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read(1)
        writer.close()


@pytest.fixture
async def hangup() -> AsyncIterator[tuple[Hangup, int]]:
    counter = Hangup()
    listener = await asyncio.start_server(counter.handle, "127.0.0.1", 0)
    try:
        yield counter, listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


async def test_a_command_lost_before_it_was_written_is_sent_once_more(
    hangup: tuple[Hangup, int], lanes: list[Lane]
) -> None:
    counter, port = hangup
    lane = lane_on(lanes, f"redis://:pw@127.0.0.1:{port}/0")  # the hangup comes at AUTH
    with pytest.raises(CommandNotSent):
        await asyncio.wait_for(lane.execute("SET", "k", 1), WAIT_S)
    assert counter.connections == 2


async def test_a_command_lost_after_it_was_written_is_not_sent_again(
    hangup: tuple[Hangup, int], lanes: list[Lane]
) -> None:
    counter, port = hangup
    lane = lane_on(lanes, f"redis://127.0.0.1:{port}/0")  # nothing to send before it
    with pytest.raises(RedisConnectionError) as lost:
        await asyncio.wait_for(lane.execute("SET", "k", 1), WAIT_S)
    assert not isinstance(lost.value, CommandNotSent)
    assert counter.connections == 1


async def test_a_refused_connection_is_a_connection_error(lanes: list[Lane]) -> None:
    lane = lane_on(lanes, f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(CommandNotSent, match="Error connecting"):
        await asyncio.wait_for(lane.execute("PING"), WAIT_S)
