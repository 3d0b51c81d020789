"""N open dashboards (/admin/queues overview pages) against the API: what they ask of it,
whether they add Redis commands per enqueue, and whether they cost enqueue capacity.

Run with the project's venv (a benchmark, not a test), from the project root:

    .venv/bin/python bench/dashboards_load.py                        # all phases, ~7 min
    .venv/bin/python bench/dashboards_load.py --duration 8 --open-over 3 \\
        --enqueues 3000 --idle 11 --per-call 3 --rounds 1 --seconds 2  # smoke, ~90 s
    .venv/bin/python bench/dashboards_load.py --snapshot bench/results/listing-1m.rdb  # ~8 min

Unless given --api-url, it starts its own `redis-server --port <free> --save ""
--appendonly no` (loading --snapshot if given: bench_listing.py's RDB, never written back)
and one `conveyor api` with API_KEYS set to an admin key (the pages') and a producer key
(the enqueues'), and stops both by PID at the end. No worker runs.

A simulated page does what app.js and overview.js do once the admin key is given: it loads
/admin/queues and its scripts, GET /api/stats (the key check), opens GET /api/events?summary=true
with the key in a header (read as a stream, as fetch does; reconnecting after 0.5 s, doubling up
to 10 s, as watchEvents does) and loads the overview: one GET /api/overview (stats,
workers, running tasks, latest failures, schedules in one answer, which the API makes at
most once a second, MAX_AGE_S, and hands to every caller meanwhile). From then on, as the
page: a `changes` event (at most one a second; or `ready`) asks for the overview again
through ui.js's throttle (one run, then a 1 s pause, then one more run if asked
meanwhile), and each such event also
(re)sets a timer that asks once more 1.2 s after the last event (settle()); every 10 s
(setInterval) it asks through the same throttle. Each page has its own httpx client with up
to 6 connections, as a browser; the N pages open at random moments over --open-over
seconds. Each answer's madeAt tells which answers the API made (a madeAt not seen before)
and how old each was when it arrived (the local clock less madeAt: the API's clock, the
same machine unless --api-url).

Phases (--phases):

- load: N pages for --duration s while --rate enqueues/s (POST /api/tasks, producer key)
  make task events; the pages' requests/s and latency per call, the answers the API made
  for them per second and their age on arrival, the events each page read, and the API's
  CPU and Redis commands/s.
- commands: Redis commands (INFO commandstats) per enqueued task, --enqueues POST
  /api/tasks over --concurrency connections, with no page and with N pages. The pages'
  own calls are time-driven, not per enqueue, and only an answer the API makes costs Redis
  commands (a shared one costs none): a fresh answer's commands are counted alone
  (--per-call GET /api/overview, each after more than MAX_AGE_S with no call), and a
  shared one's (--per-call back to back, all within a second of one fresh answer), before
  and after the run; the pages' calls during the enqueues, split by their madeAt into the
  answers made for them and the shared ones, times those costs are taken off, as is the
  API's own idle rate (its look for due schedules). What is left, per enqueue, is what an
  enqueue costs with N pages open.
- capacity: ../shared/bench/http/capacity.sh (wrk, --connections, --seconds; one round per
  call, with CAPACITY_HEADER carrying the producer key) with no page and with N pages,
  --rounds of each in ABBA order (none, N, N, none, none, N); each round's enqueues/s, and
  Express + BullMQ's in the same call as a yardstick of the machine's speed then.

Prints markdown; writes bench/results/dashboards-<stamp>.json (+ .md) and logs to
bench/results/logs-dashboards-<stamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import platform
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from bench_conveyor import Failed, Proc, free_port, stats
from bench_listing import OwnRedis, conveyor_env, src_fingerprint

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
PAGE_DIR = ROOT / "src" / "interfaces" / "dashboard" / "page"
CAPACITY_SH = ROOT.parent / "shared" / "bench" / "http" / "capacity.sh"
LIVE_S = 1.0  # overview.js LIVE_MS: the throttle's pause between two overview calls
REFRESH_S = 10.0  # overview.js REFRESH_MS: asked for (through the throttle) this often
SHARED_S = 1.0  # overview.js SHARED_MS, overview.py MAX_AGE_S: how long an answer is shared
TRAILING_S = SHARED_S + 0.2  # overview.js settle(): once more, this long after the last event
FRESH_PAUSE_S = SHARED_S + 0.1  # no call for this long: the next answer is made for it
OVERVIEW = "/api/overview"
KINDS = ["overview"]  # the page's calls once it shows the overview
# capacity.sh's body, so that both measures enqueue the same task
BODY = {"taskName": "echo", "payload": {"userId": 123, "template": "welcome"}, "priority": 1}
CHANGES, READY, END, LAGGED = b"event: changes\n", b"event: ready\n", b"event: end\n", b'"lagged"'
KEEP = max(len(p) for p in (CHANGES, READY, END, LAGGED)) - 1  # bytes kept between chunks
IGNORED = ("cmdstat_info", "cmdstat_ping")  # this script's own INFO, the readiness probes


# ------------------------------------------------------------------ what is measured


class Stack:
    """The API and its Redis: started here (API_KEYS: an admin and a producer key), or
    given by --api-url, --redis-url and the keys."""

    def __init__(self, cfg: argparse.Namespace, workdir: Path, logs: Path) -> None:
        self.api: Proc | None = None
        self.red: OwnRedis | None = None
        self.logs = logs
        if cfg.api_url:
            self.base = cfg.api_url.rstrip("/")
            self.admin_key, self.producer_key = cfg.admin_key, cfg.producer_key
            self.r = (
                redis.Redis.from_url(cfg.redis_url, decode_responses=True)
                if cfg.redis_url
                else None
            )
            self.bullmq_redis_url = cfg.bullmq_redis_url
            return
        self.red = OwnRedis(workdir, logs, cfg.snapshot, [])
        self.r = self.red.r
        self.bullmq_redis_url = cfg.bullmq_redis_url or f"redis://127.0.0.1:{self.red.port}/1"
        self.admin_key, self.producer_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        env = conveyor_env(self.red.url, workdir, cfg.log_level)
        env["API_KEYS"] = (
            f"dash-admin:{self.admin_key}:admin,bench-producer:{self.producer_key}:producer"
        )
        env["MAX_EVENT_STREAMS"] = str(max(100, 2 * cfg.dashboards + 10))
        port = free_port()
        argv = [str(BIN / "conveyor"), "api", "--host", "127.0.0.1", "--port", str(port)]
        self.api = Proc(argv, env, logs / "api.log").start()
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.perf_counter() + 60
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/ready", timeout=1).status_code == 200:
                    break
            self.api.check_alive()
            if time.perf_counter() > deadline:
                raise Failed("the API did not become ready")
            time.sleep(0.1)

    def commandstats(self) -> dict[str, tuple[int, int]]:
        if self.r is None:
            return {}
        raw = self.r.info("commandstats")
        return {k: (int(v["calls"]), int(v["usec"])) for k, v in raw.items()}

    def api_cpu_s(self) -> float | None:
        return self.api.cpu_s() if self.api is not None else None

    def close(self) -> None:
        if self.api is not None:
            self.api.stop()
        if self.red is not None:
            self.red.stop()


def delta(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> Counter[str]:
    """Commands per name between two INFO commandstats (usec under `<name>:usec`)."""
    out: Counter[str] = Counter()
    for name, (c1, u1) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if c1 > c0 and name not in IGNORED:
            out[name.removeprefix("cmdstat_")] += c1 - c0
            out[f"{name.removeprefix('cmdstat_')}:usec"] += u1 - u0
    return out


def commands(counter: Counter[str] | dict[str, float]) -> float:
    return sum(v for k, v in counter.items() if not k.endswith(":usec"))


def usec(counter: Counter[str] | dict[str, float]) -> float:
    return sum(v for k, v in counter.items() if k.endswith(":usec"))


def scaled(counter: Counter[str] | dict[str, float], factor: float) -> dict[str, float]:
    return {k: v * factor for k, v in counter.items()}


def minus(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) - b.get(k, 0.0) for k in set(a) | set(b)}


def by_command(counter: dict[str, float], per: float, digits: int = 2) -> dict[str, float]:
    """Commands per `per`, largest first, names only (no usec), small noise left out."""
    rows = {k: round(v / per, digits) for k, v in counter.items() if not k.endswith(":usec")}
    return dict(sorted(((k, v) for k, v in rows.items() if abs(v) >= 10**-digits),
                       key=lambda kv: -abs(kv[1])))  # fmt: skip


# ------------------------------------------------------------------ the pages


class Throttle:
    """ui.js's throttle: a call runs `fn` at once if it is idle; calls while it runs or
    during the `wait` after it make one more run after that wait."""

    def __init__(self, fn: Callable[[], Awaitable[None]], wait: float) -> None:
        self.fn, self.wait = fn, wait
        self.task: asyncio.Task[None] | None = None
        self.again = False

    def __call__(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run())
        else:
            self.again = True

    async def _run(self) -> None:
        try:
            while True:
                self.again = False
                with suppress(PageError):
                    await self.fn()
                await asyncio.sleep(self.wait)
                if not self.again:
                    return
        finally:
            self.task = None


class PageError(Exception):
    pass


class Fleet:
    """N open overview pages in this process's event loop and a record of what they did:
    every call (answered at, kind, ms, HTTP status, and for an overview its madeAt in ms
    and its age when it arrived, ms), and counters of the event streams (events, bytes,
    streams opened, `end` events, reconnects)."""

    def __init__(self, base: str, key: str, n: int, open_over: float, seed: int = 5) -> None:
        self.base, self.key, self.n, self.open_over = base, key, n, open_over
        self.rng = random.Random(seed)
        self.calls: list[tuple[float, str, float, int, int | None, float | None]] = []
        self.counters: Counter[str] = Counter()
        self.assets = sorted(p.name for p in PAGE_DIR.glob("*") if p.suffix in (".js", ".css"))
        self.pages: list[Page] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.lags: list[tuple[float, float]] = []  # (t, ms this loop woke up late)

    async def start(self) -> None:
        self.pages = [Page(self) for _ in range(self.n)]
        for page in self.pages:
            delay = self.rng.uniform(0, self.open_over)
            self.tasks.append(asyncio.create_task(page.run(delay)))
        self.tasks.append(asyncio.create_task(self._lag()))

    async def _lag(self) -> None:
        """How late this process's event loop wakes up (every 20 ms): the pages' latencies
        include that much of their own client's queueing when they all reload at once."""
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.02)
            t1 = time.perf_counter()
            self.lags.append((t1, max(0.0, (t1 - t0 - 0.02) * 1000)))

    async def wait_open(self, limit_s: float = 120.0) -> None:
        """Until every page shows its overview (its first load done)."""
        deadline = time.perf_counter() + limit_s
        while not all(page.opened for page in self.pages):
            for task in self.tasks:
                if task.done() and task.exception() is not None:
                    raise Failed(f"a page failed to open: {task.exception()!r}")
            if time.perf_counter() > deadline:
                opened = sum(page.opened for page in self.pages)
                raise Failed(f"{opened} of {self.n} pages opened in {limit_s:.0f} s")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for page in self.pages:
            page.stop()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(page.http.aclose() for page in self.pages))

    def mark(self) -> dict[str, Any]:
        return {"t": time.perf_counter(), "counters": Counter(self.counters),
                "cpu": _own_cpu_s(), "wall_ms": time.time() * 1000}  # fmt: skip

    def calls_since(self, mark: dict[str, Any], until: float | None = None) -> Counter[str]:
        """The calls answered since `mark` by kind, the overview's split in two: those
        whose answer the API made for them (`overview_fresh`: one per madeAt not seen
        before, made since the mark; the callers that waited for that same answer count
        as shared) and those that got an answer already made (`overview_shared`, also
        one made before the mark); `overview_failed`: not 200."""
        until = until or time.perf_counter()
        calls = [c for c in self.calls if mark["t"] <= c[0] <= until]
        out = Counter(c[1] for c in calls if c[1] != "overview")
        made = [c[4] for c in calls if c[1] == "overview" and c[3] == 200]
        fresh = len({at for at in made if (at or 0) >= mark["wall_ms"]})
        out["overview_fresh"] = fresh
        out["overview_shared"] = len(made) - fresh
        out["overview_failed"] = sum(1 for c in calls if c[1] == "overview" and c[3] != 200)
        return +out

    def since(self, mark: dict[str, Any]) -> dict[str, Any]:
        """What the pages did since `mark`: requests/s and latency per kind of call, the
        answers the API made for them and their age on arrival, the event streams, this
        process's CPU."""
        now = time.perf_counter()
        seconds = now - mark["t"]
        calls = [c for c in self.calls if mark["t"] <= c[0] <= now]
        kinds: dict[str, Any] = {}
        for kind in [*KINDS, "admit", "open"]:
            mine = [c for c in calls if c[1] == kind]
            if mine:
                kinds[kind] = {
                    "n": len(mine),
                    "per_s": len(mine) / seconds,
                    "ms": stats([c[2] for c in mine]),
                    "not_200": sum(1 for c in mine if c[3] != 200),
                }
        steady = [c for c in calls if c[1] in KINDS]
        answered = [c for c in steady if c[3] == 200]
        made = len({c[4] for c in answered if (c[4] or 0) >= mark["wall_ms"]})
        answers = {
            "made": made,
            "made_per_s": made / seconds,
            "calls_per_answer": len(answered) / made if made else None,
            "age_ms": stats([c[5] for c in answered if c[5] is not None]) if answered else None,
        }
        counters = self.counters - mark["counters"]
        return {
            "seconds": seconds,
            "pages": self.n,
            "requests": len(steady),
            "requests_per_s": len(steady) / seconds,
            "not_200": sum(1 for c in steady if c[3] != 200),
            "ms_all": stats([c[2] for c in steady]) if steady else None,
            "by_kind": kinds,
            "answers": answers,
            "events_per_page_per_s": counters["events"] / seconds / self.n,
            "stream_bytes_per_s": counters["bytes"] / seconds,
            "streams": {k: v for k, v in counters.items() if k not in ("events", "bytes")},
            "client_cpu_pct": 100 * (_own_cpu_s() - mark["cpu"]) / seconds,
            "client_loop_lag_ms": stats([v for t, v in self.lags if mark["t"] <= t <= now] or [0]),
        }


