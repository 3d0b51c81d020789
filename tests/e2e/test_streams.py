"""Streamed answers end honestly: an event stream ends when its events may be lost (a Redis
restart, a client that stopped reading, shutdown) and a capped number are served; a CSV
export cut short by Redis never completes as if it were whole."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from infrastructure.embedded_redis import EmbeddedRedis
from infrastructure.redis.keys import keys_of
from tests.e2e.conftest import Cluster, free_port, wait_until

STREAM_WAIT_S = 15.0
CHUNK_END = b"0\r\n\r\n"  # the last chunk of a chunked body: the response is complete


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own (AOF on), to stop and start; stopped by PID at the end."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Listener(threading.Thread):
    """Reads GET /api/events over HTTP: its events as (kind, data), and how it ended."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.ended = threading.Event()
        self.error: Exception | None = None
        self.start()
        assert self.ready.wait(STREAM_WAIT_S), f"no `ready` event ({self.error})"

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.url, timeout=30) as client,
                client.stream("GET", "/api/events") as response,
            ):
                response.raise_for_status()
                self._read(response.iter_lines())
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def _read(self, lines: Iterator[str]) -> None:
        kind = ""
        for line in lines:
            if line.startswith("event:"):
                kind = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data = json.loads(line.removeprefix("data:"))
                data.pop("taskName", None)  # some tests send large ones
                self.events.append((kind, data))
                self.ready.set()

    def task_ids(self) -> list[str]:
        return [data["id"] for kind, data in self.events if kind == "task"]


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """The raw connections a test opened, closed at its end."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def open_stream(
    port: int, opened: list[socket.socket], receive_buffer: int | None = None
) -> socket.socket | None:
    """A raw GET /api/events read up to its `ready` event, then never again; None if it
    was refused."""
    sock = socket.socket()
    opened.append(sock)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(STREAM_WAIT_S)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    while b"event: ready" not in received:
        if received.startswith(b"HTTP/1.1 ") and not received.startswith(b"HTTP/1.1 200"):
            sock.close()
            return None
        chunk = sock.recv(4096)
        assert chunk, f"stream cut before `ready`: {received!r}"
        received += chunk
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    received = b""
    while not received.endswith(CHUNK_END):
        chunk = sock.recv(1 << 20)
        assert chunk, "the stream was cut, not ended"
        received += chunk
    return received


def test_a_redis_restart_ends_the_event_stream_and_a_new_one_hears_events(
    cluster: Cluster, own_redis: EmbeddedRedis
) -> None:
    cluster.env.update(REDIS_URL=own_redis.url)
    cluster.api()
    listener = Listener(cluster.url)

    own_redis.stop()
    own_redis.start()

    assert listener.ended.wait(STREAM_WAIT_S), "the stream went on, silent, after the restart"
    assert listener.error is None  # it ended, and said why
    assert listener.events[-1] == ("end", {"reason": "lost"})
    fresh = Listener(cluster.url)
    task_id = cluster.enqueue(taskName="echo", payload={})["id"]
    wait_until(lambda: task_id in fresh.task_ids(), what="the new stream's event")


def test_streams_never_read_are_dropped_and_a_reader_gets_every_event(
    cluster: Cluster, own_redis: EmbeddedRedis, sockets: list[socket.socket]
) -> None:
    cluster.env.update(REDIS_URL=own_redis.url, MAX_EVENT_STREAMS="4", EVENT_BUFFER="50")
    api = cluster.api()
    reader = Listener(cluster.url)
    stalled = [open_stream(cluster.port, sockets, receive_buffer=4096) for _ in range(3)]
    assert open_stream(cluster.port, sockets) is None  # 4 of 4
    publisher = redis.Redis.from_url(own_redis.url)
    channel = keys_of("default").events(0)
    published: list[str] = []

    def dropped() -> bool:
        # What a script publishes (an array), with a large name: the stalled clients' socket buffers
        # (a few MB, as the kernel sizes them) fill sooner.
        for _ in range(20):
            published.append(f"e{len(published)}")
            event = {
                "id": published[-1],
                "queue": "default",
                "name": "x" * 8192,
                "status": "waiting",
            }
            publisher.publish(channel, json.dumps([event]))
        return sum(line.get("event") == "events.feed_dropped" for line in api.lines()) >= 3

    try:
        wait_until(dropped, timeout_s=60, what="the stalled streams to be dropped")
        wait_until(lambda: reader.task_ids() == published, what="the reader's events")
        assert not reader.ended.is_set()
        # Dropped, they hold no place: three new streams fit beside the reader.
        fresh = [open_stream(cluster.port, sockets) for _ in range(3)]
        assert None not in fresh
        assert open_stream(cluster.port, sockets) is None
        for sock in stalled:
            assert sock is not None
            assert b'event: end\ndata: {"reason":"lagged"}' in read_to_end(sock)
    finally:
        publisher.close()


def test_streams_beyond_the_cap_are_refused_with_429_until_one_closes(
    cluster: Cluster, sockets: list[socket.socket]
) -> None:
    cluster.env.update(MAX_EVENT_STREAMS="2")
    cluster.api()
    first = open_stream(cluster.port, sockets)
    assert open_stream(cluster.port, sockets) is not None
    assert first is not None

    refused = cluster.http.get("/api/events")
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "too_many_requests"
    assert "event streams" in body["detail"]

    first.close()
    wait_until(lambda: open_stream(cluster.port, sockets), what="a stream once one closed")


def test_sigterm_ends_the_open_streams_and_the_api_exits(cluster: Cluster) -> None:
    api = cluster.api()
    listener = Listener(cluster.url)

    api.signal(signal.SIGTERM)

    # uvicorn alone would wait its graceful timeout (10 s) for the streams, then cut them.
    assert listener.ended.wait(5), "the stream outlived the API's shutdown"
    assert listener.error is None
    assert listener.events[-1] == ("end", {"reason": "shutdown"})
    api.wait(5)


def test_an_export_that_redis_cuts_short_never_completes(
    cluster: Cluster, own_redis: EmbeddedRedis
) -> None:
    cluster.env.update(REDIS_URL=own_redis.url)
    cluster.api()
    body = {"tasks": [{"taskName": "echo", "payload": {"pad": "x" * 1000}}] * 500}
    for _ in range(20):  # 10,000 rows of 1 KB: more than the sockets hold
        assert cluster.http.post("/api/tasks/bulk", json=body).status_code == 202

    with (
        httpx.Client(base_url=cluster.url, timeout=30) as http,
        http.stream("GET", "/api/tasks/export") as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_bytes()
        received = [next(chunks)]
        own_redis.stop()
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            received.extend(chunks)
    assert 0 < b"".join(received).count(b"\n") < 10_000
