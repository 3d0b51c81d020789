"""Listing, search, stats and export latency over HTTP with N finished tasks stored.

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/bench_listing.py                 # N = 1,000,000 (long: see README)
    .venv/bin/python bench/bench_listing.py --n 20000       # smoke run, about a minute
    .venv/bin/python bench/bench_listing.py --snapshot /tmp/listing.rdb   # keep/reuse the fill

It starts its own `redis-server --port <free> --save "" --appendonly no` on 127.0.0.1 and
stops it by PID at the end. Then:

1. fill: N tasks through EnqueueTask.execute_many (the DI container's, chunks of
   --chunk), over 4 task types of the demo module (echo, sendEmail, email, fail) and 2
   queues (default, mail), with varied string payloads; every 4th payload holds the word
   SEARCH_WORD. Then --workers real `conveyor worker --concurrency 50` processes
   (LOG_LEVEL=WARNING, each task under its pottery lock) run until every stored task is
   completed or failed (`fail` tasks fail at once: retryable=false). Progress and rates
   are printed every --progress-s seconds.
2. memory: Redis INFO used_memory of the empty server and of the filled one, per task.
3. measure: workers stopped, one `conveyor api` started; over ONE kept-open httpx
   connection, --warmup untimed then --requests timed requests of each kind (see CASES),
   one after another. Besides client-side p50/p99 it records, per request, the API
   process's CPU time (psutil) and the Redis commands and server time (INFO commandstats).
   With --profile missed (default) a case whose p99 misses the target is run again under
   py-spy (on the API process, CPU samples only) and its hottest functions are shown.
4. the dashboard's cases (/admin/queues, `--cases dashboard` runs only these): before the
   first of them, audit entries are recorded for the sampled task ids, three schedules
   are created, and one worker holds --active `hold` tasks (dashboard_tasks.py) active;
   then every call the page makes that the cases above do not cover is timed the same
   way. GET /api/overview (the overview page's one call) is timed twice, since the API
   makes its answer at most once a second and hands that to every caller meanwhile:
   `overview_fresh` times answers made for the request (each after a pause of more than
   that second with no call; --fresh-requests of them), `overview_shared` back to back,
   mostly the shared answer. `overview_5calls` times the five calls the page made before
   /api/overview at once (asyncio + httpx, up to 6 connections, as a browser), to the
   last answer, for comparison. With --auth the API runs with API_KEYS and every request
   carries the admin key, as the page sends it.

Resumable: with --snapshot PATH the Redis loads PATH at start if it exists (the fill then
only adds what is missing: enqueues up to N, finishes what is unfinished), saves to PATH
every --snapshot-every s while workers run (BGSAVE: atomic) and once the fill is done. A
second run with the same PATH measures at once. Without --snapshot nothing is written.

Prints markdown tables; writes bench/results/listing-<stamp>.json (+ .md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import itertools
import json
import os
import platform
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from bench_conveyor import Failed, Proc, free_port, stats

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
QUEUES = ("default", "mail")
META = "bench:listing:meta"  # the fill's own facts, kept in the Redis (and its snapshot)
SEARCH_WORD = "invoice"  # in every 4th task's payload
TARGET_MS = 50.0  # DESIGN.md, "Speed": listing, stats and dashboard under 50 ms
# issue 11: "the overview is usable within one second"
TARGETS_MS = {"overview_fresh": 1000.0, "overview_shared": 1000.0, "overview_5calls": 1000.0}
# src/interfaces/http/overview.py MAX_AGE_S: how long the API hands out one overview answer;
# overview_fresh waits a little longer than that with no call before each request.
SHARED_S = 1.0
FRESH_PAUSE_S = SHARED_S + 0.05
OVERVIEW_KEYS = {"madeAt", "stats", "workers", "running", "failures", "schedules"}
ADMIN_KEY = secrets.token_urlsafe(24)  # with --auth: the API's one key, role admin
HOLD_MODULES = "infrastructure.tasks.demo,dashboard_tasks"  # `hold`: bench/dashboard_tasks.py
# The dashboard's schedules: none fires while the cases run (an interval's first slot is
# one interval after creation; the crons are weekly and monthly).
SCHEDULES: dict[str, dict[str, Any]] = {
    "bench-hourly": {"everyMs": 3_600_000},
    "bench-weekly": {"cron": "0 3 * * 1"},
    "bench-monthly": {"cron": "30 6 1 * *", "timezone": "Europe/Berlin"},
}
STATUSES = ("waiting", "delayed", "active", "completed", "failed", "cancelled")
STATE_SETS = {"waiting": "wait"}  # the rest are named as their status


def src_fingerprint() -> dict[str, Any]:
    """Which Conveyor was measured: git HEAD, whether src/ differs from it, a hash of every
    file under src/ and the newest change (src/ may be edited between runs)."""
    digest = hashlib.sha256()
    newest = 0.0
    for path in sorted(SRC.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".lua"):
            digest.update(str(path.relative_to(SRC)).encode() + b"\0" + path.read_bytes())
            newest = max(newest, path.stat().st_mtime)

    def git(*args: str) -> str:
        argv = ["git", *args]
        done = subprocess.run(argv, check=False, cwd=SRC.parent, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "git_head": git("rev-parse", "--short", "HEAD"),
        "src_files_changed_vs_head": len(git("status", "--short", "src").splitlines()),
        "src_sha256": digest.hexdigest()[:16],
        "src_newest_change": datetime.datetime.fromtimestamp(newest).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------ payloads


def _vocabulary(size: int = 1500) -> list[str]:
    """Deterministic made-up words (letters only, 4-9 chars): search tokens of the fill."""
    rng = random.Random(7)
    consonants, vowels = "bcdfghjklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.randint(2, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)))
    return sorted(words)


VOCAB = _vocabulary()
TEMPLATES = ["welcome", "reset password", "weekly digest", "receipt", "shipping update"]
TAGS = ["urgent", "batch", "retry", "nightly", "customer", "internal", "export", "report"]


def task_spec(i: int, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """(task name, queue, payload) of the i-th task: 50% echo (both queues), 20%
    sendEmail and 20% email (mail), 10% fail (default); SEARCH_WORD in every 4th."""
    tagged = i % 4 == 0
    kind = i % 10
    if kind < 5:
        words = rng.choices(VOCAB, k=rng.randint(3, 8))
        if tagged:
            words.insert(rng.randrange(len(words)), SEARCH_WORD)
        payload: dict[str, Any] = {
            "text": " ".join(words),
            "customer": f"cust-{rng.randrange(50_000)}",
            "tags": rng.sample(TAGS, 2),
            "amount": rng.randrange(100, 100_000) / 100,
        }
        return "echo", QUEUES[kind % 2], payload
    if kind < 7:
        template = f"{SEARCH_WORD} reminder" if tagged else rng.choice(TEMPLATES)
        return "sendEmail", "mail", {"userId": rng.randrange(1, 10**6), "template": template}
    if kind < 9:
        user = f"{SEARCH_WORD}.{i}" if tagged else f"{rng.choice(VOCAB)}.{i}"
        return "email", "mail", {"to": f"{user}@{rng.choice(VOCAB)}.example.com"}
    words = " ".join(rng.choices(VOCAB, k=3))
    message = f"simulated {SEARCH_WORD} failure {words}" if tagged else f"simulated {words}"
    return "fail", "default", {"message": message, "retryable": False}


# ------------------------------------------------------------------ Redis


class OwnRedis:
    """Our redis-server on a free loopback port; loads `snapshot` at start if it exists."""

    def __init__(self, workdir: Path, logs: Path, snapshot: Path | None, extra: list[str]) -> None:
        self.port = free_port()
        where = snapshot or workdir / "never-written.rdb"
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        argv += ["--dir", str(where.parent), "--dbfilename", where.name, *extra]
        self.snapshot = snapshot
        self.loaded = snapshot is not None and snapshot.exists()
        self.proc = Proc(argv, dict(os.environ), logs / "redis.log").start()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # No socket timeout: SAVE, MEMORY USAGE of big keys and loading take seconds here.
        self.r = redis.Redis(port=self.port, decode_responses=True, socket_timeout=None)
        deadline = time.perf_counter() + 600  # loading a big snapshot takes a while
        while True:
            try:
                if self.r.ping() and self.r.info("persistence")["loading"] == 0:
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                self.proc.check_alive()
                if time.perf_counter() > deadline:
                    raise
            time.sleep(0.1)

    def used_memory(self) -> int:
        return int(self.r.info("memory")["used_memory"])

    def counts(self) -> dict[str, int]:
        """Tasks per status over both queues (ZCARD of the state sets)."""
        pipe = self.r.pipeline(transaction=False)
        for queue in QUEUES:
            for status in STATUSES:
                pipe.zcard(f"conveyor:{{{queue}}}:{STATE_SETS.get(status, status)}")
        replies = pipe.execute()
        out = dict.fromkeys(STATUSES, 0)
        for position, count in enumerate(replies):
            out[STATUSES[position % len(STATUSES)]] += int(count)
        return out

    def save(self, background: bool) -> None:
        if self.snapshot is None:
            return
        if self.r.info("persistence")["rdb_bgsave_in_progress"]:
            if background:
                return
            self._wait_bgsave()
        self.r.bgsave()
        if not background:
            self._wait_bgsave()
            if self.r.info("persistence")["rdb_last_bgsave_status"] != "ok":
                raise Failed(f"BGSAVE to {self.snapshot} failed; see the redis log")

    def _wait_bgsave(self) -> None:
        while self.r.info("persistence")["rdb_bgsave_in_progress"]:
            time.sleep(0.5)

    def stop(self) -> None:
        self.r.close()
        self.proc.stop()  # SIGTERM; with --save "" it writes nothing


# ------------------------------------------------------------------ fill


def memory_breakdown(r: redis.Redis) -> dict[str, dict[str, float]]:
    """Where used_memory goes, by kind of key: MEMORY USAGE of every key but the task
    hashes, and of 2,000 random task hashes scaled up to their count."""
    kinds: dict[str, dict[str, float]] = {}
    others = []
    for key in r.scan_iter(count=5000):
        if ":task:" not in key:
            others.append(key)
    for first in range(0, len(others), 1000):
        batch = others[first : first + 1000]
        pipe = r.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, size in zip(batch, pipe.execute(), strict=True):
            kind = _kind(key)
            entry = kinds.setdefault(kind, {"keys": 0, "bytes": 0})
            entry["keys"] += 1
            entry["bytes"] += size or 0
    tasks = 0
    sizes: list[int] = []
    for queue in QUEUES:
        count = int(r.zcard(f"conveyor:{{{queue}}}:ids"))
        tasks += count
        sample = r.zrandmember(f"conveyor:{{{queue}}}:ids", 1000) or []
        pipe = r.pipeline(transaction=False)
        for task_id in sample:
            pipe.memory_usage(f"conveyor:{{{queue}}}:task:{task_id}", samples=0)
        sizes += [int(size or 0) for size in pipe.execute()]
    if sizes:
        kinds["task hashes (sampled)"] = {"keys": tasks, "bytes": tasks * sum(sizes) / len(sizes)}
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]["bytes"]))


def sample_task(r: redis.Redis) -> dict[str, Any]:
    """One stored echo task: its hash's encoding, size, and its longest fields."""
    task_id = r.zrandmember("conveyor:{default}:idx:completed:echo")
    key = f"conveyor:{{default}}:task:{task_id}"
    fields = r.hgetall(key)
    longest = sorted(((len(v.encode()), k) for k, v in fields.items()), reverse=True)
    return {
        "key": key,
        "encoding": r.object("encoding", key),
        "memory_usage": r.memory_usage(key, samples=0),
        "fields": len(fields),
        "field_bytes_total": sum(n for n, _ in longest),
        "longest_fields": {k: n for n, k in longest[:8]},
        "hash_max_listpack_value": r.config_get("hash-max-listpack-value"),
    }