class Page:
    """One overview page, as app.js, api.js, ui.js and overview.js behave."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        limits = httpx.Limits(max_connections=6, max_keepalive_connections=6)  # a browser's
        self.http = httpx.AsyncClient(
            base_url=fleet.base,
            headers={"X-API-Key": fleet.key, "Accept": "application/json"},
            limits=limits,
            timeout=httpx.Timeout(30.0),
        )
        self.opened = False
        self.soon = Throttle(self.overview, LIVE_S)  # overview.js soon()
        self.last: asyncio.TimerHandle | None = None  # overview.js settle()'s timer
        self.spawned: set[asyncio.Task[Any]] = set()

    async def run(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.open()
        self.spawn(self.events())  # watchEvents, before the view (app.js open())
        await self.overview()  # overviewView's first reload(), not throttled
        self.opened = True  # the view is shown: events reach it from now on
        start = time.perf_counter()
        for k in itertools.count(1):  # setInterval(soon, REFRESH_MS)
            await asyncio.sleep(max(0.0, start + k * REFRESH_S - time.perf_counter()))
            self.soon()

    def settle(self) -> None:
        """overview.js settle(): ask now (throttled), and once more TRAILING_S after the
        last event, late enough for a shared answer made after it."""
        self.soon()
        if self.last is not None:
            self.last.cancel()
        self.last = asyncio.get_running_loop().call_later(TRAILING_S, self.soon)

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.spawned.add(task)
        task.add_done_callback(self.spawned.discard)

    def stop(self) -> None:
        for task in list(self.spawned):
            task.cancel()
        if self.last is not None:
            self.last.cancel()
        if self.soon.task is not None:
            self.soon.task.cancel()

    async def open(self) -> None:
        """The page and its scripts (a browser fetches the modules at once), then the
        key check (app.js admitted(): GET /api/stats)."""
        await self.get("open", "/admin/queues", parse=False)
        assets = [f"/admin/queues/assets/{name}" for name in self.fleet.assets]
        await asyncio.gather(*(self.get("open", path, parse=False) for path in assets))
        await self.get("admit", "/api/stats")

    async def get(self, kind: str, path: str, parse: bool = True) -> Any:
        t0 = time.perf_counter()
        body = None
        made = age = None
        try:
            response = await self.http.get(path)
            status = response.status_code
            if parse and status == 200:
                body = response.json()
                if kind == "overview":
                    made = made_ms(body["madeAt"])
                    age = time.time() * 1000 - made
        except httpx.HTTPError:
            status = 0
        t1 = time.perf_counter()
        self.fleet.calls.append((t1, kind, (t1 - t0) * 1000, status, made, age))
        if status != 200:
            raise PageError(f"{path}: {status}")
        return body

    async def overview(self) -> None:
        """overview.js reload(): GET /api/overview, the whole overview in one answer."""
        await self.get("overview", OVERVIEW)

    async def events(self) -> None:
        """api.js watchEvents: GET /api/events?summary=true read as a stream; a `changes`
        (at most one a second) or `ready` event reloads the counts (throttled); the stream
        is opened again 0.5 s after it ends, the pause doubling up to 10 s until a `ready`
        (a 401/403 ends it for good)."""
        counters = self.fleet.counters
        pause = 0.5
        first = True
        while True:
            if not first:
                counters["reconnects"] += 1
            first = False
            try:
                async with self.http.stream(
                    "GET",
                    "/api/events?summary=true",
                    headers={"Accept": "text/event-stream"},
                    timeout=httpx.Timeout(30.0, read=None),
                ) as response:
                    if response.status_code in (401, 403):
                        counters[f"stream_refused_{response.status_code}"] += 1
                        return
                    if response.status_code != 200:
                        counters[f"stream_http_{response.status_code}"] += 1
                        raise PageError(str(response.status_code))
                    counters["streams_opened"] += 1
                    tail = b""
                    async for chunk in response.aiter_raw():
                        data = tail + chunk
                        changes, readies = data.count(CHANGES), data.count(READY)
                        counters["events"] += changes
                        counters["bytes"] += len(chunk)
                        if readies:
                            pause = 0.5
                        if data.count(END):
                            counters["ended"] += data.count(END)
                            counters["ended_lagged"] += data.count(LAGGED)
                        if (changes or readies) and self.opened:
                            self.settle()
                        tail = data[-KEEP:]
            except (httpx.HTTPError, PageError):
                counters["stream_errors"] += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)


def made_ms(iso: str) -> int:
    """An answer's madeAt (ISO 8601, UTC, to the millisecond) in ms since the epoch."""
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1000)


