"""HTTP enqueue latency while clients hold GET /api/events open and never read it.

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/bench_event_streams.py                  # 0 and 200 stalled clients
    .venv/bin/python bench/bench_event_streams.py --stalled 0 50 200 --n 3000

It starts its own `redis-server --port <free> --save "" --appendonly no` on 127.0.0.1 and one
`conveyor api` (LOG_LEVEL=WARNING, MAX_EVENT_STREAMS above the largest --stalled), and stops
both by PID at the end. For each count K of --stalled: K raw sockets send GET /api/events,
read the response head and the first event, and then never read again; --n POST /api/tasks
(`echo`, one event each) are sent over --concurrency kept-open httpx connections, and their
latencies are reported (p50/p95/p99/max, ms) with the API process's CPU seconds and the
number of streams it dropped for falling behind (its `events.feed_dropped` lines). The
sockets are closed and the database flushed before the next K. MAX_EVENT_STREAMS is
--max-streams, by default above K (every stream accepted); "accepted" counts the streams
that were not refused with 429.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "| stalled | accepted | dropped | p50 ms | p95 ms | p99 ms | max ms | enqueue/s | API CPU s |\n"
    "|---|---|---|---|---|---|---|---|---|"
)
ROW = (
    "| {stalled} | {accepted} | {dropped} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {max:.1f} | "
    "{rate:.0f} | {cpu_s:.2f} |"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def stalled_client(port: int) -> tuple[socket.socket, bool]:
    """A client that reads the head and the `ready` event, then never reads again; False
    with it if the stream was refused (429)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    while b"event: ready" not in received:
        if received.startswith(b"HTTP/1.1 429"):
            return sock, False
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"stream cut: {received[:200]!r}")
        received += chunk
    return sock, True


async def enqueue_latencies(url: str, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    body = {"taskName": "echo", "payload": {"n": 1}}

    async def producer(count: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for _ in range(count):
                started = time.perf_counter()
                response = await http.post("/api/tasks", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 202, response.text

    await asyncio.gather(*(producer(n // concurrency) for _ in range(concurrency)))
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def dropped(log: Path) -> int:
    """Streams the API dropped so far for falling behind (its `events.feed_dropped` lines)."""
    return log.read_text().count('"events.feed_dropped"')


def run_case(
    api: psutil.Process, url: str, port: int, stalled: int, args: argparse.Namespace
) -> dict[str, float]:
    clients = [stalled_client(port) for _ in range(stalled)]
    try:
        asyncio.run(enqueue_latencies(url, args.warmup, args.concurrency))
        cpu = sum(api.cpu_times()[:2])
        started = time.monotonic()
        latencies = asyncio.run(enqueue_latencies(url, args.n, args.concurrency))
        wall = time.monotonic() - started
        cpu = sum(api.cpu_times()[:2]) - cpu
    finally:
        for sock, _ in clients:
            sock.close()
    return {
        "stalled": stalled,
        "accepted": sum(accepted for _, accepted in clients),
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "rate": len(latencies) / wall,
        "cpu_s": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stalled", type=int, nargs="+", default=[0, 200])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-streams", type=int, help="MAX_EVENT_STREAMS (default: all)")
    args = parser.parse_args()
    redis_port, api_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        server = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        env = dict(
            os.environ,
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            LOG_LEVEL="WARNING",
            FILES_BASE_DIR=f"{tmp}/files",
            MAX_EVENT_STREAMS=str(args.max_streams or max(args.stalled) + 10),
        )
        log = Path(tmp) / "api.log"
        with log.open("wb") as out:
            api = subprocess.Popen(
                [sys.executable, "-m", "interfaces.cli", "api", "--port", str(api_port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{api_port}"
        try:
            wait_for(f"{url}/ready")
            store = redis.Redis(port=redis_port)
            print(HEADER)
            for stalled in args.stalled:
                before = dropped(log)
                row = run_case(psutil.Process(api.pid), url, api_port, stalled, args)
                row["dropped"] = dropped(log) - before
                print(ROW.format(**row), flush=True)
                store.flushdb()
        finally:
            api.terminate()
            api.wait(30)
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
