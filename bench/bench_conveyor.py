"""Conveyor alone: enqueue, processing, latency, delay accuracy and worker memory.

Run with the project's venv (not a test; timings belong here, never in tests/):

    .venv/bin/python bench/bench_conveyor.py            # default run, ~1-2 min on 2 cores
    .venv/bin/python bench/bench_conveyor.py --quick    # smoke run, ~30 s
    .venv/bin/python bench/bench_conveyor.py --profile  # + one profiled worker (py-spy)

By default it starts its own `redis-server` on a free loopback port (no persistence),
FLUSHALLs it between phases and stops it by PID at the end. With --redis-url it uses that
Redis (loopback only), never flushes it, and keeps to a queue and keys of its own, which it
deletes at the end.

Phases (each starts from an empty queue; workers are `conveyor worker` processes):
  http      enqueue/s, one task per POST /api/tasks to a `conveyor api`, one kept-open
            connection, each call awaited
  direct    enqueue/s, EnqueueTask.execute in this process, one call after another
  bulk      enqueue/s, EnqueueTask.execute_many in chunks (one round trip per chunk)
  workers1  N no-op tasks pre-enqueued, ONE worker started: N / (worker start -> N tasks
            in the completed set); peak RSS of the worker
  workers2  the same with two worker processes started together
  latency   idle, warmed-up worker; `record` tasks enqueued one at a time at --rate/s;
            each records handler start - enqueue call
  delay     the same with a --delay s delay (delayMs); each records handler start -
            intended due time (negative = early)
  profile   (--profile) one more workers1 run under `py-spy record`; speedscope file in
            bench/results/, summary of where the worker's time goes
Prints a markdown table and writes bench/results/conveyor-<stamp>.json (+ .md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psutil
import redis

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
BIN = Path(sys.executable).parent  # the venv's bin/, where `conveyor` and `py-spy` live
RESULTS = HERE / "results"
TASK_MODULE = "conveyor_bench_tasks"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
POLL_S = 0.005


class Failed(Exception):
    pass


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A process we started (own session); stopped by its PID; RSS sampled on demand."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log
        self.p: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0
        self._last_sample = 0.0

    def start(self) -> Proc:
        self._log = self.log_path.open("w")
        self.t_start = time.perf_counter()
        self.p = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.p.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.p is not None
        return self.p.pid

    def sample(self, every: float = 0.2) -> None:
        now = time.perf_counter()
        if now - self._last_sample < every:
            return
        self._last_sample = now
        with suppress(psutil.NoSuchProcess):
            self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used so far."""
        with suppress(psutil.NoSuchProcess):
            times = self.ps.cpu_times()
            return float(times.user + times.system)
        return 0.0

    def check_alive(self) -> None:
        if self.p is not None and self.p.poll() is not None:
            raise Failed(f"{self.argv[0]} exited with {self.p.returncode}; see {self.log_path}")

    def stop(self, grace: float = 15.0) -> dict[str, Any]:
        """SIGTERM, then SIGKILL after `grace` s; how it ended (exit code, seconds, killed)."""
        if self.p is None:
            return {}
        t0, killed = time.perf_counter(), False
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.p.kill()  # our own child, by its PID
                self.p.wait()
                killed = True
        self._log.close()
        return {
            "exit_code": self.p.returncode,
            "stop_s": round(time.perf_counter() - t0, 3),
            "killed": killed,
        }


class RedisTarget:
    """The Redis under test: our own redis-server, or a given loopback URL (never flushed)."""

    def __init__(self, url: str | None, workdir: Path) -> None:
        self.own = url is None
        self.server: Proc | None = None
        if url is None:
            port = free_port()
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            argv += ["--appendonly", "no", "--dir", str(workdir)]
            self.server = Proc(argv, dict(os.environ), workdir / "redis.log").start()
            url = f"redis://127.0.0.1:{port}/0"
        host = urlparse(url).hostname or ""
        if host not in LOOPBACK:
            raise SystemExit(f"--redis-url must point at loopback (127.0.0.1), not {host!r}")
        self.url = url
        self.r = redis.Redis.from_url(url, decode_responses=True)
        deadline = time.perf_counter() + 10
        while True:
            try:
                self.r.ping()
                break
            except redis.ConnectionError:
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.05)
        # Our own Redis holds nothing else; a shared one gets a queue and keys of our own.
        suffix = "" if self.own else "-" + uuid.uuid4().hex[:8]
        self.queue = "bench" + suffix
        self.prefix = "bench:conveyor" + suffix

    def reset(self) -> None:
        if self.own:
            self.r.flushall()
            return
        # The id index lives outside the queue's keys: drop the entries of its tasks first.
        task_ids = self.r.zrange(f"conveyor:{{{self.queue}}}:ids", 0, -1)
        owners = [f"conveyor:id:{task_id}" for task_id in task_ids]
        patterns = [f"conveyor:{{{self.queue}}}:*", f"{self.prefix}:*"]
        doomed = owners + [key for p in patterns for key in self.r.scan_iter(match=p, count=1000)]
        for i in range(0, len(doomed), 1000):
            self.r.delete(*doomed[i : i + 1000])

    def close(self) -> None:
        with suppress(redis.RedisError):
            self.reset()
        self.r.close()
        if self.server is not None:
            self.server.stop()