def _own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


class RemoteFleet:
    """The pages in a process of their own (this script, --pages-child), apart from the
    producer and from this harness, as browsers are; with --pages-nice, at a lower
    priority. Asked over its stdin/stdout, one JSON line each way; a mark is its own."""

    def __init__(self, cfg: argparse.Namespace, stack: Stack, seed: int) -> None:
        self.spec = {"base": stack.base, "n": cfg.dashboards, "open_over": cfg.open_over,
                     "seed": seed}  # fmt: skip
        self.nice, self.key = cfg.pages_nice, stack.admin_key
        self.log = stack.logs / f"pages-{seed}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = dict(os.environ, DASHBOARDS_ADMIN_KEY=self.key)  # not in argv: ps shows that
        nice = self.nice
        with self.log.open("a") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "dashboards_load.py"), "--pages-child",
                json.dumps(self.spec), env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )  # fmt: skip

    async def ask(self, op: str, **args: Any) -> Any:
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise Failed(f"the pages' process exited ({self.proc.returncode}); see {self.log}")
        reply = json.loads(line)
        if "error" in reply:
            raise Failed(f"pages: {reply['error']}")
        return reply["value"]

    async def wait_open(self) -> None:
        await self.ask("wait_open")

    async def mark(self) -> int:
        return int(await self.ask("mark"))

    async def since(self, mark: int) -> dict[str, Any]:
        return dict(await self.ask("since", mark=mark))

    async def calls_since(self, mark: int) -> Counter[str]:
        return Counter(await self.ask("calls_since", mark=mark))

    async def close(self) -> None:
        if self.proc is None:
            return
        with suppress(Failed, ConnectionError):
            await self.ask("close")
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()  # our own child, by its PID
            await self.proc.wait()


