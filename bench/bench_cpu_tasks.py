"""CPU-bound tasks on ONE worker process: executor "inline" (a thread) against "process".

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/bench_cpu_tasks.py               # about 30 s on 2 cores
    .venv/bin/python bench/bench_cpu_tasks.py --n 20        # smoke run
    .venv/bin/python bench/bench_cpu_tasks.py --processes 4 --limit 200000

Redis as bench_conveyor.py: its own `redis-server --port <free> --save "" --appendonly no`
on 127.0.0.1, FLUSHALLed between phases and stopped by PID at the end, or --redis-url
(loopback only; a queue and keys of its own, deleted at the end).

The task types are in cpu_tasks.py: the same pure-Python prime count (`--limit`) as
`cpu_thread` (a sync handler, so a thread of the worker) and `cpu_process` (executor
"process": a child of the worker). For each variant, --n tasks are enqueued, then one
`conveyor worker --concurrency C` is started (WORKER_PROCESSES = --processes), and the
phase measures

- tasks/s from the worker's start to the n-th task in the completed set (start-up and,
  for processes, the children's start included), and after its first task (excluded);
- the same for --n-small tasks with limit 0: the per-task cost of the executor itself
  (for processes, a round trip over a pipe to a child and back).

One task's body is also timed in this process (median of 5) for the ideal rates: 1 / t on
one core, min(processes, CPUs) / t with the processes. These machines are noisy: compare
numbers within one run only. Worker logs go to bench/results/cpu-logs-<stamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench_conveyor import HERE, RESULTS, Failed, Proc, RedisTarget, importable_project
from cpu_tasks import count_primes

BIN = Path(sys.executable).parent
TASK_MODULE = "cpu_tasks"
VARIANTS = {"thread": "cpu_thread", "process": "cpu_process"}
POLL_S = 0.005


async def enqueue(target: RedisTarget, workdir: Path, name: str, n: int, limit: int) -> None:
    """EnqueueTask.execute_many from the container, as bench_conveyor.py's bulk phase."""
    from dependency_injector import providers  # noqa: PLC0415

    from application.enqueue_task import EnqueueRequest  # noqa: PLC0415
    from infrastructure.settings import Settings  # noqa: PLC0415
    from interfaces.container import Container, resolve  # noqa: PLC0415

    settings = Settings(
        redis_url=target.url,
        task_modules=TASK_MODULE,
        files_base_dir=workdir / "files",
        redlock_urls="",
        queues=f"default,{target.queue}",
    )
    container = Container()
    container.settings.override(providers.Object(settings))
    await container.init_resources()
    try:
        use_case = await resolve(container.enqueue_task)
        requests = [EnqueueRequest(name, {"limit": limit}, queue=target.queue) for _ in range(n)]
        await use_case.execute_many(requests)
    finally:
        await container.shutdown_resources()


def completed(target: RedisTarget) -> int:
    from domain.task import TaskStatus  # noqa: PLC0415
    from infrastructure.redis.keys import QueueKeys  # noqa: PLC0415

    return int(target.r.zcard(QueueKeys(target.queue).state(TaskStatus.COMPLETED)))


def wait_for(target: RedisTarget, count: int, worker: Proc, timeout_s: float) -> float:
    deadline = time.perf_counter() + timeout_s
    while completed(target) < count:
        worker.check_alive()
        if time.perf_counter() > deadline:
            raise Failed(f"timed out after {timeout_s:.0f} s waiting for {count} tasks")
        time.sleep(POLL_S)
    return time.perf_counter()


@dataclass(frozen=True)
class Setup:
    cfg: argparse.Namespace
    target: RedisTarget
    workdir: Path
    logs: Path


def phase(setup: Setup, variant: str, n: int, limit: int) -> dict[str, Any]:
    """n tasks of one variant, pre-enqueued, then one worker started: its rates."""
    cfg, target, workdir, logs = setup.cfg, setup.target, setup.workdir, setup.logs
    target.reset()
    asyncio.run(enqueue(target, workdir, VARIANTS[variant], n, limit))
    env = dict(os.environ)
    env.update(
        REDIS_URL=target.url, CONVEYOR_TASK_MODULES=TASK_MODULE, PYTHONPATH=str(HERE),
        QUEUES=f"default,{target.queue}", WORKER_PROCESSES=str(cfg.processes),
        FILES_BASE_DIR=str(workdir / "files"), LOG_LEVEL=cfg.log_level, LOG_FORMAT="json",
    )  # fmt: skip
    env.pop("REDLOCK_URLS", None)
    argv = [str(BIN / "conveyor"), "worker", "--concurrency", str(cfg.concurrency)]
    argv += ["--queues", target.queue]
    worker = Proc(argv, env, logs / f"worker-{variant}-{limit}.log").start()
    try:
        first = wait_for(target, 1, worker, cfg.timeout)
        done = wait_for(target, n, worker, cfg.timeout)
    finally:
        worker.stop()
    return {
        "n": n,
        "limit": limit,
        "per_s": n / (done - worker.t_start),
        "per_s_after_first": (n - 1) / (done - first) if done > first else None,
    }


def body_ms(limit: int) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        count_primes(limit)
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def run(cfg: argparse.Namespace, workdir: Path, logs: Path) -> list[dict[str, Any]]:
    target = RedisTarget(cfg.redis_url, workdir)
    setup = Setup(cfg, target, workdir, logs)
    rows = []
    try:
        for variant in VARIANTS:
            for n, limit in ((cfg.n, cfg.limit), (cfg.n_small, 0)):
                row = {"variant": variant, **phase(setup, variant, n, limit)}
                print_row(row)
                rows.append(row)
    finally:
        target.close()
    return rows


def print_row(row: dict[str, Any]) -> None:
    after = row["per_s_after_first"]
    print(f"| {row['variant']:7s} | {row['limit']:>7,} | {row['n']:>5} | {row['per_s']:>9.1f}"
          f" | {after if after is None else f'{after:.1f}':>9} |", flush=True)  # fmt: skip


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--redis-url", help="a loopback Redis to use (default: start our own)")
    ap.add_argument("--n", type=int, default=60, help="CPU-bound tasks per variant")
    ap.add_argument("--limit", type=int, default=100_000, help="count primes below this")
    ap.add_argument("--n-small", type=int, default=500, help="tasks with limit 0 per variant")
    ap.add_argument("--concurrency", type=int, default=4, help="worker --concurrency")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                    help="WORKER_PROCESSES (default: the CPUs)")  # fmt: skip
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the worker")
    ap.add_argument("--timeout", type=float, default=300.0, help="limit (s) of each wait")
    return ap.parse_args()


def main() -> int:
    cfg = parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"cpu-logs-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    one = body_ms(cfg.limit)
    cpus = psutil.cpu_count() or 1
    print(f"{cpus} CPUs; one task's body: {one:.1f} ms; ideal: {1000 / one:.1f}/s on one core,"
          f" {min(cfg.processes, cpus) * 1000 / one:.1f}/s with {cfg.processes} processes;"
          f" worker --concurrency {cfg.concurrency}\n")  # fmt: skip
    print("| variant |   limit |     n |   tasks/s | after 1st |")
    print("|---------|--------:|------:|----------:|----------:|")
    with importable_project(), tempfile.TemporaryDirectory(prefix="conveyor-cpu-") as tmp:
        run(cfg, Path(tmp), logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