def _kind(key: str) -> str:
    if not key.startswith("conveyor:{"):
        return "other (bench meta)"
    rest = key.split("}:", 1)[-1]
    kind = rest.split(":", 1)[0]
    labels = {
        "idx": "listing indexes idx:<status>:<name>",
        "tok": "search token sets tok:<word>",
        "ids": "id set (prefix search)",
        "durations": "duration lists",
        "finished": "finished-per-minute counters",
    }
    return labels.get(kind, f"state sets and others ({kind})" if ":" not in rest else kind)


def conveyor_env(url: str, workdir: Path, log_level: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REDIS_URL=url,
        QUEUES=",".join(QUEUES),
        FILES_BASE_DIR=str(workdir / "files"),
        LOG_LEVEL=log_level,
        LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    for name in ("REDLOCK_URLS", "CONVEYOR_TASK_MODULES", "API_KEYS"):
        env.pop(name, None)
    return env


async def enqueue_fill(url: str, workdir: Path, start: int, stop: int, cfg: Any) -> float:
    """Tasks start..stop-1 through EnqueueTask.execute_many; returns the seconds taken."""
    from dependency_injector import providers  # noqa: PLC0415

    from application.enqueue_task import EnqueueRequest  # noqa: PLC0415
    from infrastructure.settings import Settings  # noqa: PLC0415
    from interfaces.container import Container, resolve  # noqa: PLC0415

    settings = Settings(
        redis_url=url, files_base_dir=workdir / "files", redlock_urls="", queues=",".join(QUEUES)
    )
    container = Container()
    container.settings.override(providers.Object(settings))
    await container.init_resources()
    try:
        use_case = await resolve(container.enqueue_task)
        rng = random.Random(start)
        t0 = last = time.perf_counter()
        for first in range(start, stop, cfg.chunk):
            requests = []
            for i in range(first, min(stop, first + cfg.chunk)):
                name, queue, payload = task_spec(i, rng)
                requests.append(EnqueueRequest(name, payload, queue=queue))
            await use_case.execute_many(requests)
            now = time.perf_counter()
            if now - last >= cfg.progress_s:
                last = now
                done = first + len(requests) - start
                rate = done / (now - t0)
                print(f"  [enqueue] {first + len(requests):,}/{stop:,} ({rate:,.0f}/s)", flush=True)
        return time.perf_counter() - t0
    finally:
        await container.shutdown_resources()


def fill(cfg: Any, red: OwnRedis, workdir: Path, logs: Path) -> dict[str, Any]:
    """Up to N stored tasks, all finished; what was done now and before (the META hash)."""
    meta = red.r.hgetall(META)
    if "baseline_used_memory" not in meta:
        meta["baseline_used_memory"] = str(red.used_memory())
        red.r.hset(META, "baseline_used_memory", meta["baseline_used_memory"])
    stored = sum(red.counts().values())
    out: dict[str, Any] = {"stored_at_start": stored, "loaded_snapshot": red.loaded}
    if stored < cfg.n:
        seconds = asyncio.run(enqueue_fill(red.url, workdir, stored, cfg.n, cfg))
        out["enqueue"] = {"n": cfg.n - stored, "seconds": seconds}
        out["enqueue"]["per_s"] = out["enqueue"]["n"] / seconds
        out["used_memory_after_enqueue"] = red.used_memory()
        red.r.hincrbyfloat(META, "enqueue_s", seconds)
        red.r.hincrby(META, "enqueue_n", cfg.n - stored)
        red.r.hset(META, "used_memory_after_enqueue", out["used_memory_after_enqueue"])
        print(f"  [enqueue] {out['enqueue']['n']:,} in {seconds:.1f} s "
              f"({out['enqueue']['per_s']:,.0f}/s)")  # fmt: skip
    counts = red.counts()
    if counts["waiting"] + counts["delayed"] + counts["active"] > 0:
        out["complete"] = complete(cfg, red, workdir, logs)
        red.r.hincrbyfloat(META, "complete_s", out["complete"]["seconds"])
        red.r.hincrby(META, "complete_n", out["complete"]["n"])
    if "enqueue" in out or "complete" in out:
        t0 = time.perf_counter()
        red.save(background=False)
        if red.snapshot is not None:
            print(f"  saved {red.snapshot} in {time.perf_counter() - t0:.0f} s", flush=True)
    out["meta"] = red.r.hgetall(META)
    return out


def complete(cfg: Any, red: OwnRedis, workdir: Path, logs: Path) -> dict[str, Any]:
    """Real `conveyor worker` processes until nothing is waiting, delayed or active."""
    env = conveyor_env(red.url, workdir, cfg.log_level)
    argv = [str(BIN / "conveyor"), "worker", "--concurrency", str(cfg.concurrency)]
    argv += ["--queues", ",".join(QUEUES)]
    workers = [Proc(argv, env, logs / f"fill-worker-{i}.log") for i in range(cfg.workers)]
    before = red.counts()
    finished_before = before["completed"] + before["failed"]
    t0 = last_print = last_save = time.perf_counter()
    last_finished = finished_before
    restarts: list[str] = []
    try:
        for worker in workers:
            worker.start()
        while True:
            time.sleep(0.5)
            restarts += _restart_exited(workers)
            counts = red.counts()
            finished = counts["completed"] + counts["failed"] + counts["cancelled"]
            now = time.perf_counter()
            if counts["waiting"] + counts["delayed"] + counts["active"] == 0:
                break
            if now - last_print >= cfg.progress_s:
                recent = (finished - last_finished) / (now - last_print)
                left = counts["waiting"] + counts["delayed"] + counts["active"]
                print(f"  [workers] finished {finished:,}, left {left:,}: {recent:,.0f}/s now, "
                      f"{(finished - finished_before) / (now - t0):,.0f}/s overall, "
                      f"ETA {left / max(recent, 1):,.0f} s", flush=True)  # fmt: skip
                last_print, last_finished = now, finished
            if cfg.snapshot and now - last_save >= cfg.snapshot_every:
                red.save(background=True)
                last_save = now
        seconds = time.perf_counter() - t0
        cpu = [w.cpu_s() for w in workers]
    finally:
        for worker in workers:
            worker.stop()
    done = red.counts()["completed"] + red.counts()["failed"] - finished_before
    print(f"  [workers] {done:,} finished in {seconds:.1f} s ({done / seconds:,.0f}/s)")
    return {
        "workers": cfg.workers,
        "concurrency": cfg.concurrency,
        "n": done,
        "seconds": seconds,
        "per_s": done / seconds,
        "worker_cpu_us_per_task": 1e6 * sum(cpu) / max(1, done),
        "log_bytes": sum(w.log_path.stat().st_size for w in workers),
        "unexpected_worker_exits": restarts,
    }


def _restart_exited(workers: list[Proc]) -> list[str]:
    """A worker that exited on its own (or was signalled by someone else) is started again
    (its log continues in a new file); the fill goes on. Returns what happened."""
    happened = []
    for i, worker in enumerate(workers):
        if worker.p is not None and worker.p.poll() is not None:
            code = worker.p.returncode
            happened.append(f"{datetime.datetime.now():%H:%M:%S} worker {worker.pid} exit {code}")
            print(f"  [workers] UNEXPECTED: {happened[-1]}; starting another", flush=True)
            worker.stop()
            worker.log_path = worker.log_path.with_name(f"{worker.log_path.stem}-{i}x.log")
            worker.start()
    return happened


# ------------------------------------------------------------------ measure


class Api:
    """`conveyor api` on a free port, one kept-open connection, per-request accounting."""

    def __init__(self, red: OwnRedis, workdir: Path, logs: Path, cfg: Any) -> None:
        self.red = red
        self.port = free_port()
        argv = [str(BIN / "conveyor"), "api", "--host", "127.0.0.1", "--port", str(self.port)]
        env = conveyor_env(red.url, workdir, cfg.log_level)
        self.gc_log = cfg.gc_log or cfg.gc_freeze
        if cfg.gc_freeze:
            env["BENCH_GC_FREEZE_AFTER_S"] = "3"  # after start-up, before the first case
        if self.gc_log:  # bench/gc_probe/sitecustomize.py: one line per long or gen-2 GC pass
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(HERE / "gc_probe"), env.get("PYTHONPATH")) if p
            )
        # With --auth every request carries the admin key, in the header the page sends.
        self.headers = {"X-API-Key": ADMIN_KEY} if cfg.auth else {}
        if cfg.auth:
            env["API_KEYS"] = f"bench-admin:{ADMIN_KEY}:admin"
        # Redis commands/s and usec/s of other clients (the dashboard cases' holding worker),
        # per command: taken off each case's Redis figures (see Dashboard.background).
        self.background: dict[str, tuple[float, float]] = {}
        self.proc = Proc(argv, env, logs / "api.log").start()
        self.base = f"http://127.0.0.1:{self.port}"
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.http = httpx.Client(
            base_url=self.base, limits=limits, timeout=120.0, headers=self.headers
        )
        deadline = time.perf_counter() + 60
        while not self._ready():
            self.proc.check_alive()
            if time.perf_counter() > deadline:
                raise Failed("the API did not become ready")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return self.http.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
        t0 = time.perf_counter()
        response = self.http.get(path, params=params)
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            raise Failed(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
        return elapsed, response.json()

    def get_raw(self, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
        """(ms, the response, whatever its status; its body read)."""
        t0 = time.perf_counter()
        response = self.http.get(path, params=params)
        return (time.perf_counter() - t0) * 1000, response

    def gc_passes(self, t0: float, t1: float) -> list[dict[str, Any]]:
        """The GC passes gc_probe logged between t0 and t1 (time.time())."""
        found = []
        for line in self.proc.log_path.read_text().splitlines():
            if '"bench.gc"' in line:
                event = json.loads(line)
                if t0 <= event["t"] <= t1:
                    found.append(event)
        return found

    def commandstats(self) -> dict[str, tuple[int, int]]:
        raw = self.red.r.info("commandstats")
        return {k: (int(v["calls"]), int(v["usec"])) for k, v in raw.items()}

    def close(self) -> None:
        self.http.close()
        self.proc.stop()


class Accounting:
    """API CPU and Redis work between two points, per request."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.cpu0 = api.proc.cpu_s()
        self.cmd0 = api.commandstats()
        self.t0 = time.time()
        self.wall0 = time.perf_counter()

    @contextmanager
    def aside(self) -> Iterator[None]:
        """What happens inside (a pause between requests: the API's own idle work, the
        holding worker's commands) is not counted: the API's CPU, the Redis commands and
        the wall time spent inside are added to the starting point."""
        cpu0, cmd0, wall0 = self.api.proc.cpu_s(), self.api.commandstats(), time.perf_counter()
        yield
        self.cpu0 += self.api.proc.cpu_s() - cpu0
        for name, (c1, u1) in self.api.commandstats().items():
            c0, u0 = cmd0.get(name, (0, 0))
            start_c, start_u = self.cmd0.get(name, (0, 0))
            self.cmd0[name] = (start_c + c1 - c0, start_u + u1 - u0)
        self.wall0 += time.perf_counter() - wall0

    def per_request(self, n: int) -> dict[str, Any]:
        cpu = self.api.proc.cpu_s() - self.cpu0
        cmd1 = self.api.commandstats()
        wall = time.perf_counter() - self.wall0
        calls: Counter[str] = Counter()
        usec = 0.0
        for name, (c1, u1) in cmd1.items():
            if name in ("cmdstat_info", "cmdstat_ping"):
                continue
            c0, u0 = self.cmd0.get(name, (0, 0))
            if c1 > c0:
                # Less what other clients send meanwhile (the holding worker, if any).
                bg_calls, bg_usec = self.api.background.get(name, (0.0, 0.0))
                calls[name.removeprefix("cmdstat_")] += max(0.0, c1 - c0 - bg_calls * wall)
                usec += max(0.0, u1 - u0 - bg_usec * wall)
        out: dict[str, Any] = {
            "api_cpu_ms": 1000 * cpu / n,
            "redis_us": usec / n,
            "redis_cmds": sum(calls.values()) / n,
            "redis_top_cmds": {k: round(v / n, 1) for k, v in calls.most_common(5) if v > 0},
        }
        if self.api.background:
            out["redis_background_subtracted_cmds_per_s"] = round(
                sum(c for c, _ in self.api.background.values()), 1
            )
        if self.api.gc_log:
            time.sleep(0.2)  # the API's stderr reaches its log file
            passes = self.api.gc_passes(self.t0, time.time())
            gen2 = [p["ms"] for p in passes if p["generation"] == 2]
            out["gc"] = {
                "requests": n,
                "gen2_passes": len(gen2),
                "gen2_ms_total": round(sum(gen2), 1),
                "gen2_ms_max": max(gen2, default=0.0),
                "passes_over_2ms": sum(1 for p in passes if p["ms"] > 2),
            }
        return out


def timed(api: Api, cfg: Any, request: Callable[[int], float]) -> dict[str, Any]:
    """--warmup untimed calls, then --requests timed ones; `request(i)` returns ms."""
    for i in range(cfg.warmup):
        request(-1 - i)
    acc = Accounting(api)
    values = [request(i) for i in range(cfg.requests)]
    return {"ms": stats(values), **acc.per_request(len(values))}


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(f"wrong answer: {what}")


class Cases:
    """The requests measured; each check makes sure the answer is the one asked for."""

    def __init__(self, api: Api, red: OwnRedis, cfg: Any) -> None:
        self.api, self.red, self.cfg = api, red, cfg
        self.rng = random.Random(11)
        self.span = self._created_range()
        self.ids = self._sample_ids(cfg.requests + cfg.warmup)
        self.dash: Dashboard | None = None

    def _created_range(self) -> tuple[int, int]:
        """Oldest and newest creation time (ms) of the stored tasks, from the indexes."""
        lows, highs = [], []
        for queue in QUEUES:
            for key in self.red.r.scan_iter(match=f"conveyor:{{{queue}}}:idx:*", count=1000):
                first = self.red.r.zrange(key, 0, 0, withscores=True)
                last = self.red.r.zrange(key, -1, -1, withscores=True)
                if first:
                    lows.append(int(first[0][1]) // 1000)
                    highs.append(int(last[0][1]) // 1000)
        return min(lows), max(highs)

    def _sample_ids(self, count: int) -> list[str]:
        ids: list[str] = []
        for queue in QUEUES:
            ids += self.red.r.zrandmember(f"conveyor:{{{queue}}}:ids", count // 2 + 1) or []
        self.rng.shuffle(ids)
        return ids

    def filtered(self, _: int) -> float:
        params = {"status": "completed", "taskName": "echo", "limit": 20}
        ms, body = self.api.get("/api/tasks", params)
        items = body["items"]
        check(len(items) == 20, "a full page")
        check(all(t["status"] == "completed" and t["taskName"] == "echo" for t in items), "filter")
        return ms

    def created(self, _: int) -> float:
        low, high = self.span
        span = max(1000, (high - low) // 10)
        start = self.rng.randrange(low, max(low + 1, high - span))
        window = (start, start + span)
        params = {"from": _iso(window[0]), "to": _iso(window[1]), "limit": 20}
        ms, body = self.api.get("/api/tasks", params)
        check(len(body["items"]) == 20, "a full page in the window")
        check(all(window[0] <= _ms(t["createdAt"]) <= window[1] for t in body["items"]), "window")
        return ms

    def search_word(self, _: int) -> float:
        ms, body = self.api.get("/api/tasks", {"search": SEARCH_WORD, "limit": 20})
        check(len(body["items"]) == 20, "a full page of matches")
        check(all(SEARCH_WORD in json.dumps(t["payload"]) for t in body["items"]), "match")
        return ms

    def _search_id(self, i: int, length: int) -> float:
        task_id = self.ids[i % len(self.ids)]
        ms, body = self.api.get("/api/tasks", {"search": task_id[:length], "limit": 20})
        found = [t["id"] for t in body["items"]]
        check(all(t.startswith(task_id[:length]) for t in found), "id prefix")
        check(task_id in found or len(found) == 20, "the id searched for")
        return ms

    def search_id(self, i: int) -> float:
        return self._search_id(i, self.cfg.id_prefix)

    def search_id_short(self, i: int) -> float:
        return self._search_id(i, 8)

    def stats(self, _: int) -> float:
        ms, body = self.api.get("/api/stats")
        check(body["completed"] + body["failed"] >= self.cfg.n * 0.99, "stats totals")
        return ms

    def cursor(self) -> dict[str, Any]:
        """Walks of --hops pages following nextCursor from the newest page (no filter: every
        queue, status and name); each cursor request is timed; also the last page alone."""
        hops, walks = self.cfg.hops, -(-self.cfg.requests // self.cfg.hops)
        self._walk(min(hops, self.cfg.warmup))  # warm-up
        acc = Accounting(self.api)
        values, last = [], []
        for _ in range(walks):
            walk = self._walk(hops)
            values += walk
            last.append(walk[-1])
        return {"ms": stats(values), "last_page_ms": stats(last), "walks": walks,
                **acc.per_request(len(values))}  # fmt: skip

    def _walk(self, hops: int) -> list[float]:
        _, body = self.api.get("/api/tasks", {"limit": 20})
        seen = {t["id"] for t in body["items"]}
        oldest = body["items"][-1]["createdAt"]
        values = []
        for _ in range(hops):
            check(body["nextCursor"] is not None, "a next page")
            ms, body = self.api.get("/api/tasks", {"limit": 20, "cursor": body["nextCursor"]})
            values.append(ms)
            items = body["items"]
            check(len(items) == 20 and not seen & {t["id"] for t in items}, "a new full page")
            check(items[0]["createdAt"] <= oldest, "pages go back in time")
            seen |= {t["id"] for t in items}
            oldest = items[-1]["createdAt"]
        return values

    def export(self) -> dict[str, Any]:
        """Time to the response head, the first body bytes and the first data row of the
        CSV export; the stream is closed after that (a new connection each time)."""
        head: list[float] = []
        first: list[float] = []
        row: list[float] = []
        for _ in range(self.cfg.warmup):
            self._export_once()
        acc = Accounting(self.api)
        for _ in range(self.cfg.requests):
            for out, value in zip((head, first, row), self._export_once(), strict=True):
                out.append(value)
        per_request = acc.per_request(self.cfg.requests)
        cpu0 = self.api.proc.cpu_s()
        time.sleep(2.0)  # does the API keep exporting after the client went away?
        after = self.api.proc.cpu_s() - cpu0
        return {
            "ms": stats(first),
            "head_ms": stats(head),
            "first_row_ms": stats(row),
            "api_cpu_s_in_2s_after_close": after,
            **per_request,
        }

    def _export_once(self) -> tuple[float, float, float]:
        params = {"status": "completed"}
        with httpx.Client(base_url=self.api.base, timeout=120.0, headers=self.api.headers) as http:
            t0 = time.perf_counter()
            with http.stream("GET", "/api/tasks/export", params=params) as response:
                t_head = time.perf_counter()
                check(response.status_code == 200, f"export status {response.status_code}")
                buf, t_first = b"", 0.0
                for chunk in response.iter_raw():
                    t_first = t_first or time.perf_counter()
                    buf += chunk
                    if buf.count(b"\n") >= 2:
                        break
                t_row = time.perf_counter()
                check(buf.count(b"\n") >= 2, "a data row")
        return tuple((t - t0) * 1000 for t in (t_head, t_first, t_row))  # type: ignore[return-value]

    # -------------------------------------------------------------- the dashboard's calls

    def tasks_page(self, _: int) -> float:
        """The Tasks page as opened: no filter, no cursor."""
        ms, body = self.api.get("/api/tasks", {"limit": 20})
        items = body["items"]
        check(len(items) == 20 and body["nextCursor"] is not None, "a full first page")
        check(all(a["createdAt"] >= b["createdAt"] for a, b in itertools.pairwise(items)), "order")
        return ms

    def workers(self, _: int) -> float:
        ms, body = self.api.get("/api/workers")
        found = body["workers"]
        if self.cfg.active:
            check(any(w["running"] == self.cfg.active for w in found), "the holding worker")
        return ms

    def schedules(self, _: int) -> float:
        ms, body = self.api.get("/api/schedules")
        found = {s["name"]: s for s in body["schedules"]}
        check(set(SCHEDULES) <= set(found), "the schedules created")
        check(all(found[name]["nextRunAt"] for name in SCHEDULES), "their next fire times")
        return ms

    def active(self, _: int) -> float:
        ms, body = self.api.get("/api/tasks", {"status": "active", "limit": 100})
        items = body["items"]
        check(len(items) == min(100, self.cfg.active), f"{self.cfg.active} active tasks")
        check(all(t["status"] == "active" and t["workerId"] for t in items), "active, a worker")
        return ms

    def failed10(self, _: int) -> float:
        ms, body = self.api.get("/api/tasks", {"status": "failed", "limit": 10})
        items = body["items"]
        check(len(items) == 10, "a full page of 10")
        check(all(t["status"] == "failed" and t["error"] for t in items), "failed, an error")
        return ms

    def task(self, _: int) -> float:
        task_id = self.rng.choice(self.ids)
        ms, body = self.api.get(f"/api/tasks/{task_id}")
        check(body["id"] == task_id, "the task asked for")
        check(body["status"] in ("completed", "failed") and body["history"], "finished, history")
        return ms

    def audit(self, _: int) -> float:
        assert self.dash is not None
        task_id = self.rng.choice(self.ids)
        params = {"target": task_id, "limit": 50}
        ms, response = self.api.get_raw("/api/audit", params)
        if response.status_code != 200:
            raise Failed(
                f"GET /api/audit?target=<id>&limit=50 answered HTTP {response.status_code} "
                f"(is ?target= in src/interfaces/http/audit.py yet?): {response.text[:200]}"
            )
        items = response.json()["items"]
        check(
            all(e["target"] == task_id for e in items),
            "only the target's entries (is ?target= honoured, or ignored?)",
        )
        check(len(items) == min(50, self.dash.audit[task_id]), "the target's latest 50 or all")
        check(all(a["at"] >= b["at"] for a, b in itertools.pairwise(items)), "newest first")
        return ms

    def page(self, _: int) -> float:
        ms, response = self.api.get_raw("/admin/queues")
        check(response.status_code == 200, f"/admin/queues: HTTP {response.status_code}")
        check('type="password"' in response.text, "the key form")
        return ms

    def asset(self, _: int) -> float:
        ms, response = self.api.get_raw("/admin/queues/assets/app.js")
        check(response.status_code == 200, f"app.js: HTTP {response.status_code}")
        check("javascript" in response.headers.get("content-type", ""), "a script")
        check(len(response.content) > 100, "a script's body")
        return ms

    def _overview(self) -> tuple[float, int, dict[str, Any]]:
        """GET /api/overview, its answer checked: (ms, madeAt in ms, the answer)."""
        ms, body = self.api.get("/api/overview")
        check(set(body) == OVERVIEW_KEYS, f"overview: {sorted(OVERVIEW_KEYS)} (got {sorted(body)})")
        totals = body["stats"]
        check(all(isinstance(totals[s], int) and totals[s] >= 0 for s in STATUSES),
              "overview: the stats' counts")  # fmt: skip
        check(totals["completed"] + totals["failed"] >= self.cfg.n * 0.99, "overview: stats totals")
        check(set(QUEUES) <= set(totals["queues"]), "overview: the stats of each queue")
        check(all(sum(q[s] for q in totals["queues"].values()) == totals[s] for s in STATUSES),
              "overview: the queues' counts add up to the totals")  # fmt: skip
        running, failures = body["running"], body["failures"]
        check(isinstance(running, list) and len(running) == min(100, self.cfg.active),
              f"overview: running, {min(100, self.cfg.active)} tasks")  # fmt: skip
        check(all(t["status"] == "active" and t["workerId"] for t in running),
              "overview: running tasks, active, a worker")  # fmt: skip
        check(isinstance(failures, list) and len(failures) == 10, "overview: 10 failures")
        check(all(t["status"] == "failed" and t["error"] for t in failures),
              "overview: failures, failed, an error")  # fmt: skip
        check(all(a["finishedAt"] >= b["finishedAt"] for a, b in itertools.pairwise(failures)),
              "overview: failures, latest first")  # fmt: skip
        check(isinstance(body["workers"], list), "overview: workers")
        if self.cfg.active:
            check(any(w["running"] == self.cfg.active for w in body["workers"]),
                  "overview: the holding worker")  # fmt: skip
        check(set(SCHEDULES) <= {s["name"] for s in body["schedules"]}, "overview: schedules")
        return ms, _ms(body["madeAt"]), body

    def overview_fresh(self) -> dict[str, Any]:
        """GET /api/overview answered with an answer made for it: each request comes
        FRESH_PAUSE_S after the last with no call between (the pause is left out of the
        CPU and Redis columns), and its madeAt must be new and no older than the request.
        min(--warmup, 3) warm-up, then min(--requests, --fresh-requests) timed."""
        last = 0

        def fresh() -> float:
            nonlocal last
            sent = int(time.time() * 1000)
            ms, made, _ = self._overview()
            check(made != last and made >= sent - 5,
                  f"overview_fresh: an answer made for the request (madeAt {made}, "
                  f"sent at {sent}: is MAX_AGE_S still {SHARED_S} s?)")  # fmt: skip
            last = made
            return ms

        for _ in range(min(self.cfg.warmup, 3)):
            time.sleep(FRESH_PAUSE_S)
            fresh()
        n = min(self.cfg.requests, self.cfg.fresh_requests)
        acc = Accounting(self.api)
        values = []
        for _ in range(n):
            with acc.aside():
                time.sleep(FRESH_PAUSE_S)
            values.append(fresh())
        return {"ms": stats(values), "requests": n, "pause_s": FRESH_PAUSE_S,
                **acc.per_request(n)}  # fmt: skip

    def overview_shared(self) -> dict[str, Any]:
        """GET /api/overview back to back over the one connection (--warmup, then
        --requests): most answers are the one the API shares, and it makes a new one
        about once every SHARED_S, for the first request after that. Counts the answers
        made for the timed requests (a madeAt not seen before) and times the others,
        the shared ones, apart."""
        made: list[int] = []
        took: list[float] = []
        timed_from = 0.0

        def one(i: int) -> float:
            nonlocal timed_from
            if i == 0:
                timed_from = time.perf_counter()
            ms, at, _body = self._overview()
            made.append(at)
            took.append(ms)
            return ms

        out = timed(self.api, self.cfg, one)
        seconds = time.perf_counter() - timed_from
        seen = set(made[: self.cfg.warmup])
        shared = []
        for at, ms in zip(made[self.cfg.warmup :], took[self.cfg.warmup :], strict=True):
            if at in seen:
                shared.append(ms)
            seen.add(at)
        out["fresh_answers"] = self.cfg.requests - len(shared)
        out["seconds"] = round(seconds, 2)
        if shared:
            out["shared_only_ms"] = stats(shared)
        return out

    def overview_5calls(self) -> dict[str, Any]:
        """For comparison, what the overview page did before /api/overview: its five
        calls at once (Promise.all), over up to 6 kept-open connections (a browser's
        per-host limit); timed to the last answer (all five read and parsed). Warm-up,
        then --requests overviews; per overview."""
        return asyncio.run(self._overviews())

    async def _overviews(self) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=6, max_keepalive_connections=6)
        async with httpx.AsyncClient(
            base_url=self.api.base, limits=limits, timeout=120.0, headers=self.api.headers
        ) as http:
            for _ in range(self.cfg.warmup):
                await self._overview_once(http)
            acc = Accounting(self.api)
            walls: list[float] = []
            parts: dict[str, list[float]] = {name: [] for name, _, _ in OVERVIEW_CALLS}
            slowest: Counter[str] = Counter()
            for _ in range(self.cfg.requests):
                wall, took = await self._overview_once(http)
                walls.append(wall)
                for name, ms in took.items():
                    parts[name].append(ms)
                slowest[max(took, key=lambda k: took[k])] += 1
            per_request = acc.per_request(len(walls))
        return {
            "ms": stats(walls),
            "parts_ms": {name: stats(values) for name, values in parts.items()},
            "slowest_part": dict(slowest.most_common()),
            **per_request,
        }

    async def _overview_once(self, http: httpx.AsyncClient) -> tuple[float, dict[str, float]]:
        async def call(name: str, path: str, params: dict[str, Any]) -> tuple[str, float, Any]:
            t0 = time.perf_counter()
            response = await http.get(path, params=params)
            if response.status_code != 200:
                raise Failed(f"overview: GET {path} {params}: {response.status_code}")
            body = response.json()
            return name, (time.perf_counter() - t0) * 1000, body

        t0 = time.perf_counter()
        answers = await asyncio.gather(*(call(*spec) for spec in OVERVIEW_CALLS))
        wall = (time.perf_counter() - t0) * 1000
        bodies = {name: body for name, _, body in answers}
        check(bodies["stats"]["completed"] + bodies["stats"]["failed"] >= self.cfg.n * 0.99,
              "overview: stats totals")  # fmt: skip
        check(len(bodies["active"]["items"]) == min(100, self.cfg.active), "overview: active")
        check(len(bodies["failed"]["items"]) == 10, "overview: recent failures")
        check(set(SCHEDULES) <= {s["name"] for s in bodies["schedules"]["schedules"]},
              "overview: schedules")  # fmt: skip
        check(isinstance(bodies["workers"]["workers"], list), "overview: workers")
        return wall, {name: ms for name, ms, _ in answers}


# The overview page's calls at once before /api/overview: name, path, query.
OVERVIEW_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("stats", "/api/stats", {}),
    ("active", "/api/tasks", {"status": "active", "limit": 100}),
    ("failed", "/api/tasks", {"status": "failed", "limit": 10}),
    ("workers", "/api/workers", {}),
    ("schedules", "/api/schedules", {}),
]


class Dashboard:
    """What the dashboard's cases need beyond the fill, made once before the first of them:
    audit entries for the sampled task ids (1 to 60 each, recorded by RecordAudit: some
    full pages of 50), the SCHEDULES (POST /api/schedules), and one real worker holding
    --active `hold` tasks (dashboard_tasks.py) active, so that the overview lists a live
    worker and a full active list. The Redis commands that worker sends by itself
    (heartbeats, the look for due schedules; its lock TTL is an hour, so no renewal falls
    into the run) are then counted for 10 s and taken off each later case's Redis figures.
    Nothing is saved: the Redis never writes its snapshot after the fill."""

    def __init__(self, api: Api, red: OwnRedis, cfg: Any, workdir: Path, logs: Path) -> None:
        self.api, self.red, self.cfg, self.workdir, self.logs = api, red, cfg, workdir, logs
        self.audit: dict[str, int] = {}
        self.worker: Proc | None = None
        self.facts: dict[str, Any] | None = None
        self.failed: Failed | None = None

    def make(self, ids: list[str]) -> dict[str, Any]:
        if self.facts is not None:
            return self.facts
        if self.failed is not None:  # once is enough: every dashboard case reports it
            raise self.failed
        try:
            return self._make(ids)
        except (Failed, httpx.HTTPError, redis.RedisError) as exc:
            self.failed = Failed(f"dashboard set-up: {type(exc).__name__}: {exc}")
            raise self.failed from exc

    def _make(self, ids: list[str]) -> dict[str, Any]:
        t0 = time.perf_counter()
        rng = random.Random(13)
        self.audit = {task_id: rng.randint(1, 60) for task_id in ids}
        asyncio.run(self._seed())
        created = self._schedules()
        if self.cfg.active:
            self._hold()
        self.api.background = self._background(10.0)
        self.facts = {
            "audit_targets": len(self.audit),
            "audit_entries": sum(self.audit.values()),
            "schedules_created": created,
            "active_held": self.cfg.active,
            "background_cmds_per_s": {
                k.removeprefix("cmdstat_"): round(c, 1) for k, (c, _) in self.api.background.items()
            },
            "setup_s": round(time.perf_counter() - t0, 1),
        }
        print(f"  dashboard set up in {self.facts['setup_s']} s: {self.facts['audit_entries']:,} "
              f"audit entries for {len(self.audit)} tasks, {len(SCHEDULES)} schedules, "
              f"{self.cfg.active} tasks held active; the holding worker's own Redis "
              f"commands/s: {self.facts['background_cmds_per_s']}", flush=True)  # fmt: skip
        return self.facts

    async def _seed(self) -> None:
        from dependency_injector import providers  # noqa: PLC0415

        from application.enqueue_task import EnqueueRequest  # noqa: PLC0415
        from dashboard_tasks import HOLD_MAX_S  # noqa: PLC0415
        from infrastructure.settings import Settings  # noqa: PLC0415
        from interfaces.container import Container, resolve  # noqa: PLC0415

        settings = Settings(
            redis_url=self.red.url,
            files_base_dir=self.workdir / "files",
            redlock_urls="",
            queues=",".join(QUEUES),
            task_modules=HOLD_MODULES,
        )
        container = Container()
        container.settings.override(providers.Object(settings))
        await container.init_resources()
        try:
            record = await resolve(container.record_audit)
            actions = ("retry", "cancel", "duplicate", "kill", "delete")

            gate = asyncio.Semaphore(16)  # within the client's connection pool

            async def entries(task_id: str, count: int) -> None:
                async with gate:
                    for j in range(count):
                        detail = {"queue": "default", "bench": j}
                        action = actions[j % len(actions)]
                        await record.execute("bench-admin", action, task_id, detail)

            await asyncio.gather(*(entries(t, k) for t, k in self.audit.items()))
            if self.cfg.active:
                enqueue = await resolve(container.enqueue_task)
                hold = EnqueueRequest("hold", {"s": HOLD_MAX_S}, queue="default")
                await enqueue.execute_many([hold] * self.cfg.active)
        finally:
            await container.shutdown_resources()

    def _schedules(self) -> int:
        created = 0
        for name, cadence in SCHEDULES.items():
            task = {"taskName": "echo", "payload": {"text": f"{name} report"}}
            body = {"name": name, **cadence, "task": task}
            response = self.api.http.post("/api/schedules", json=body)
            if response.status_code not in (201, 409):  # 409: made by an earlier run
                raise Failed(f"POST /api/schedules: {response.status_code} {response.text[:300]}")
            created += response.status_code == 201
        return created

    def _hold(self) -> None:
        env = conveyor_env(self.red.url, self.workdir, self.cfg.log_level)
        # A lock TTL of an hour: renewed every 20 min, so no burst of 100 renewals (every
        # 10 s with the default 30 s) falls into a case; what is left is steady.
        env.update(
            CONVEYOR_TASK_MODULES=HOLD_MODULES, SHUTDOWN_GRACE_MS="1000", LOCK_TTL_MS="3600000"
        )
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        argv = [str(BIN / "conveyor"), "worker", "--concurrency", str(self.cfg.active)]
        argv += ["--queues", "default"]
        self.worker = Proc(argv, env, self.logs / "dashboard-worker.log").start()
        deadline = time.perf_counter() + 120
        while True:
            self.worker.check_alive()
            held = int(self.red.r.zcard("conveyor:{default}:active"))
            found = self.api.http.get("/api/workers").json()["workers"]
            if held == self.cfg.active and any(w["running"] == held for w in found):
                return
            if time.perf_counter() > deadline:
                raise Failed(f"{held} of {self.cfg.active} hold tasks active after 120 s")
            time.sleep(0.5)

    def _background(self, seconds: float) -> dict[str, tuple[float, float]]:
        """Commands/s and usec/s per command that Redis gets with no request running."""
        before = self.api.commandstats()
        time.sleep(seconds)
        after = self.api.commandstats()
        rates = {}
        for name, (c1, u1) in after.items():
            c0, u0 = before.get(name, (0, 0))
            if c1 > c0 and name not in ("cmdstat_info", "cmdstat_ping"):
                rates[name] = ((c1 - c0) / seconds, (u1 - u0) / seconds)
        return rates

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()


def _iso(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(iso: str) -> int:
    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# (key, label); the label's {...} are filled from the config
CASES: list[tuple[str, str]] = [
    ("filtered", "filtered page: status=completed&taskName=echo&limit=20"),
    ("cursor", "cursor page, no filter, limit=20: {hops} x nextCursor from page 1 (every hop)"),
    ("created", "created-between page (from/to: a random 10% of the time span), limit=20"),
    ("search_word", f"search by word: search={SEARCH_WORD} (in 1 of 4 payloads), limit=20"),
    ("search_id", "search by id prefix ({id_prefix} chars of a stored id), limit=20"),
    ("search_id_short", "search by id prefix, 8 chars (a ~1 s ULID time prefix), limit=20"),
    ("stats", "GET /api/stats"),
    ("export", "export ?status=completed: first body bytes (new connection each)"),
    # The dashboard (/admin/queues): the calls its pages make that the cases above do not.
    ("tasks_page", "dashboard: the Tasks page as opened: GET /api/tasks?limit=20"),
    ("workers", "dashboard: GET /api/workers (one worker running {active} tasks)"),
    ("schedules", "dashboard: GET /api/schedules (3 schedules)"),
    ("active", "dashboard: GET /api/tasks?status=active&limit=100 ({active} active)"),
    ("failed10", "dashboard: GET /api/tasks?status=failed&limit=10"),
    ("task", "dashboard: GET /api/tasks/{{id}} of a random stored task"),
    ("audit", "dashboard: GET /api/audit?target=<id>&limit=50 (1-60 entries each)"),
    ("page", "dashboard: GET /admin/queues"),
    ("asset", "dashboard: GET /admin/queues/assets/app.js"),
    (
        "overview_fresh",
        "dashboard: GET /api/overview, answers made for the request (each "
        f"after {FRESH_PAUSE_S} s with no call)",
    ),
    ("overview_shared", "dashboard: GET /api/overview back to back (mostly the shared answer)"),
    (
        "overview_5calls",
        "dashboard, before /api/overview: the overview's 5 calls at once, to the last answer",
    ),
]
OVERVIEW_CASES = ("overview_fresh", "overview_shared", "overview_5calls")
DASHBOARD_CASES = ("tasks_page", "workers", "schedules", "active", "failed10", "task", "audit",
                   "page", "asset", *OVERVIEW_CASES)  # fmt: skip
CASE_GROUPS = {
    "dashboard": list(DASHBOARD_CASES),
    "overview": list(OVERVIEW_CASES),
    "listing": [key for key, _ in CASES if key not in DASHBOARD_CASES],
    "all": [key for key, _ in CASES],
}


def measure(cfg: Any, red: OwnRedis, workdir: Path, logs: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"src_at_api_start": src_fingerprint()}
    api = Api(red, workdir, logs, cfg)
    dashboard = Dashboard(api, red, cfg, workdir, logs)
    try:
        cases = Cases(api, red, cfg)
        cases.dash = dashboard
        while cfg.gc_freeze and "bench.gc_frozen" not in api.proc.log_path.read_text():
            api.proc.check_alive()
            time.sleep(0.2)
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "cursor": cases.cursor,
            "export": cases.export,
            "overview_fresh": cases.overview_fresh,
            "overview_shared": cases.overview_shared,
            "overview_5calls": cases.overview_5calls,
        }
        for key, _ in CASES:
            if key not in cfg.cases:
                continue
            runner = runners.get(key) or (lambda k=key: timed(api, cfg, getattr(cases, k)))
            try:
                if key in DASHBOARD_CASES:
                    out["dashboard_setup"] = dashboard.make(cases.ids)
                out[key] = runner()
            except (Failed, httpx.HTTPError, redis.RedisError) as exc:
                out[key] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  {key:16s} ERROR {out[key]['error']}", flush=True)
                continue
            ms = out[key]["ms"]
            print(f"  {key:16s} p50 {ms['p50']:7.2f} ms  p99 {ms['p99']:7.2f} ms  "
                  f"max {ms['max']:7.2f} ms", flush=True)  # fmt: skip
            worst = max(ms["p99"], out[key].get("first_row_ms", ms)["p99"])
            missed = worst >= TARGETS_MS.get(key, TARGET_MS)
            if cfg.profile == "all" or (cfg.profile == "missed" and missed):
                out[key]["profile"] = profile(api, cfg, runner, key, logs)
        out["api_rss_mb"] = api.proc.ps.memory_info().rss / 2**20
    finally:
        dashboard.close()
        api.close()
    return out


# ------------------------------------------------------------------ profile


def profile(
    api: Api, cfg: Any, runner: Callable[[], dict[str, Any]], key: str, logs: Path
) -> dict[str, Any]:
    """The case once more under py-spy (CPU samples of the API process, no idle ones)."""
    spy = BIN / "py-spy"
    out = logs / f"profile-{key}.txt"
    argv = [str(spy), "record", "--pid", str(api.proc.pid), "--rate", "250", "--function"]
    argv += ["--format", "raw", "-o", str(out)]
    proc = Proc(argv, dict(os.environ), logs / f"py-spy-{key}.log").start()
    time.sleep(0.5)
    try:
        runner()
    finally:
        if proc.p is not None and proc.p.poll() is None:
            proc.p.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            with suppress(subprocess.TimeoutExpired):
                proc.p.wait(30)
        proc.stop()
    if not out.exists():
        return {"error": f"py-spy wrote nothing; see {proc.log_path}"}
    return summarize(out)


_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_OURS = {"interfaces", "infrastructure", "application", "domain", "conveyor"}


def summarize(path: Path) -> dict[str, Any]:
    """Self and inclusive shares by function and package, from py-spy's collapsed stacks
    of the main thread (stacks from `<module>`; idle pool threads are left out)."""
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.startswith("<module>") or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        weight = int(count)
        total += weight
        self_fn[frames[-1][0]] += weight
        self_pkg[frames[-1][1]] += weight
        for name in {f[0] for f in frames}:
            incl_fn[name] += weight

    def shares(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, round(100 * w / max(1, total), 1)) for name, w in counter.most_common(k)]

    return {
        "file": str(path.relative_to(HERE.parent)),
        "samples": total,
        "self_pct_by_package": shares(self_pkg, 12),
        "self_pct_top_functions": shares(self_fn, 25),
        "inclusive_pct_top_functions": shares(incl_fn, 60),
    }


def _frame(text: str) -> tuple[str, str]:
    """(`function (module path)`, package) of one frame; py-spy gives paths from the
    import root (`redis/asyncio/client.py`), so the first part names the package."""
    match = _FRAME.match(text.strip())
    name, path = (match["name"], match["file"]) if match else (text, "?")
    top = path.split("/", 1)[0].removesuffix(".py")
    if top in _OURS:
        package = "conveyor (src/)"
    elif top in sys.stdlib_module_names:
        package = "asyncio" if top == "asyncio" else "stdlib"
    else:
        package = top
    return f"{name} ({path})", package


# ------------------------------------------------------------------ report


def fmt(x: Any, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _sample_row(sample: dict[str, Any] | None) -> str:
    if not sample:
        return "| a sampled echo task hash | n/a |"
    longest = ", ".join(f"{k} {n}" for k, n in list(sample["longest_fields"].items())[:5])
    return (
        f"| a sampled echo task hash: {sample['fields']} fields, {sample['field_bytes_total']} B "
        f"of values (longest: {longest}) | {sample['memory_usage']:,} B, "
        f"encoding {sample['encoding']} |"
    )


def _mb(value: float | None) -> str:
    return f"{value / 2**20:,.1f} MB" if value else "n/a"


def tables(res: dict[str, Any]) -> str:
    cfg = res["meta"]["config"]
    f, mem = res["fill"], res["memory"]
    n = mem["tasks"]
    lines = [f"Fill ({n:,} tasks stored: {mem['counts']})", "", "| fill | value |", "|---|---:|"]
    meta = f.get("meta", {})
    if "enqueue" in f:
        e = f["enqueue"]
        lines.append(f"| enqueue (execute_many, chunks of {cfg['chunk']}) | {e['n']:,} "
                     f"in {e['seconds']:.1f} s = {e['per_s']:,.0f}/s |")  # fmt: skip
    elif "enqueue_s" in meta:
        lines.append(f"| enqueue (earlier run, from the snapshot) | {int(meta['enqueue_n']):,} "
                     f"in {float(meta['enqueue_s']):.1f} s |")  # fmt: skip
    if "complete" in f:
        c = f["complete"]
        cpu = c["worker_cpu_us_per_task"]
        lines.append(f"| real completions: {c['workers']} workers x concurrency "
                     f"{c['concurrency']} | {c['n']:,} in {c['seconds']:.1f} s = "
                     f"{c['per_s']:,.0f}/s ({cpu:,.0f} us worker CPU/task) |")  # fmt: skip
    elif "complete_s" in meta:
        done = f"{int(meta['complete_n']):,} in " if "complete_n" in meta else ""
        lines.append(f"| real completions (earlier run, from the snapshot) | {done}"
                     f"{float(meta['complete_s']):.1f} s |")  # fmt: skip
    mb = 2**20
    lines += [
        f"| Redis used_memory, empty | {mem['baseline'] / mb:,.1f} MB |",
        f"| Redis used_memory, after enqueue | {_mb(mem.get('after_enqueue'))} |",
        f"| Redis used_memory, filled | {mem['filled'] / mb:,.1f} MB |",
        f"| per stored task | {mem['per_task']:,.0f} B |",
        _sample_row(mem.get("sample_task")),
        *[
            f"| ... {kind}: {v['keys']:,.0f} keys | {v['bytes'] / mb:,.1f} MB = "
            f"{v['bytes'] / max(1, n):,.0f} B/task |"
            for kind, v in mem.get("breakdown", {}).items()
        ],
        "",
        f"Requests over one kept-open connection ({cfg['warmup']} warm-up + {cfg['requests']} "
        f"timed each; target {TARGET_MS:.0f} ms)",
        "",
        "| request | p50 ms | p99 ms | max ms | API CPU ms/req | Redis us/req | "
        "Redis cmds/req | p99 < 50 ms (overview: 1 s) |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for key, template in CASES:
        d = res["measure"].get(key)
        if d is None:
            continue
        label = template.format(**cfg)
        if "error" in d:
            lines.append(f"| {label} | ERROR: {d['error']} | | | | | | |")
            continue
        ms = d["ms"]
        ok = _verdict(key, ms["p99"])
        if key == "overview_fresh":
            label += f", {d['requests']} timed"
        lines.append(
            f"| {label} | {ms['p50']:.2f} | {ms['p99']:.2f} | {ms['max']:.2f} | "
            f"{fmt(d.get('api_cpu_ms'), 2)} | {fmt(d.get('redis_us'), 0)} | "
            f"{fmt(d.get('redis_cmds'), 1)} | {ok} |"
        )
        lines += _extra_rows(key, d)
    setup = res["measure"].get("dashboard_setup")
    if setup:
        lines += [
            "",
            f"Dashboard cases: {setup['audit_entries']:,} audit entries for "
            f"{setup['audit_targets']} tasks, {len(SCHEDULES)} schedules, "
            f"{setup['active_held']} tasks held active by one worker, whose own Redis "
            f"commands ({sum(setup['background_cmds_per_s'].values()):.1f}/s: "
            f"{setup['background_cmds_per_s']}) are taken off the Redis columns."
            + (" API_KEYS set; every request carries the admin key." if cfg.get("auth") else ""),
        ]
    lines += ["", "Conveyor measured (as the API started): " + describe_src(res["measure"])]
    return "\n".join(lines)


def _verdict(key: str, p99: float) -> str:
    ok = "yes" if p99 < TARGETS_MS.get(key, TARGET_MS) else "**no**"
    if key in TARGETS_MS:  # the overview, and also one call the page makes: 50 ms too
        ok += " (50 ms: " + ("yes" if p99 < TARGET_MS else "**no**") + ")"
    return ok


def describe_src(holder: dict[str, Any]) -> str:
    src = holder.get("src_at_api_start") or holder.get("src_at_start")
    if not src:
        return "unknown"
    return (
        f"git {src['git_head']} + {src['src_files_changed_vs_head']} files changed under "
        f"src/, src sha256 {src['src_sha256']}, newest src change {src['src_newest_change']}"
    )


def gc_text(res: dict[str, Any]) -> str:
    rows = [(k, d["gc"]) for k, d in res["measure"].items() if isinstance(d, dict) and "gc" in d]
    if not rows:
        return ""
    lines = [
        "API garbage collection during each case's timed requests (--gc-log)",
        "",
        "| case | gen-2 passes | their total ms | longest ms | passes over 2 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {g['gen2_passes']} | {g['gen2_ms_total']} | {g['gen2_ms_max']} | "
        f"{g['passes_over_2ms']} |"
        for k, g in rows
    ]
    return "\n".join(lines)


def _extra_rows(key: str, d: dict[str, Any]) -> list[str]:
    def row(label: str, ms: dict[str, float], judged: bool = False) -> str:
        ok = ("yes" if ms["p99"] < TARGET_MS else "**no**") if judged else ""
        return f"| {label} | {ms['p50']:.2f} | {ms['p99']:.2f} | {ms['max']:.2f} | | | | {ok} |"

    if key == "cursor":
        return [row(f"... the last page of each walk only ({d['walks']} walks)", d["last_page_ms"])]
    if key == "export":
        return [
            row("... export: response head", d["head_ms"]),
            row("... export: first data row (after a first page of 500)", d["first_row_ms"], True),
        ]
    if key == "overview_shared":
        rows = [f"| ... of its {d['ms']['n']} timed answers in {d['seconds']} s, "
                f"{d['fresh_answers']} made for the request | | | | | | | |"]  # fmt: skip
        if "shared_only_ms" in d:
            rows.append(row(f"... the other {d['shared_only_ms']['n']}, the shared answer only",
                            d["shared_only_ms"]))  # fmt: skip
        return rows
    if key == "overview_5calls":
        slowest = d.get("slowest_part", {})
        return [
            row(f"... overview part `{name}` (in parallel; the last in {slowest.get(name, 0)})", ms)
            for name, ms in d["parts_ms"].items()
        ]
    return []


def profile_text(res: dict[str, Any]) -> str:
    parts = []
    for key, d in res["measure"].items():
        prof = d.get("profile") if isinstance(d, dict) and key in dict(CASES) else None
        if not prof or "error" in prof:
            continue
        inclusive = prof["inclusive_pct_top_functions"]
        # Frames above the route handler (uvicorn, litestar's router) are in every sample.
        trunk = max(
            (v for k, v in inclusive if k.startswith("HTTPRoute._call_handler")), default=100
        )
        below = [(k, v) for k, v in inclusive if v <= trunk][:25]
        parts += [
            "",
            f"Profile of the API during `{key}`: {prof['samples']} CPU samples of its main "
            f"thread ({prof['file']})",
            "",
            "| package (self time) | % |",
            "|---|---:|",
            *[f"| {k} | {v} |" for k, v in prof["self_pct_by_package"]],
            "",
            "| function, self time | % |",
            "|---|---:|",
            *[f"| {k} | {v} |" for k, v in prof["self_pct_top_functions"][:15]],
            "",
            "| function, inclusive (from the route handler down) | % |",
            "|---|---:|",
            *[f"| {k} | {v} |" for k, v in below],
        ]
    return "\n".join(parts[1:])


# ------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="finished tasks to store")
    ap.add_argument("--chunk", type=int, default=1000, help="tasks per execute_many call")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for the fill")
    ap.add_argument("--concurrency", type=int, default=50, help="worker --concurrency")
    ap.add_argument("--requests", type=int, default=200, help="timed requests per case")
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests per case")
    ap.add_argument(
        "--fresh-requests",
        type=int,
        default=30,
        help=f"timed requests of overview_fresh at most (each after {FRESH_PAUSE_S} s idle)",
    )
    ap.add_argument("--hops", type=int, default=50, help="nextCursor hops per cursor walk")
    ap.add_argument("--id-prefix", type=int, default=12, help="chars of the id searched for")
    ap.add_argument(
        "--cases",
        default="all",
        help="cases to measure, comma-separated: names of CASES or the groups "
        f"{', '.join(CASE_GROUPS)} (dashboard: {', '.join(DASHBOARD_CASES)})",
    )
    ap.add_argument(
        "--active",
        type=int,
        default=100,
        help="tasks one worker holds active during the dashboard cases (0: no worker)",
    )
    ap.add_argument(
        "--auth",
        action="store_true",
        help="the API runs with API_KEYS (one admin key) and every request sends it",
    )
    ap.add_argument("--profile", choices=("missed", "all", "none"), default="missed")
    ap.add_argument("--snapshot", type=Path, default=None, help="RDB file to load/keep the fill")
    ap.add_argument(
        "--redis-config",
        default="",
        help='more redis-server options: --redis-config="--hash-max-listpack-value 512"',
    )
    ap.add_argument("--snapshot-every", type=float, default=300.0, help="s between BGSAVEs")
    ap.add_argument("--progress-s", type=float, default=15.0, help="s between progress lines")
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of API and workers")
    ap.add_argument(
        "--gc-log",
        action="store_true",
        help="log the API's GC passes (bench/gc_probe) and count them per case",
    )
    ap.add_argument(
        "--gc-freeze",
        action="store_true",
        help="experiment: gc.freeze() in the API 3 s after start (implies --gc-log)",
    )
    ap.add_argument(
        "--no-memory-breakdown",
        dest="memory_breakdown",
        action="store_false",
        help="skip MEMORY USAGE of every key (about 20 s at 1,000,000 tasks)",
    )
    cfg = ap.parse_args()
    cases: list[str] = []
    for name in (c.strip() for c in cfg.cases.split(",") if c.strip()):
        if name not in CASE_GROUPS and name not in dict(CASES):
            ap.error(f"--cases: no case or group {name!r}")
        cases += CASE_GROUPS.get(name, [name])
    cfg.cases = cases
    if cfg.snapshot is not None:
        cfg.snapshot = cfg.snapshot.resolve()
    return cfg


def run(cfg: argparse.Namespace, workdir: Path, logs: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    src_at_start = src_fingerprint()
    red = OwnRedis(workdir, logs, cfg.snapshot, cfg.redis_config.split())
    try:
        print(f"redis-server on port {red.port}" + (" (snapshot loaded)" if red.loaded else ""))
        filled = fill(cfg, red, workdir, logs)
        counts = red.counts()
        n = sum(counts.values())
        baseline = int(filled["meta"]["baseline_used_memory"])
        used = red.used_memory()
        memory = {
            "baseline": baseline,
            "after_enqueue": filled.get("used_memory_after_enqueue")
            or int(filled["meta"].get("used_memory_after_enqueue", 0)),
            "filled": used,
            "per_task": (used - baseline) / max(1, n),
            "tasks": n,
            "counts": {k: v for k, v in counts.items() if v},
            "keys": red.r.dbsize(),
            "sample_task": sample_task(red.r),
        }
        if cfg.memory_breakdown:
            memory["breakdown"] = memory_breakdown(red.r)
        print(f"  memory: {baseline / 2**20:,.1f} MB empty, {used / 2**20:,.1f} MB with {n:,} "
              f"tasks = {memory['per_task']:,.0f} B/task", flush=True)  # fmt: skip
        measured = measure(cfg, red, workdir, logs)
        server = red.r.info("server")["redis_version"]
    finally:
        red.stop()
    return {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "wall_s": time.perf_counter() - t0,
            "machine": f"{psutil.cpu_count()} CPUs, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.platform()}",
            "python": platform.python_version(),
            "redis_server": server,
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(cfg).items()},
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "src_at_start": src_at_start,
            "src_at_end": src_fingerprint(),
        },
        "fill": filled,
        "memory": memory,
        "measure": measured,
    }


def main() -> int:
    cfg = parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-listing-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conveyor-listing-") as tmp:
        res = run(cfg, Path(tmp), logs)
    md = "\n\n".join(part for part in (tables(res), gc_text(res), profile_text(res)) if part)
    out = RESULTS / f"listing-{stamp}.json"
    out.write_text(json.dumps(res, indent=2))
    out.with_suffix(".md").write_text(md + "\n")
    print(f"\n{md}\n\nwall {res['meta']['wall_s']:.0f} s; JSON: {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