async def open_pages(cfg: argparse.Namespace, stack: Stack, seed: int = 5) -> RemoteFleet:
    """N pages, opened (over --open-over s) and showing their overview, plus 1 s."""
    fleet = RemoteFleet(cfg, stack, seed)
    await fleet.start()
    try:
        await fleet.wait_open()
    except BaseException:
        await fleet.close()
        raise
    await asyncio.sleep(1.0)
    return fleet


async def pages_child(spec: dict[str, Any]) -> None:
    """--pages-child: run a Fleet; answer the parent's questions until it says close (or
    its pipe closes)."""
    fleet = Fleet(spec["base"], os.environ["DASHBOARDS_ADMIN_KEY"], spec["n"],
                  spec["open_over"], spec["seed"])  # fmt: skip
    await fleet.start()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    marks: list[dict[str, Any]] = []
    try:
        while line := await reader.readline():
            msg = json.loads(line)
            reply: dict[str, Any]
            try:
                if msg["op"] == "wait_open":
                    await fleet.wait_open()
                    reply = {"value": True}
                elif msg["op"] == "mark":
                    marks.append(fleet.mark())
                    reply = {"value": len(marks) - 1}
                elif msg["op"] == "since":
                    reply = {"value": fleet.since(marks[msg["mark"]])}
                elif msg["op"] == "calls_since":
                    reply = {"value": dict(fleet.calls_since(marks[msg["mark"]]))}
                else:
                    reply = {"value": "closing"}
            except Failed as exc:
                reply = {"error": str(exc)}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            if msg["op"] == "close":
                break
    finally:
        await fleet.close()


# ------------------------------------------------------------------ enqueues