class Bench:
    """Shared configuration of one run: the Redis, the env of Conveyor's processes."""

    def __init__(
        self, cfg: argparse.Namespace, target: RedisTarget, workdir: Path, logs: Path
    ) -> None:
        from domain.task import TaskStatus  # noqa: PLC0415
        from infrastructure.redis.keys import QueueKeys  # noqa: PLC0415

        self.cfg, self.t, self.workdir, self.logs = cfg, target, workdir, logs
        self.completed_key = QueueKeys(target.queue).state(TaskStatus.COMPLETED)
        self.lat_key = f"{target.prefix}:lat"
        self.env = dict(os.environ)
        self.env.update(
            REDIS_URL=target.url,
            CONVEYOR_TASK_MODULES=TASK_MODULE,
            CONVEYOR_BENCH_PREFIX=target.prefix,
            QUEUES=f"default,{target.queue}",
            PYTHONPATH=str(HERE),
            FILES_BASE_DIR=str(workdir / "files"),
            LOG_LEVEL=cfg.log_level,
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        self.env.pop("REDLOCK_URLS", None)
        self.conveyor = str(BIN / "conveyor")

    def worker(self, tag: str) -> Proc:
        argv = [self.conveyor, "worker", "--concurrency", str(self.cfg.concurrency)]
        argv += ["--queues", self.t.queue]
        return Proc(argv, self.env, self.logs / f"worker-{tag}.log")

    def api(self, port: int) -> Proc:
        argv = [self.conveyor, "api", "--host", "127.0.0.1", "--port", str(port)]
        return Proc(argv, self.env, self.logs / "api.log")

    def completed(self) -> int:
        return int(self.t.r.zcard(self.completed_key))

    def wait_until(self, pred: Callable[[], bool], procs: list[Proc], what: str) -> float:
        deadline = time.perf_counter() + self.cfg.timeout
        while not pred():
            for proc in procs:
                proc.sample()
                proc.check_alive()
            if time.perf_counter() > deadline:
                raise Failed(f"timed out after {self.cfg.timeout:.0f} s waiting for {what}")
            time.sleep(POLL_S)
        return time.perf_counter()


# ------------------------------------------------------------------ enqueue clients


class Enqueuer:
    """EnqueueTask from the container, as the API uses it, in this process."""

    def __init__(self, bench: Bench) -> None:
        self.b = bench

    async def __aenter__(self) -> Enqueuer:
        from dependency_injector import providers  # noqa: PLC0415

        from application.enqueue_task import EnqueueRequest  # noqa: PLC0415
        from infrastructure.settings import Settings  # noqa: PLC0415
        from interfaces.container import Container, resolve  # noqa: PLC0415

        settings = Settings(
            redis_url=self.b.t.url,
            task_modules=TASK_MODULE,
            files_base_dir=self.b.workdir / "files",
            redlock_urls="",
            queues=f"default,{self.b.t.queue}",
        )
        self.request = EnqueueRequest
        self.container = Container()
        self.container.settings.override(providers.Object(settings))
        await self.container.init_resources()
        self.use_case = await resolve(self.container.enqueue_task)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.container.shutdown_resources()

    def req(self, name: str, payload: dict[str, Any], delay_ms: int | None = None) -> Any:
        return self.request(name, payload, queue=self.b.t.queue, delay_ms=delay_ms)

    async def one(self, name: str, payload: dict[str, Any], delay_ms: int | None = None) -> None:
        await self.use_case.execute(self.req(name, payload, delay_ms))

    async def many(self, name: str, payloads: list[dict[str, Any]]) -> None:
        await self.use_case.execute_many([self.req(name, p) for p in payloads])


async def enqueue_single(bench: Bench, n: int) -> float:
    async with Enqueuer(bench) as enq:
        t0 = time.perf_counter()
        for _ in range(n):
            await enq.one("noop", {})
        return time.perf_counter() - t0


async def enqueue_bulk(bench: Bench, n: int, chunk: int) -> float:
    async with Enqueuer(bench) as enq:
        t0 = time.perf_counter()
        sent = 0
        while sent < n:
            k = min(chunk, n - sent)
            await enq.many("noop", [{} for _ in range(k)])
            sent += k
        return time.perf_counter() - t0


async def enqueue_http(bench: Bench, port: int, n: int) -> float:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    base = f"http://127.0.0.1:{port}"
    body = {"taskName": "noop", "payload": {}, "queue": bench.t.queue}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as http:
        for _ in range(20):  # warm-up (connection, first-request paths), not timed
            (await http.post("/api/tasks", json=body)).raise_for_status()
        t0 = time.perf_counter()
        for _ in range(n):
            response = await http.post("/api/tasks", json=body)
            if response.status_code != 202:
                raise Failed(f"POST /api/tasks: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - t0


async def enqueue_paced(bench: Bench, count: int, rate: float, delay_s: float) -> float:
    """`record` tasks at a steady rate; t_ref = enqueue time (+ the delay); max pacing lag."""
    delay_ms = round(delay_s * 1000) or None
    lag = 0.0
    async with Enqueuer(bench) as enq:
        start = time.perf_counter()
        for i in range(count):
            target = start + i / rate
            wait = target - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            lag = max(lag, time.perf_counter() - target)
            t_ref = time.time() + delay_s
            await enq.one("record", {"t_ref": t_ref}, delay_ms)
    return lag * 1000


# ------------------------------------------------------------------ phases


def stats(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    q = statistics.quantiles(v, n=100, method="inclusive") if len(v) > 1 else v * 99
    return {"n": len(v), "min": v[0], "p50": q[49], "p95": q[94], "p99": q[98], "max": v[-1]}


def phase_http(b: Bench) -> dict[str, Any]:
    b.t.reset()
    port = free_port()
    api = b.api(port).start()
    try:
        with httpx.Client(timeout=0.5) as probe:
            b.wait_until(lambda: _ready(probe, port), [api], "the API to be ready")
        seconds = asyncio.run(enqueue_http(b, port, b.cfg.n_http))
        api.sample(every=0)
    finally:
        api.stop()
    return {
        "n": b.cfg.n_http,
        "seconds": seconds,
        "per_s": b.cfg.n_http / seconds,
        "api_rss_mb": api.peak_rss / 2**20,
    }


def _ready(client: httpx.Client, port: int) -> bool:
    try:
        return client.get(f"http://127.0.0.1:{port}/ready").status_code == 200
    except httpx.HTTPError:
        return False


def phase_direct(b: Bench) -> dict[str, Any]:
    b.t.reset()
    seconds = asyncio.run(enqueue_single(b, b.cfg.n))
    return {"n": b.cfg.n, "seconds": seconds, "per_s": b.cfg.n / seconds}


def phase_bulk(b: Bench) -> dict[str, Any]:
    b.t.reset()
    seconds = asyncio.run(enqueue_bulk(b, b.cfg.n, b.cfg.bulk_chunk))
    return {"n": b.cfg.n, "chunk": b.cfg.bulk_chunk, "seconds": seconds, "per_s": b.cfg.n / seconds}


def phase_workers(b: Bench, count: int, profile: bool = False) -> dict[str, Any]:
    n = b.cfg.n_profile if profile else b.cfg.n
    b.t.reset()
    asyncio.run(enqueue_bulk(b, n, b.cfg.bulk_chunk))
    workers = [
        b.worker(f"throughput{count}-{i}" + ("-profile" if profile else "")) for i in range(count)
    ]
    spy: Proc | None = None
    try:
        for w in workers:
            w.start()
        if profile:
            spy = start_profiler(b, workers[0])
        t0 = min(w.t_start for w in workers)
        at_first: list[float] = []  # workers' CPU seconds when the first task completed

        def first_done() -> bool:
            if b.completed() > 0:
                at_first.extend(w.cpu_s() for w in workers)
                return True
            return False

        t_first = b.wait_until(first_done, workers, "the first task")
        done_first = b.completed()
        t_done = b.wait_until(lambda: b.completed() >= n, workers, f"{n} completed tasks")
        cpu = sum(w.cpu_s() for w in workers) - sum(at_first)
        for w in workers:
            w.sample(every=0)
    finally:
        if spy is not None:
            stop_profiler(spy)
        for w in workers:
            w.stop()
    res = {
        "n": n,
        "workers": count,
        "concurrency": b.cfg.concurrency,
        "seconds": t_done - t0,
        "per_s": n / (t_done - t0),
        "start_to_first_done_s": t_first - t0,
        "per_s_after_first": (n - 1) / (t_done - t_first) if t_done > t_first else None,
        "peak_rss_mb_per_worker": [w.peak_rss / 2**20 for w in workers],
        # Less noisy than wall time on a shared machine: worker CPU per task, start-up excluded.
        "worker_cpu_us_per_task": 1e6 * cpu / max(1, n - done_first),
    }
    if spy is not None:
        res["profile"] = summarize_profile(Path(spy.argv[spy.argv.index("-o") + 1]))
    return res


def phase_timed(b: Bench, delay_s: float) -> dict[str, Any]:
    """Latency (delay_s = 0) or delayed-start error (delay_s > 0), in ms."""
    count = b.cfg.delay_count if delay_s else b.cfg.lat_count
    b.t.reset()
    worker = b.worker("delay" if delay_s else "latency").start()
    try:
        asyncio.run(enqueue_single(b, 5))  # warm-up, then leave the worker idle
        ready = b.wait_until(lambda: b.completed() >= 5, [worker], "warm-up tasks")
        time.sleep(1.0)
        lag_ms = asyncio.run(enqueue_paced(b, count, b.cfg.rate, delay_s))
        b.wait_until(lambda: b.t.r.llen(b.lat_key) >= count, [worker], f"{count} records")
        values = [float(x) for x in b.t.r.lrange(b.lat_key, 0, -1)]
    finally:
        worker.stop()
    return {
        "count": count,
        "rate_per_s": b.cfg.rate,
        "delay_s": delay_s,
        "worker_ready_s": ready - worker.t_start,
        "max_pacing_lag_ms": lag_ms,
        "ms": stats(values),
        "abs_ms": stats([abs(v) for v in values]),
    }


# ------------------------------------------------------------------ profile


def start_profiler(b: Bench, worker: Proc) -> Proc:
    spy = BIN / "py-spy"
    if not spy.exists():
        raise Failed(f"{spy} is missing: {BIN / 'pip'} install py-spy")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"conveyor-profile-{stamp}.speedscope.json"
    argv = [str(spy), "record", "--pid", str(worker.pid), "--rate", str(b.cfg.profile_rate)]
    argv += ["--format", "speedscope", "--idle", "-o", str(out)]  # blocking: whole stacks
    proc = Proc(argv, dict(os.environ), b.logs / "py-spy.log").start()
    time.sleep(0.3)  # let it attach; the worker is still importing
    return proc


def stop_profiler(spy: Proc) -> None:
    if spy.p is not None and spy.p.poll() is None:
        spy.p.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.p.wait(30)
        except subprocess.TimeoutExpired:
            spy.p.kill()
            spy.p.wait()
    spy.stop()


def category(frame: dict[str, Any]) -> str:
    """The package a frame's code belongs to."""
    path, name = frame.get("file") or "", frame.get("name") or ""
    parts = (
        ("/pottery/", "pottery"),
        ("/redis/", "redis-py"),
        ("/hiredis", "redis-py"),
        ("/pydantic", "pydantic"),
        ("/structlog/", "structlog"),
        ("/dependency_injector/", "dependency-injector"),
        (str(SRC) + "/", "conveyor (src/)"),
        ("/bin/conveyor", "conveyor (src/)"),
        (str(HERE) + "/", "bench task module"),
    )
    for needle, label in parts:
        if needle in path:
            return label
    if path.endswith("selectors.py") and name == "select":
        return "idle (epoll wait)"
    if "/asyncio/" in path:
        return "asyncio"
    if "/lib/python3" in path:
        return "stdlib (other)"
    return "other"


# Where a sample's time belongs in a task's life: the innermost frame that matches a rule
# (so pydantic decoding inside the claim counts as decoding, not as the claim).
_STAGES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    # redis-py sends each command in a task of its own (asyncio.wait_for, as socket_timeout
    # is set), so these frames have no caller of ours; it is every command's socket write.
    (
        "command send (redis-py, in wait_for's own task)",
        lambda name, path: name == "AbstractConnection._send_packed_command",
    ),
    ("logging (structlog)", lambda name, path: "/structlog/" in path),
    ("task decode/encode (codec, pydantic)", lambda name, path: path.endswith("codec.py")),
    ("payload validation (registry.parse)", lambda name, path: name == "TaskRegistry.parse"),
    ("job body (INCR)", lambda name, path: path.startswith(str(HERE))),
    ("lock acquire (pottery)", lambda name, path: "/pottery/" in path and "acquire" in name),
    ("lock release (pottery)", lambda name, path: "/pottery/" in path and "release" in name),
    ("lock acquire (pottery)", lambda name, path: name == "RedlockService.acquire"),
    ("lock release (pottery)", lambda name, path: name == "RedlockService.release"),
    ("claim (Lua)", lambda name, path: name in ("RedisTaskQueue.claim", "Worker._claim")),
    ("settle (Lua)", lambda name, path: name == "RedisTaskQueue.settle"),
    ("lease keeper start/cancel", lambda name, path: name.startswith("LeaseKeeper.")),
    ("worker + ProcessTask orchestration", lambda name, path: path.startswith(str(SRC))),
)


def running_callback(stack: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The frames of the callback or task step the event loop is running (the frames from
    the entry script down to Handle._run are the same in every sample)."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i].get("name") == "Handle._run":
            return stack[i + 1 :] or stack[i:]
    return stack


def stage(stack: list[dict[str, Any]]) -> str:
    if not any(f.get("name") == "Handle._run" for f in stack):
        return "event loop itself (_run_once: epoll, timers, ready queue)"
    running = running_callback(stack)
    for frame in reversed(running):
        name, path = frame.get("name") or "", frame.get("file") or ""
        for label, matches in _STAGES:
            if matches(name, path):
                return label
    return f"callbacks without a stage frame: {category(running[-1])}"


def summarize_profile(path: Path) -> dict[str, Any]:
    """Shares of the worker's main thread: by package, by task stage, by function."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    main = max(data["profiles"], key=lambda p: sum(p["weights"]))  # the event-loop thread
    self_cat: Counter[str] = Counter()
    incl_cat: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    total = 0.0
    for ids, weight in zip(main["samples"], main["weights"], strict=True):
        if not ids:
            continue
        stack = [frames[i] for i in ids]
        total += weight
        self_cat[category(stack[-1])] += weight
        self_fn[_fn(stack[-1])] += weight
        stages[stage(stack)] += weight
        running = running_callback(stack)
        for label in {category(f) for f in running}:
            incl_cat[label] += weight
        for fn in {_fn(f) for f in running}:
            incl_fn[fn] += weight

    def shares(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, round(100 * w / total, 1)) for name, w in counter.most_common(k)]

    return {
        "file": str(path.relative_to(HERE.parent)),
        "sampled_s": round(total, 2),
        "samples": sum(1 for ids in main["samples"] if ids),
        "self_pct_by_package": shares(self_cat, 20),
        "inclusive_pct_by_package": shares(incl_cat, 20),
        "pct_by_task_stage": shares(stages, 20),
        "self_pct_top_functions": shares(self_fn, 30),
        "inclusive_pct_top_functions": shares(incl_fn, 60),
    }


def _fn(frame: dict[str, Any]) -> str:
    """`qualified.name (module path)`: one entry per function, whatever line was running."""
    path = frame.get("file") or "?"
    for root in (str(SRC) + "/", "site-packages/", "/lib/python3.11/", "/lib/python3.12/"):
        if root in path:
            path = path.split(root, 1)[1]
            break
    return f"{frame.get('name')} ({path})"


# ------------------------------------------------------------------ report


def fmt(x: Any, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def table(res: dict[str, Any]) -> str:
    p = res["phases"]
    cfg = res["meta"]["config"]

    def get(phase: str, *path: str, digits: int = 0) -> str:
        d: Any = p.get(phase)
        if not isinstance(d, dict) or "error" in d:
            return "ERR" if isinstance(d, dict) else "n/a"
        for k in path:
            d = d.get(k) if isinstance(d, dict) else None
        return fmt(d, digits)

    w1, w2 = p.get("workers1", {}), p.get("workers2", {})
    rss1 = max(w1.get("peak_rss_mb_per_worker") or [0]) or None
    rss2 = w2.get("peak_rss_mb_per_worker") or []
    c = cfg["concurrency"]
    rows = [
        (
            f"enqueue/s single, HTTP POST /api/tasks (1 connection, N={cfg['n_http']})",
            get("http", "per_s"),
        ),
        (f"enqueue/s single, direct EnqueueTask.execute (N={cfg['n']})", get("direct", "per_s")),
        (f"enqueue/s bulk, execute_many in chunks of {cfg['bulk_chunk']}", get("bulk", "per_s")),
        (
            f"processed/s, 1 worker x concurrency {c} (N={cfg['n']}, from worker start)",
            get("workers1", "per_s"),
        ),
        ("processed/s, 1 worker, after its first task", get("workers1", "per_s_after_first")),
        ("worker CPU us per task, 1 worker", get("workers1", "worker_cpu_us_per_task")),
        (
            f"processed/s, 2 workers x concurrency {c} (N={cfg['n']}, from worker start)",
            get("workers2", "per_s"),
        ),
        ("processed/s, 2 workers, after the first task", get("workers2", "per_s_after_first")),
        ("worker CPU us per task, 2 workers (sum)", get("workers2", "worker_cpu_us_per_task")),
        (
            f"pickup latency p50 / p99 ms ({cfg['lat_count']} tasks at {cfg['rate']:.0f}/s)",
            f"{get('latency', 'ms', 'p50', digits=1)} / {get('latency', 'ms', 'p99', digits=1)}",
        ),
        (
            f"delay error p50 / p99 ms ({cfg['delay_count']} tasks, {cfg['delay']} s delay)",
            f"{get('delay', 'ms', 'p50', digits=1)} / {get('delay', 'ms', 'p99', digits=1)}",
        ),
        (
            "delay error min / max ms",
            f"{get('delay', 'ms', 'min', digits=1)} / {get('delay', 'ms', 'max', digits=1)}",
        ),
        ("worker RSS MB, peak during the 1-worker throughput run", fmt(rss1, 1)),
        ("worker RSS MB, peaks of the 2 workers", " / ".join(fmt(x, 1) for x in rss2) or "n/a"),
        ("API process RSS MB (after the HTTP phase)", get("http", "api_rss_mb", digits=1)),
    ]
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in rows if value.strip("n/a ")]
    errors = [f"- {k}: {v['error']}" for k, v in p.items() if "error" in v]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)


def profile_text(prof: dict[str, Any]) -> str:
    lines = [
        f"Profile of one worker under the throughput workload: {prof['samples']} samples "
        f"({prof['sampled_s']} s) of its event-loop thread; speedscope file {prof['file']}",
        "",
        "| package | self % | inclusive % (below the event loop) |",
        "|---|---:|---:|",
    ]
    incl = dict(prof["inclusive_pct_by_package"])
    lines += [f"| {k} | {v} | {incl.get(k, '')} |" for k, v in prof["self_pct_by_package"]]
    lines += ["", "| task stage (innermost matching frame) | % |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in prof["pct_by_task_stage"]]
    lines += ["", "| top functions, self time | % |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in prof["self_pct_top_functions"][:20]]
    return "\n".join(lines)


# ------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n",
        type=int,
        default=None,
        help="tasks per enqueue/throughput phase (default 10000; --quick: 2000)",
    )
    ap.add_argument(
        "--n-http",
        type=int,
        default=None,
        help="tasks for the HTTP phase (default 3000; --quick: 500)",
    )
    ap.add_argument("--concurrency", type=int, default=50, help="worker --concurrency")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument(
        "--redis-url",
        default=None,
        help="use this loopback Redis (never flushed) instead of starting one",
    )
    ap.add_argument("--bulk-chunk", type=int, default=1000)
    ap.add_argument("--lat-count", type=int, default=None, help="default 300; --quick: 100")
    ap.add_argument("--delay-count", type=int, default=None, help="default 200; --quick: 100")
    ap.add_argument("--rate", type=float, default=100.0, help="tasks/s, latency and delay")
    ap.add_argument("--delay", type=float, default=1.0, help="seconds, delay phase")
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of API and workers")
    ap.add_argument("--timeout", type=float, default=120.0, help="limit (s) of each wait")
    ap.add_argument("--phases", default="http,direct,bulk,workers1,workers2,latency,delay")
    ap.add_argument("--profile", action="store_true", help="add a py-spy profiled run")
    ap.add_argument(
        "--n-profile", type=int, default=None, help="tasks, profiled run (default 3 x --n)"
    )
    ap.add_argument("--profile-rate", type=int, default=200, help="py-spy samples/s")
    cfg = ap.parse_args()
    quick = cfg.quick
    cfg.n = cfg.n or (2000 if quick else 10000)
    cfg.n_http = cfg.n_http or (500 if quick else 3000)
    cfg.lat_count = cfg.lat_count or (100 if quick else 300)
    cfg.delay_count = cfg.delay_count or (100 if quick else 200)
    cfg.n_profile = cfg.n_profile or 3 * cfg.n
    return cfg


PHASES: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "http": phase_http,
    "direct": phase_direct,
    "bulk": phase_bulk,
    "workers1": lambda b: phase_workers(b, 1),
    "workers2": lambda b: phase_workers(b, 2),
    "latency": lambda b: phase_timed(b, 0.0),
    "delay": lambda b: phase_timed(b, b.cfg.delay),
    "profile": lambda b: phase_workers(b, 1, profile=True),
}


@contextmanager
def importable_project() -> Iterator[None]:
    """The task module (bench/) importable in this process too, for the registry."""
    sys.path.insert(0, str(HERE))
    try:
        yield
    finally:
        sys.path.remove(str(HERE))


def run(cfg: argparse.Namespace, workdir: Path, logs: Path) -> dict[str, Any]:
    target = RedisTarget(cfg.redis_url, workdir)
    phases = [s.strip() for s in cfg.phases.split(",") if s.strip()]
    if cfg.profile and "profile" not in phases:
        phases.append("profile")
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        bench = Bench(cfg, target, workdir, logs)
        for name in phases:
            started = time.perf_counter()
            try:
                results[name] = PHASES[name](bench)
            except (Failed, httpx.HTTPError, redis.RedisError, OSError) as exc:
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["elapsed_s"] = time.perf_counter() - started
            print(f"  {name:9s} {_brief(results[name])}", flush=True)
        server = target.r.info("server")
    finally:
        target.close()
    return {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "wall_s": time.perf_counter() - t0,
            "machine": f"{psutil.cpu_count()} CPUs, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.platform()}",
            "python": platform.python_version(),
            "redis_server": server["redis_version"],
            "redis": "own redis-server (no persistence)" if target.own else "given --redis-url",
            "versions": {
                p: importlib.metadata.version(p)
                for p in (
                    "conveyor",
                    "redis",
                    "hiredis",
                    "pottery",
                    "pydantic",
                    "structlog",
                    "litestar",
                    "uvicorn",
                )
            },
            "lock": "pottery AIORedlock per task, LOCK_TTL_MS="
            + os.environ.get("LOCK_TTL_MS", "30000 (default)"),
            "config": {k: v for k, v in vars(cfg).items() if k != "redis_url"},
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        },
        "phases": results,
    }


def _brief(d: dict[str, Any]) -> str:
    if "error" in d:
        return "ERROR " + d["error"]
    if "per_s" in d:
        return f"{d['per_s']:,.0f}/s ({d['seconds']:.2f} s)"
    return f"p50 {d['ms']['p50']:.1f} ms, p99 {d['ms']['p99']:.1f} ms, max {d['ms']['max']:.1f}"


def main() -> int:
    cfg = parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-{stamp}"  # worker, API and py-spy output of this run
    logs.mkdir(parents=True, exist_ok=True)
    with importable_project(), tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        res = run(cfg, Path(tmp), logs)
    md = table(res)
    if "profile" in res["phases"] and "profile" in res["phases"]["profile"]:
        md += "\n\n" + profile_text(res["phases"]["profile"]["profile"])
    out = RESULTS / f"conveyor-{stamp}.json"
    out.write_text(json.dumps(res, indent=2))
    out.with_suffix(".md").write_text(md + "\n")
    print(f"\n{md}\n\nwall {res['meta']['wall_s']:.0f} s; JSON: {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
