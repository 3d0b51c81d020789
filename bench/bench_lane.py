"""redis-py (the project's `create_redis`) against the Lane: commands/s and client CPU.

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/bench_lane.py                       # about a minute
    .venv/bin/python bench/bench_lane.py --n 5000 --repeat 1   # smoke run
    .venv/bin/python bench/bench_lane.py --loop asyncio        # the stdlib loop, not uvloop

It starts its own `redis-server --port <free> --save "" --appendonly no` on 127.0.0.1 and
stops it by PID at the end (or uses --redis-url, where it only touches keys
`bench:lane:*`, deleted at the end). For each client, each command (a plain INCR, and an
EVALSHA of a one-line script doing the same INCR) and each shape:

- serial: 1 caller awaiting each command in turn (--n commands);
- concurrent: --callers tasks (50) each awaiting its own commands in turn (--n in all);

it measures commands/s (wall clock) and µs of this process's CPU per command
(time.process_time: user + system, the client's own cost, which decides how many tasks a
worker process can run). Each case runs --repeat times (after a warm-up); the median is
shown. These machines are noisy: compare numbers within one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvloop
from redis.asyncio import Redis

from infrastructure.embedded_redis import find_redis_server, redis_answers
from infrastructure.redis.client import create_redis
from infrastructure.redis.lane import Lane, Script

KEY = "bench:lane:counter"
SCRIPT = "return redis.call('INCR', KEYS[1])"

Call = Callable[[], Awaitable[Any]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_redis() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-lane-") as data:
        argv = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", data]  # fmt: skip
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not redis_answers(url):
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


async def measure(call: Call, n: int, callers: int) -> tuple[float, float]:
    """(commands/s, µs of CPU per command) for n calls spread over `callers` tasks."""

    async def caller(count: int) -> None:
        for _ in range(count):
            await call()

    share = n // callers
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(share) for _ in range(callers)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = share * callers
    return done / wall, cpu / done * 1e6


def redis_py_calls(client: Redis) -> dict[str, Call]:
    script = client.register_script(SCRIPT)
    return {
        "INCR": lambda: client.incr(KEY),
        "EVALSHA": lambda: script(keys=[KEY]),
    }


def lane_calls(lane: Lane) -> dict[str, Call]:
    script = Script(SCRIPT)
    return {
        "INCR": lambda: lane.execute("INCR", KEY),
        "EVALSHA": lambda: lane.run(script, [KEY], []),
    }


async def bench(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    redis_py = create_redis(url)
    lane = Lane.from_url(url, timeout_ms=3_000)
    clients = {"redis-py": redis_py_calls(redis_py), "lane": lane_calls(lane)}
    rows = []
    try:
        for command in ("INCR", "EVALSHA"):
            for shape, callers in (("serial", 1), ("concurrent", args.callers)):
                for name, calls in clients.items():
                    call = calls[command]
                    await measure(call, min(args.n, 2000), callers)  # warm-up
                    runs = [await measure(call, args.n, callers) for _ in range(args.repeat)]
                    rows.append(row(name, command, shape, callers, runs))
                    print_row(rows[-1])
    finally:
        await redis_py.delete(KEY)
        await redis_py.aclose()
        await lane.aclose()
    return rows


def row(
    name: str, command: str, shape: str, callers: int, runs: list[tuple[float, float]]
) -> dict[str, Any]:
    return {
        "client": name,
        "command": command,
        "shape": f"{shape} ({callers})",
        "per_s": statistics.median(rate for rate, _ in runs),
        "cpu_us": statistics.median(cpu for _, cpu in runs),
    }


def print_row(r: dict[str, Any]) -> None:
    print(
        f"| {r['command']:<7} | {r['shape']:<15} | {r['client']:<8} "
        f"| {r['per_s']:>10,.0f} | {r['cpu_us']:>8.1f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="commands per measurement")
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--redis-url", help="a loopback Redis to use instead of our own")
    args = parser.parse_args()
    run = uvloop.run if args.loop == "uvloop" else asyncio.run
    print(f"loop: {args.loop}, n={args.n}, median of {args.repeat}")
    print("| command | shape           | client   |  commands/s | CPU µs/cmd |")
    print("|---------|-----------------|----------|------------:|-----------:|")
    if args.redis_url:
        run(bench(args.redis_url, args))
        return
    with own_redis() as url:
        run(bench(url, args))


if __name__ == "__main__":
    main()