async def enqueue(
    base: str, key: str, *, total: int | None = None, rate: float | None = None,
    seconds: float | None = None, concurrency: int = 16,
) -> dict[str, Any]:  # fmt: skip
    """POST /api/tasks (capacity.sh's body, the producer key): `total` over `concurrency`
    connections as fast as they go, or `rate`/s for `seconds` over one connection."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    async with httpx.AsyncClient(
        base_url=base, headers={"X-API-Key": key}, limits=limits, timeout=30.0
    ) as http:

        async def one() -> None:
            t0 = time.perf_counter()
            try:
                response = await http.post("/api/tasks", json=BODY)
                if not 200 <= response.status_code < 300:
                    failures[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        if total is not None:
            left = total

            async def lane() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await one()

            await asyncio.gather(*(lane() for _ in range(concurrency)))
        else:
            assert rate is not None
            assert seconds is not None
            n = int(rate * seconds)
            for i in range(n):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                await one()
        took = time.perf_counter() - t0
    return {
        "n": len(latencies),
        "seconds": took,
        "per_s": len(latencies) / took,
        "ms": stats(latencies),
        "failures": dict(failures),
    }


# ------------------------------------------------------------------ phases


async def phase_load(cfg: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    """The same enqueue trickle without pages, then with N pages open."""

    async def trickle() -> dict[str, Any]:
        t0, cpu0, cmd0 = time.perf_counter(), stack.api_cpu_s(), stack.commandstats()
        done = await enqueue(
            stack.base, stack.producer_key, rate=cfg.rate, seconds=cfg.duration, concurrency=1
        )
        seconds = time.perf_counter() - t0
        cpu1, cmd1 = stack.api_cpu_s(), stack.commandstats()
        out: dict[str, Any] = {"enqueue": done}
        if cpu0 is not None and cpu1 is not None:
            out["api_cpu_pct"] = 100 * (cpu1 - cpu0) / seconds
        if cmd0:
            out["redis_cmds_per_s"] = commands(delta(cmd0, cmd1)) / seconds
        return out

    alone = await trickle()
    fleet = await open_pages(cfg, stack)
    try:
        mark = await fleet.mark()
        with_pages = await trickle()
        with_pages["pages"] = await fleet.since(mark)
    finally:
        await fleet.close()
    return {"no_pages": alone, **with_pages}


async def per_call_costs(stack: Stack, n: int, base_rate: dict[str, float]) -> dict[str, Any]:
    """Redis commands (and usec) of each kind of call, alone, less the API's idle rate over
    the time the calls took: `stats` (the key check) `n` back to back; `overview_fresh`:
    `n` GET /api/overview, each after FRESH_PAUSE_S with no call (its answer made for it:
    a new madeAt, no older than the request; only the request itself is counted);
    `overview_shared`: after one such fresh answer, `n` more back to back, all of which
    must get that same answer (a cached answer reads nothing from Redis)."""
    costs: dict[str, Any] = {}
    async with httpx.AsyncClient(
        base_url=stack.base, headers={"X-API-Key": stack.admin_key}, timeout=30.0
    ) as http:

        async def get(path: str) -> Any:
            response = await http.get(path)
            if response.status_code != 200:
                raise Failed(f"GET {path}: {response.status_code}")
            return response.json()

        async def fresh() -> int:
            """GET /api/overview after FRESH_PAUSE_S of no call: its answer's madeAt, which
            must be no older than the call (made for it)."""
            sent = time.time() * 1000
            made = made_ms((await get(OVERVIEW))["madeAt"])
            if made < sent - 5:
                raise Failed(
                    f"{OVERVIEW} after {FRESH_PAUSE_S} s idle: an answer made "
                    f"{sent - made:.0f} ms earlier (is MAX_AGE_S still {SHARED_S}?)"
                )
            return made

        for _ in range(3):
            await get("/api/stats")
        before, t0 = stack.commandstats(), time.perf_counter()
        for _ in range(n):
            await get("/api/stats")
        took = time.perf_counter() - t0
        spent = minus(dict(delta(before, stack.commandstats())), scaled(base_rate, took))
        costs["stats"] = scaled(spent, 1 / n)

        await asyncio.sleep(FRESH_PAUSE_S)
        await fresh()  # warm-up
        total: dict[str, float] = {}
        for _ in range(n):
            await asyncio.sleep(FRESH_PAUSE_S)
            before, t0 = stack.commandstats(), time.perf_counter()
            await fresh()
            took = time.perf_counter() - t0
            spent = minus(dict(delta(before, stack.commandstats())), scaled(base_rate, took))
            total = {k: total.get(k, 0.0) + spent.get(k, 0.0) for k in set(total) | set(spent)}
        costs["overview_fresh"] = scaled(total, 1 / n)

        for _ in range(3):  # all n within the second one answer is shared; else again
            await asyncio.sleep(FRESH_PAUSE_S)
            made = await fresh()
            before, t0 = stack.commandstats(), time.perf_counter()
            answers = [made_ms((await get(OVERVIEW))["madeAt"]) for _ in range(n)]
            took = time.perf_counter() - t0
            spent = minus(dict(delta(before, stack.commandstats())), scaled(base_rate, took))
            if all(at == made for at in answers):
                costs["overview_shared"] = scaled(spent, 1 / n)
                break
        else:
            raise Failed(f"{n} calls of {OVERVIEW} back to back did not all get one answer")
    return costs


def expected_cost(calls: Counter[str], costs: dict[str, dict[str, float]]) -> dict[str, float]:
    """What `calls` (by kind: see Fleet.calls_since) cost Redis, from the per-call costs
    (`admit` is a stats; `open`, the page and its scripts, and `overview_failed` none)."""
    total: dict[str, float] = {}
    for kind, count in calls.items():
        cost = costs.get("stats" if kind == "admit" else kind, {})
        for name, value in cost.items():
            total[name] = total.get(name, 0.0) + value * count
    return total


async def phase_commands(cfg: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    if stack.r is None:
        raise Failed("the commands phase needs the API's Redis: give --redis-url")
    # The API alone, idle: what it sends by itself (its look for due schedules).
    before = stack.commandstats()
    await asyncio.sleep(cfg.baseline)
    base_rate = scaled(delta(before, stack.commandstats()), 1 / cfg.baseline)

    async def enqueues(fleet: RemoteFleet | None) -> dict[str, Any]:
        mark = await fleet.mark() if fleet else None
        c0 = stack.commandstats()
        done = await enqueue(
            stack.base, stack.producer_key, total=cfg.enqueues, concurrency=cfg.concurrency
        )
        spent = minus(dict(delta(c0, stack.commandstats())), scaled(base_rate, done["seconds"]))
        out: dict[str, Any] = {"enqueue": done}
        if fleet and mark is not None:
            calls = await fleet.calls_since(mark)
            theirs = expected_cost(calls, costs)
            spent = minus(spent, theirs)
            out["pages_calls"] = dict(calls)
            out["pages_calls_per_s"] = sum(calls.values()) / done["seconds"]
            out["pages_cmds_per_s"] = commands(theirs) / done["seconds"]
            out["pages_usec_per_s"] = usec(theirs) / done["seconds"]
            out["pages"] = await fleet.since(mark)
        n = done["n"]
        out["cmds_per_enqueue"] = commands(spent) / n
        out["usec_per_enqueue"] = usec(spent) / n
        out["by_command"] = by_command(spent, n)
        return out

    none = await enqueues(None)
    costs = await per_call_costs(stack, cfg.per_call, base_rate)
    fleet = await open_pages(cfg, stack)
    try:
        # The pages alone, no task event: only their 10 s refreshes (and settle()'s call
        # after their stream's `ready`, if that came after they opened).
        mark, c0 = await fleet.mark(), stack.commandstats()
        t0 = time.perf_counter()
        await asyncio.sleep(cfg.idle)
        took = time.perf_counter() - t0
        spent = minus(dict(delta(c0, stack.commandstats())), scaled(base_rate, took))
        calls = await fleet.calls_since(mark)
        theirs = expected_cost(calls, costs)
        idle = {
            "seconds": took,
            "pages_calls": dict(calls),
            "pages_calls_per_s": sum(calls.values()) / took,
            "measured_cmds_per_s": commands(spent) / took,
            "expected_cmds_per_s": commands(theirs) / took,
            "by_command_per_s": by_command(spent, took, 1),
        }
        with_pages = await enqueues(fleet)
    finally:
        await fleet.close()
    costs_after = await per_call_costs(stack, cfg.per_call, base_rate)
    per_call = {k: round(commands(v), 2) for k, v in costs.items()}
    return {
        "api_idle_cmds_per_s": by_command(base_rate, 1, 2),
        "per_call_cmds": per_call,
        "per_call_cmds_after": {k: round(commands(v), 2) for k, v in costs_after.items()},
        "per_call_usec": {k: round(usec(v), 1) for k, v in costs.items()},
        "none": none,
        "pages": with_pages,
        "pages_idle": idle,
        # ui.js's throttle: each page at most one call per LIVE_S, whatever the events; the
        # API makes at most one answer per SHARED_S, whatever the callers.
        "pages_bound_calls_per_s": cfg.dashboards / LIVE_S,
        "pages_bound_cmds_per_s": per_call["overview_fresh"] / SHARED_S
        + cfg.dashboards * per_call["overview_shared"] / LIVE_S,
    }


def abba(rounds: int) -> list[str]:
    pairs = [("none", "pages"), ("pages", "none")]
    return [cond for i in range(rounds) for cond in pairs[i % 2]]


_CAPACITY = re.compile(
    r"yours (?P<ours>[\d.]+) req/s(?:, (?P<ours_bad>\d+) non-2xx)? \| "
    r"express\+bullmq (?P<bull>[\d.]+) req/s(?:, (?P<bull_bad>\d+) non-2xx)?"
)


async def phase_capacity(cfg: argparse.Namespace, stack: Stack, logs: Path) -> dict[str, Any]:
    if not cfg.capacity_sh.exists():
        raise Failed(f"no {cfg.capacity_sh}")
    if not stack.bullmq_redis_url:
        raise Failed("capacity.sh needs a Redis for Express + BullMQ: give --bullmq-redis-url")
    rounds = []
    for number, cond in enumerate(abba(cfg.rounds), 1):
        rounds.append(await capacity_round(cfg, stack, logs, number, cond))
        await asyncio.sleep(cfg.pause)
    out: dict[str, Any] = {"order": abba(cfg.rounds), "rounds": rounds}
    for cond in ("none", "pages"):
        ok = [r for r in rounds if r["condition"] == cond and "ours_per_s" in r]
        if ok:
            out[cond] = {
                "median_per_s": statistics.median(r["ours_per_s"] for r in ok),
                "min_per_s": min(r["ours_per_s"] for r in ok),
                "max_per_s": max(r["ours_per_s"] for r in ok),
                "median_ratio_to_bullmq": statistics.median(r["ratio_to_bullmq"] for r in ok),
            }
    if "none" in out and "pages" in out:
        out["pages_vs_none"] = out["pages"]["median_per_s"] / out["none"]["median_per_s"]
    return out


async def capacity_round(
    cfg: argparse.Namespace, stack: Stack, logs: Path, number: int, cond: str
) -> dict[str, Any]:
    """One call of capacity.sh (one round: ours, then Express + BullMQ), with the pages
    open throughout when `cond` is "pages" (opened, and shown, before it starts)."""
    env = dict(os.environ, CAPACITY_HEADER=f"X-API-Key: {stack.producer_key}")
    argv = ["bash", str(cfg.capacity_sh), f"{stack.base}/api/tasks", stack.bullmq_redis_url]
    argv += ["1", str(cfg.seconds), str(cfg.connections)]
    fleet = await open_pages(cfg, stack, seed=number) if cond == "pages" else None
    try:
        mark = await fleet.mark() if fleet else None
        cpu0 = stack.api_cpu_s()
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        cpu1 = stack.api_cpu_s()
        pages = await fleet.since(mark) if fleet and mark is not None else None
    finally:
        if fleet:
            await fleet.close()
    text = out.decode().strip()
    (logs / f"capacity-{number}.log").write_text(text + "\n" + err.decode())
    row: dict[str, Any] = {"round": number, "condition": cond, "output": text}
    match = _CAPACITY.search(text)
    if proc.returncode != 0 or match is None:
        row["error"] = f"capacity.sh exit {proc.returncode}: {(text + err.decode())[-400:]}"
    else:
        row["ours_per_s"] = float(match["ours"])
        row["bullmq_per_s"] = float(match["bull"])
        row["ours_non_2xx"] = int(match["ours_bad"] or 0)
        row["ratio_to_bullmq"] = row["ours_per_s"] / row["bullmq_per_s"]
    if cpu0 is not None and cpu1 is not None:
        row["api_cpu_s"] = cpu1 - cpu0
    if pages:
        row["pages"] = pages
    print(f"  [capacity] round {number} ({cond}): {text or row.get('error')}", flush=True)
    return row


# ------------------------------------------------------------------ report


def _ms(d: dict[str, float] | None) -> str:
    return "n/a" if not d else f"{d['p50']:.1f} / {d['p99']:.1f} / {d['max']:.1f}"


def pages_table(p: dict[str, Any]) -> list[str]:
    lines = [
        "| call | n | per s | p50 / p99 / max ms | not 200 |",
        "|---|---:|---:|---|---:|",
    ]
    for kind, d in p["by_kind"].items():
        lines.append(f"| {kind} | {d['n']} | {d['per_s']:.2f} | {_ms(d['ms'])} | {d['not_200']} |")
    a = p["answers"]
    if a["made"]:
        lines += [
            f"| ... answers the API made for them (a new madeAt), "
            f"{a['calls_per_answer']:.1f} calls each | {a['made']} | {a['made_per_s']:.2f} | | |",
            f"| ... an answer's age when it arrived (now less its madeAt) | {a['age_ms']['n']} "
            f"| | {_ms(a['age_ms'])} | |",
        ]
    lines += [
        "",
        f"{p['pages']} pages over {p['seconds']:.1f} s: {p['requests']} overview calls = "
        f"{p['requests_per_s']:.1f}/s (p50 / p99 / max {_ms(p['ms_all'])} ms, "
        f"{p['not_200']} not 200); {p['events_per_page_per_s']:.1f} `changes` events/s read by "
        f"each page ({p['stream_bytes_per_s'] / 1024:.0f} KiB/s over all streams); streams: "
        f"{p['streams'] or 'no reconnect'}; this process (the pages' client) "
        f"{p['client_cpu_pct']:.0f}% CPU, its event loop late by p50 / p99 / max "
        f"{_ms(p['client_loop_lag_ms'])} ms (part of the latencies above is that).",
    ]
    return lines


def capacity_row(r: dict[str, Any], n: int) -> str:
    if "error" in r:
        return f"| {r['round']} | {r['condition']} | ERROR: {r['error']} | | | | | | | |"
    bad = f" ({r['ours_non_2xx']} non-2xx)" if r["ours_non_2xx"] else ""
    head = (
        f"| {r['round']} | {n if r['condition'] == 'pages' else 0} | {r['ours_per_s']:,.0f}{bad} "
        f"| {r['bullmq_per_s']:,.0f} | {r['ratio_to_bullmq']:.2f} | "
        f"{r.get('api_cpu_s', float('nan')):.1f} |"
    )
    p = r.get("pages")
    if not p:
        return head + " | | | |"
    streams = p["streams"]
    return head + (
        f" {p['requests_per_s']:.1f} | {(p['ms_all'] or {}).get('p99', float('nan')):.1f} | "
        f"{p['events_per_page_per_s']:,.1f} | {streams.get('ended', 0)} "
        f"({streams.get('ended_lagged', 0)} lagged) |"
    )


def load_rows(d: dict[str, Any]) -> list[str]:
    """The enqueue trickle and what it cost the API, without and with the pages."""
    rows = ["| the same enqueues | no page | with the pages |", "|---|---:|---:|"]
    for label, key in (
        ("POST /api/tasks", "n"),
        ("... p50 / p99 / max ms", "ms"),
        ("... failures", "failures"),
        ("API CPU %", "api_cpu_pct"),
        ("Redis commands/s", "redis_cmds_per_s"),
    ):
        cells = []
        for x in (d["no_pages"], d):
            e = x["enqueue"]
            if key == "n":
                cells.append(f"{e['n']} at {e['per_s']:.0f}/s")
            elif key == "ms":
                cells.append(_ms(e["ms"]))
            elif key == "failures":
                cells.append(str(e["failures"] or "none"))
            else:
                cells.append(f"{x.get(key, float('nan')):.1f}")
        rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return rows


def report(res: dict[str, Any]) -> str:
    cfg = res["meta"]["config"]
    n = cfg["dashboards"]
    parts: list[str] = []
    if "load" in res:
        d = res["load"]
        parts += [
            f"### load: {n} open overview pages, {cfg['rate']} enqueues/s for {cfg['duration']} s",
            "",
            *pages_table(d["pages"]),
            "",
            *load_rows(d),
        ]  # fmt: skip
    if "commands" in res:
        c = res["commands"]
        none, pages, idle = c["none"], c["pages"], c["pages_idle"]
        names = list(dict.fromkeys([*none["by_command"], *pages["by_command"]]))
        parts += [
            "",
            f"### commands: Redis commands per enqueue, {cfg['enqueues']:,} POST /api/tasks "
            f"over {cfg['concurrency']} connections, no worker",
            "",
            f"| | no page | {n} pages |",
            "|---|---:|---:|",
            f"| enqueues/s (this client) | {none['enqueue']['per_s']:,.0f} | "
            f"{pages['enqueue']['per_s']:,.0f} |",
            f"| **Redis commands per enqueue** | **{none['cmds_per_enqueue']:.3f}** | "
            f"**{pages['cmds_per_enqueue']:.3f}** |",
            *[
                f"| ... {name} | {none['by_command'].get(name, 0):.3f} | "
                f"{pages['by_command'].get(name, 0):.3f} |"
                for name in names
            ],
            f"| Redis usec per enqueue (the pages' calls' usec estimated) | "
            f"{none['usec_per_enqueue']:.1f} | {pages['usec_per_enqueue']:.1f} |",
            f"| the pages' calls meanwhile, taken off | | {sum(pages['pages_calls'].values())} "
            f"({pages['pages_calls_per_s']:.1f}/s) |",
            f"| ... of which answers the API made for them | | "
            f"{pages['pages_calls'].get('overview_fresh', 0)} |",
            f"| their Redis commands/s (answers made x a fresh answer's commands + shared "
            f"answers x a shared one's) | | {pages['pages_cmds_per_s']:.1f} |",
            "",
            f"The API alone, idle: {c['api_idle_cmds_per_s'] or 'no'} commands/s (taken off "
            f"every figure). Each call's Redis commands, alone: {c['per_call_cmds']} (after "
            f"the run: {c['per_call_cmds_after']}); `overview_fresh`: GET /api/overview after "
            f"{FRESH_PAUSE_S} s with no call, `overview_shared`: the answer already made.",
            "",
            f"The pages' own polling is time-driven: {n} pages with no task event (only the "
            f"10 s refresh) made {idle['pages_calls_per_s']:.1f} calls/s, for which the API "
            f"made {idle['pages_calls'].get('overview_fresh', 0) / idle['seconds']:.2f} "
            f"answers/s; {idle['measured_cmds_per_s']:.1f} Redis commands/s measured "
            f"({idle['expected_cmds_per_s']:.1f} expected from their calls). Under enqueues "
            f"{pages['pages_calls_per_s']:.1f} calls/s = {pages['pages_cmds_per_s']:.1f} "
            f"commands/s. At most, whatever the enqueue rate (over more than a few seconds: "
            f"two answers can fall into one): {n} pages x 1 call/s = "
            f"{c['pages_bound_calls_per_s']:.0f} calls/s, of which the API makes one answer "
            f"a second: {c['pages_bound_cmds_per_s']:.1f} commands/s.",
        ]
    if "capacity" in res:
        cap = res["capacity"]
        parts += [
            "",
            f"### capacity: capacity.sh, {cfg['seconds']} s x {cfg['connections']} connections "
            f"per round, ABBA order, {n} pages in the `pages` rounds",
            "",
            "| round | pages | conveyor enqueues/s | Express + BullMQ /s | ratio | API CPU s "
            "| pages' req/s | pages' p99 ms | `changes`/s per page | stream ends |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        parts += [capacity_row(r, n) for r in cap["rounds"]]
        for cond, label in (("none", "no page"), ("pages", f"{n} pages")):
            if cond in cap:
                m = cap[cond]
                parts.append(
                    f"\nMedian with {label}: {m['median_per_s']:,.0f} enqueues/s (rounds "
                    f"{m['min_per_s']:,.0f}-{m['max_per_s']:,.0f}), "
                    f"{m['median_ratio_to_bullmq']:.2f}x Express + BullMQ."
                )
        if "pages_vs_none" in cap:
            parts.append(f"\n{n} pages / no page: {cap['pages_vs_none']:.3f} (API CPU s and the "
                         "pages' figures cover the whole capacity.sh call, BullMQ's part too; "
                         "stream ends: (all, lagged)).")  # fmt: skip
    parts += ["", f"Conveyor measured: {res['meta']['src']}"]
    return "\n".join(parts).strip()


# ------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--phases", default="load,commands,capacity", help="comma-separated")
    ap.add_argument("--dashboards", type=int, default=20, help="open overview pages")
    ap.add_argument("--open-over", type=float, default=10.0, help="s over which pages open")
    ap.add_argument("--duration", type=float, default=30.0, help="load: seconds, each")
    ap.add_argument("--rate", type=float, default=100.0, help="load: enqueues/s meanwhile")
    ap.add_argument("--enqueues", type=int, default=20_000, help="commands: enqueues each")
    ap.add_argument("--concurrency", type=int, default=16, help="commands: enqueue connections")
    ap.add_argument("--idle", type=float, default=12.0, help="commands: s of pages alone")
    ap.add_argument("--baseline", type=float, default=5.0, help="commands: s of the API alone")
    ap.add_argument(
        "--per-call", type=int, default=10, help="commands: calls of each kind alone, before/after"
    )
    ap.add_argument("--rounds", type=int, default=3, help="capacity: rounds of each condition")
    ap.add_argument("--seconds", type=int, default=8, help="capacity: wrk seconds per round")
    ap.add_argument("--connections", type=int, default=16, help="capacity: wrk connections")
    ap.add_argument("--pause", type=float, default=2.0, help="capacity: s between rounds")
    ap.add_argument("--capacity-sh", type=Path, default=CAPACITY_SH)
    ap.add_argument("--snapshot", type=Path, help="an RDB to load (bench_listing.py's)")
    ap.add_argument("--api-url", help="a running API (then also --admin-key, --producer-key)")
    ap.add_argument("--redis-url", help="with --api-url: its Redis (for INFO commandstats)")
    ap.add_argument("--admin-key", help="with --api-url: an admin key")
    ap.add_argument("--producer-key", help="with --api-url: a producer key")
    ap.add_argument("--bullmq-redis-url", help="capacity.sh's Redis for BullMQ (default: db 1)")
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the API")
    ap.add_argument(
        "--pages-nice", type=int, default=0, help="niceness of the pages' process (0: as this)"
    )
    ap.add_argument("--pages-child", help=argparse.SUPPRESS)  # internal: the pages' process
    cfg = ap.parse_args()
    cfg.phases = [p.strip() for p in cfg.phases.split(",") if p.strip()]
    unknown = set(cfg.phases) - {"load", "commands", "capacity"}
    if unknown:
        ap.error(f"--phases: unknown {sorted(unknown)}")
    if cfg.api_url and not (cfg.admin_key and cfg.producer_key):
        ap.error("--api-url needs --admin-key and --producer-key")
    if cfg.snapshot is not None:
        cfg.snapshot = cfg.snapshot.resolve()
        if not cfg.snapshot.exists():
            ap.error(f"--snapshot: no {cfg.snapshot}")
    return cfg


async def run(cfg: argparse.Namespace, stack: Stack, logs: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for phase in cfg.phases:
        print(f"[{phase}]", flush=True)
        try:
            if phase == "load":
                res["load"] = await phase_load(cfg, stack)
            elif phase == "commands":
                res["commands"] = await phase_commands(cfg, stack)
            else:
                res["capacity"] = await phase_capacity(cfg, stack, logs)
        except (Failed, httpx.HTTPError, redis.RedisError) as exc:
            res[f"{phase}_error"] = f"{type(exc).__name__}: {exc}"
            print(f"  ERROR {res[f'{phase}_error']}", flush=True)
    return res


def main() -> int:
    cfg = parse_args()
    if cfg.pages_child:
        asyncio.run(pages_child(json.loads(cfg.pages_child)))
        return 0
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-dashboards-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    src = src_fingerprint()
    with tempfile.TemporaryDirectory(prefix="conveyor-dashboards-") as tmp:
        stack = Stack(cfg, Path(tmp), logs)
        try:
            stored = stack.red.counts() if stack.red else None
            print(f"API {stack.base}" + (f", tasks stored: {stored}" if stored else ""), flush=True)
            res = asyncio.run(run(cfg, stack, logs))
        finally:
            stack.close()
    res["meta"] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - t0,
        "machine": f"{psutil.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.platform()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(cfg).items()},
        "tasks_stored_at_start": stored,
        "src": (
            f"git {src['git_head']} + {src['src_files_changed_vs_head']} files changed under "
            f"src/, src sha256 {src['src_sha256']}"
        ),
    }
    for key in ("admin_key", "producer_key"):  # never written out
        res["meta"]["config"].pop(key, None)
    md = report(res)
    errors = [f"{k}: {v}" for k, v in res.items() if k.endswith("_error")]
    if errors:
        md += "\n\n" + "\n".join(f"ERROR {e}" for e in errors)
    out = RESULTS / f"dashboards-{stamp}.json"
    out.write_text(json.dumps(res, indent=2))
    out.with_suffix(".md").write_text(md + "\n")
    print(f"\n{md}\n\nwall {res['meta']['wall_s']:.0f} s; JSON: {out.relative_to(ROOT)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
