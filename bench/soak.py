"""Soak: steady enqueue over HTTP while worker processes are SIGKILLed and restarted.

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/soak.py                 # 5 minutes of load, then the checks
    .venv/bin/python bench/soak.py --minutes 1     # a short run

It starts its own `redis-server --port <free> --save "" --appendonly no` on 127.0.0.1,
one `conveyor api` and --workers `conveyor worker --concurrency 50 --queues soak`
processes (LOCK_TTL_MS=--lock-ttl-ms, default 3000; task module bench/soak_tasks.py, whose
`probe` handler records each execution start and return in Redis, then sleeps
--task-ms), all stopped by PID at the end.

For --minutes it POSTs `probe` tasks to /api/tasks at --rate per second (each send
scheduled at start + i / rate; up to --connections kept-open connections), and every
--kill-every seconds SIGKILLs one worker (round robin) and starts a fresh one in its place.
Then it stops killing, waits until every stored task has finished, stops everything and
checks, from Redis:

- every accepted task (202) finished exactly once: status completed, in the completed set
  and in no other state set (one terminal record); stored-but-unanswered POSTs are listed;
- repeated executions (a task whose handler started more than once), and whether each
  repeat follows a kill: the earlier start ran in a worker that was SIGKILLed after it;
- pickup latency (handler start - the producer's send time) of each task's first start,
  and, for repeats, the time from the kill to the new start;
- throughput (accepted/s, finished/s, finished per 10 s window) and Redis used_memory at
  the start, at its peak and at the end (finished tasks are kept: RETAIN_COMPLETED_MS).

Worker exits that soak.py did not cause are reported, and the worker is started again.
Prints a markdown table; writes bench/results/soak-<stamp>.json (+ .md).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from bench_conveyor import Failed, Proc, free_port, stats
from bench_listing import describe_src, src_fingerprint

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
QUEUE = "soak"
PREFIX = "bench:soak"
STATE_SETS = ("wait", "delayed", "active", "completed", "failed", "cancelled")


def qkey(name: str) -> str:
    return f"conveyor:{{{QUEUE}}}:{name}"


@dataclass
class Run:
    """What happened during the run, as the driver saw it."""

    accepted: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (seq, t_enq)
    refused: Counter[str] = field(default_factory=Counter)  # status or exception -> count
    unanswered: list[int] = field(default_factory=list)  # seqs whose POST failed in transit
    kills: list[tuple[float, int]] = field(default_factory=list)  # (time.time(), pid)
    unexpected: list[str] = field(default_factory=list)  # worker exits we did not cause
    samples: list[dict[str, float]] = field(default_factory=list)  # every --sample-s
    sent: int = 0
    max_lag_ms: float = 0.0
    t_start: float = 0.0
    t_stop_enqueue: float = 0.0
    t_drained: float = 0.0


class Cluster:
    """Our redis-server, API and workers; every process is stopped by its PID."""

    def __init__(self, cfg: argparse.Namespace, workdir: Path, logs: Path) -> None:
        self.cfg, self.logs = cfg, logs
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(workdir)]
        self.redis_proc = Proc(argv, dict(os.environ), logs / "redis.log").start()
        self.url = f"redis://127.0.0.1:{port}/0"
        self.r = redis.Redis(port=port, decode_responses=True)
        self._wait(self._pings, "redis-server")
        self.env = dict(os.environ)
        for name in ("REDLOCK_URLS", "API_KEYS"):
            self.env.pop(name, None)
        self.env.update(
            REDIS_URL=self.url,
            CONVEYOR_TASK_MODULES="soak_tasks",
            CONVEYOR_SOAK_PREFIX=PREFIX,
            PYTHONPATH=str(HERE),
            LOCK_TTL_MS=str(cfg.lock_ttl_ms),
            FILES_BASE_DIR=str(workdir / "files"),
            LOG_LEVEL=cfg.log_level,
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        self.api_port = free_port()
        self.api: Proc | None = None
        self.workers: list[Proc] = []
        self.retired: list[Proc] = []  # killed or exited workers (their logs stay)
        self._started = 0

    def _pings(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.ConnectionError:
            return False

    def _wait(self, ready: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.perf_counter() + timeout
        while not ready():
            if time.perf_counter() > deadline:
                raise Failed(f"{what} did not become ready")
            time.sleep(0.05)

    def start_api(self) -> None:
        argv = [str(BIN / "conveyor"), "api", "--host", "127.0.0.1", "--port", str(self.api_port)]
        self.api = Proc(argv, self.env, self.logs / "api.log").start()

        def ready() -> bool:
            assert self.api is not None
            self.api.check_alive()
            try:
                url = f"http://127.0.0.1:{self.api_port}/ready"
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(ready, "the API")

    def start_worker(self, slot: int | None = None) -> Proc:
        argv = [str(BIN / "conveyor"), "worker", "--concurrency", str(self.cfg.concurrency)]
        argv += ["--queues", QUEUE]
        self._started += 1
        proc = Proc(argv, self.env, self.logs / f"worker-{self._started:03d}.log").start()
        if slot is None:
            self.workers.append(proc)
        else:
            self.retired.append(self.workers[slot])
            self.workers[slot] = proc
        return proc

    def kill(self, slot: int) -> int:
        """SIGKILL the worker in `slot` (by its PID) and start another there."""
        victim = self.workers[slot]
        assert victim.p is not None
        victim.p.kill()
        victim.p.wait()
        self.start_worker(slot)
        return victim.pid

    def restart_exited(self, run: Run) -> None:
        for slot, worker in enumerate(self.workers):
            if worker.p is not None and worker.p.poll() is not None:
                note = f"{time.strftime('%H:%M:%S')} worker {worker.pid} exit {worker.p.returncode}"
                run.unexpected.append(note)
                print(f"  UNEXPECTED: {note}; starting another", flush=True)
                self.start_worker(slot)

    def used_memory(self) -> int:
        return int(self.r.info("memory")["used_memory"])

    def counts(self) -> dict[str, int]:
        pipe = self.r.pipeline(transaction=False)
        for name in STATE_SETS:
            pipe.zcard(qkey(name))
        return dict(zip(STATE_SETS, (int(n) for n in pipe.execute()), strict=True))

    def stop(self) -> None:
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            proc.stop()
        for proc in self.retired:
            proc.stop()  # already gone; closes its log
        self.r.close()
        self.redis_proc.stop()


# ------------------------------------------------------------------ the run


async def produce(cfg: argparse.Namespace, cluster: Cluster, run: Run) -> None:
    """POST probe tasks at a fixed rate for --minutes."""
    limits = httpx.Limits(
        max_connections=cfg.connections, max_keepalive_connections=cfg.connections
    )
    base = f"http://127.0.0.1:{cluster.api_port}"
    pending: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + cfg.minutes * 60
        seq = 0
        while True:
            due = start + seq / cfg.rate
            if due >= end:
                break
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            run.max_lag_ms = max(run.max_lag_ms, (loop.time() - due) * 1000)
            task = asyncio.create_task(_send(http, seq, cfg.task_ms, run))
            pending.add(task)
            task.add_done_callback(pending.discard)
            seq += 1
        run.sent = seq
        if pending:
            await asyncio.wait(pending)
    run.t_stop_enqueue = time.time()


async def _send(http: httpx.AsyncClient, seq: int, task_ms: int, run: Run) -> None:
    t_enq = time.time()
    body = {"taskName": "probe", "payload": {"seq": seq, "t_enq": t_enq, "ms": task_ms}}
    try:
        response = await http.post("/api/tasks", json=body)
    except httpx.HTTPError as exc:
        run.refused[type(exc).__name__] += 1
        run.unanswered.append(seq)
        return
    if response.status_code == 202:
        run.accepted[response.json()["id"]] = (seq, t_enq)
    else:
        run.refused[str(response.status_code)] += 1


async def chaos(cfg: argparse.Namespace, cluster: Cluster, run: Run, stop: asyncio.Event) -> None:
    """Every --kill-every s: SIGKILL one worker (round robin) and start another."""
    slot = 0
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=cfg.kill_every)
            return
        t_kill = time.time()
        pid = cluster.kill(slot)
        run.kills.append((t_kill, pid))
        print(f"  {time.strftime('%H:%M:%S')} SIGKILL worker {pid} (slot {slot})", flush=True)
        slot = (slot + 1) % len(cluster.workers)


class CpuMeter:
    """CPU use since the last sample, in cores: the whole machine, and our processes (API,
    workers, Redis, this driver); the difference is other load on the machine."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.last: dict[int, float] = {}
        self.t = time.perf_counter()
        psutil.cpu_percent(None)

    def sample(self) -> dict[str, float]:
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        procs = [*self.cluster.workers, self.cluster.redis_proc]
        procs += [self.cluster.api] if self.cluster.api else []
        ours = 0.0
        current: dict[int, float] = {}
        for proc in procs:
            current[proc.pid] = proc.cpu_s()
        times = psutil.Process().cpu_times()
        current[os.getpid()] = times.user + times.system
        for pid, used in current.items():
            ours += max(0.0, used - self.last.get(pid, used))
        self.last = current
        machine = psutil.cpu_percent(None) / 100 * (psutil.cpu_count() or 1)
        ours_cores = ours / dt if dt > 0 else 0.0
        return {"machine_cores": machine, "ours_cores": ours_cores}


async def sample(cfg: argparse.Namespace, cluster: Cluster, run: Run, stop: asyncio.Event) -> None:
    """Every --sample-s: finished count, Redis memory; restarts workers that exited."""
    last_print = 0.0
    cpu = CpuMeter(cluster)
    while not stop.is_set():
        cluster.restart_exited(run)
        counts = cluster.counts()
        now = time.time()
        run.samples.append(
            {
                "t": now - run.t_start,
                "accepted": len(run.accepted),
                "finished": counts["completed"] + counts["failed"] + counts["cancelled"],
                "unfinished": counts["wait"] + counts["delayed"] + counts["active"],
                "used_memory": cluster.used_memory(),
                **cpu.sample(),
            }
        )
        if now - last_print >= cfg.progress_s:
            last_print = now
            s = run.samples[-1]
            print(
                f"  {s['t']:6.0f} s: accepted {s['accepted']:,}, finished {s['finished']:,}, "
                f"unfinished {s['unfinished']:,}, used_memory {s['used_memory'] / 2**20:.1f} MB",
                flush=True,
            )
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=cfg.sample_s)


async def drive(cfg: argparse.Namespace, cluster: Cluster, run: Run) -> None:
    stop_chaos, stop_sampling = asyncio.Event(), asyncio.Event()
    run.t_start = time.time()
    sampler = asyncio.create_task(sample(cfg, cluster, run, stop_sampling))
    killer = asyncio.create_task(chaos(cfg, cluster, run, stop_chaos))
    try:
        await produce(cfg, cluster, run)
    finally:
        stop_chaos.set()
        await killer
    # Drain: killed workers' tasks come back once their leases (LOCK_TTL_MS) expire.
    deadline = time.time() + cfg.drain_timeout
    while True:
        counts = cluster.counts()
        if counts["wait"] + counts["delayed"] + counts["active"] == 0:
            break
        if time.time() > deadline:
            print(f"  drain timed out: {counts}", flush=True)
            break
        cluster.restart_exited(run)
        await asyncio.sleep(0.1)
    run.t_drained = time.time()
    stop_sampling.set()
    await sampler


# ------------------------------------------------------------------ checks


def parse_starts(lines: list[str]) -> dict[str, list[tuple[float, int]]]:
    """task id -> [(start time, worker pid)] in time order."""
    starts: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for line in lines:
        task_id, pid, t, *_ = line.split()
        starts[task_id].append((float(t), int(pid)))
    for runs in starts.values():
        runs.sort()
    return starts


def check(cfg: argparse.Namespace, cluster: Cluster, run: Run) -> dict[str, Any]:
    r = cluster.r
    starts = parse_starts(r.lrange(f"{PREFIX}:starts", 0, -1))
    ends = Counter(line.split()[0] for line in r.lrange(f"{PREFIX}:ends", 0, -1))
    ids = list(run.accepted)
    pipe = r.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(qkey(f"task:{task_id}"), "status", "attempts", "stalls", "history")
        for name in STATE_SETS:
            pipe.zscore(qkey(name), task_id)
    replies = pipe.execute()
    step = 1 + len(STATE_SETS)
    not_once: list[str] = []
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for position, task_id in enumerate(ids):
        status, _attempts, _stalls, history = replies[position * step]
        scores = replies[position * step + 1 : (position + 1) * step]
        in_sets = [n for n, sc in zip(STATE_SETS, scores, strict=True) if sc is not None]
        statuses[str(status)] += 1
        for attempt in json.loads(history or "[]"):
            outcomes[attempt.get("outcome", "?")] += 1
        if status != "completed" or in_sets != ["completed"]:
            not_once.append(f"{task_id}: status {status}, in {in_sets}")
    stored = sum(cluster.counts().values())
    repeats = repeated(run, starts)
    latency = [
        (starts[task_id][0][0] - t_enq) * 1000
        for task_id, (_, t_enq) in run.accepted.items()
        if task_id in starts
    ]
    by_kill = latency_by_time_since_kill(run, starts)
    quiet = latency_without_kill_in_between(run, starts)
    windows = latency_by_window(run, starts)
    return {
        "accepted": len(ids),
        "refused": dict(run.refused),
        "unanswered_posts": len(run.unanswered),
        "stored": stored,
        "stored_not_accepted": stored - len(ids),
        "statuses": dict(statuses),
        "history_outcomes": dict(outcomes),
        "not_completed_exactly_once": len(not_once),
        "not_completed_examples": not_once[:10],
        "never_started": sum(1 for task_id in ids if task_id not in starts),
        "handler_returned_twice_or_more": sum(1 for n in ends.values() if n > 1),
        "pickup_ms": stats(latency) if latency else None,
        "pickup_ms_by_time_since_kill": by_kill,
        "pickup_ms_no_kill_in_between": quiet,
        "pickup_ms_by_window": windows,
        **repeats,
    }


WINDOW_S = 30.0


def latency_without_kill_in_between(
    run: Run, starts: dict[str, list[tuple[float, int]]]
) -> dict[str, dict[str, float]]:
    """Pickup latency of the tasks with and without a SIGKILL between their send and their
    first start (a task claimed by a worker killed before its handler began waits for
    its lease to expire)."""
    kill_times = sorted(t for t, _ in run.kills)
    split: dict[str, list[float]] = {"no kill in between": [], "a kill in between": []}
    for task_id, (_, t_enq) in run.accepted.items():
        if task_id not in starts:
            continue
        first = starts[task_id][0][0]
        killed = bisect.bisect_right(kill_times, first) > bisect.bisect_right(kill_times, t_enq)
        split["a kill in between" if killed else "no kill in between"].append(
            (first - t_enq) * 1000
        )
    return {name: stats(values) for name, values in split.items() if values}


def latency_by_window(
    run: Run, starts: dict[str, list[tuple[float, int]]]
) -> list[dict[str, float]]:
    """Pickup latency per WINDOW_S of the run (by send time), beside the machine's CPU use
    then: do the tails come at a time, with other load, or grow as the run goes on?"""
    values: dict[int, list[float]] = defaultdict(list)
    for task_id, (_, t_enq) in run.accepted.items():
        if task_id in starts:
            window = int((t_enq - run.t_start) // WINDOW_S)
            values[window].append((starts[task_id][0][0] - t_enq) * 1000)
    out = []
    for window, latencies in sorted(values.items()):
        in_window = [
            s for s in run.samples if window * WINDOW_S <= s["t"] < (window + 1) * WINDOW_S
        ]
        machine = [s.get("machine_cores", 0.0) for s in in_window] or [0.0]
        ours = [s.get("ours_cores", 0.0) for s in in_window] or [0.0]
        st = stats(latencies)
        out.append(
            {
                "from_s": window * WINDOW_S,
                "n": st["n"],
                "p50": st["p50"],
                "p99": st["p99"],
                "max": st["max"],
                "machine_cores": sum(machine) / len(machine),
                "ours_cores": sum(ours) / len(ours),
            }
        )
    return out


KILL_BUCKETS = ((0.0, 1.0), (1.0, 5.0), (5.0, float("inf")))


def latency_by_time_since_kill(
    run: Run, starts: dict[str, list[tuple[float, int]]]
) -> dict[str, dict[str, float]]:
    """Pickup latency of the tasks sent 0-1 s, 1-5 s and 5+ s after the latest SIGKILL
    (before the first kill: 5+ s): do the tails follow the kills and the restarts?"""
    kill_times = sorted(t for t, _ in run.kills)
    buckets: dict[str, list[float]] = {f"{a:g}-{b:g} s": [] for a, b in KILL_BUCKETS}
    for task_id, (_, t_enq) in run.accepted.items():
        if task_id not in starts:
            continue
        before = bisect.bisect_right(kill_times, t_enq)
        since = t_enq - kill_times[before - 1] if before else float("inf")
        for a, b in KILL_BUCKETS:
            if a <= since < b:
                buckets[f"{a:g}-{b:g} s"].append((starts[task_id][0][0] - t_enq) * 1000)
    return {name: stats(values) for name, values in buckets.items() if values}


def repeated(run: Run, starts: dict[str, list[tuple[float, int]]]) -> dict[str, Any]:
    """Tasks whose handler started more than once, and whether a kill explains each
    repeat: the earlier start's worker was SIGKILLed after that start and before the next."""
    kills_by_pid = {pid: t for t, pid in run.kills}
    explained, unexplained, recovery_ms = 0, [], []
    repeated_tasks = 0
    for task_id, runs in starts.items():
        if len(runs) < 2:
            continue
        repeated_tasks += 1
        for (t_prev, pid_prev), (t_next, _) in itertools.pairwise(runs):
            t_kill = kills_by_pid.get(pid_prev)
            if t_kill is not None and t_prev <= t_kill <= t_next:
                explained += 1
                recovery_ms.append((t_next - t_kill) * 1000)
            else:
                unexplained.append(
                    f"{task_id}: started {t_prev:.3f} in {pid_prev}, again {t_next:.3f}"
                )
    return {
        "repeated_tasks": repeated_tasks,
        "repeats": explained + len(unexplained),
        "repeats_after_a_kill": explained,
        "repeats_without_a_kill": len(unexplained),
        "unexplained_examples": unexplained[:10],
        "kill_to_restart_ms": stats(recovery_ms) if recovery_ms else None,
    }


# ------------------------------------------------------------------ report


def throughput(cfg: argparse.Namespace, run: Run) -> dict[str, Any]:
    load_s = run.t_stop_enqueue - run.t_start
    windows = []
    by_t = run.samples
    step = max(1, round(10 / cfg.sample_s))
    for a, b in zip(by_t, by_t[step:], strict=False):
        if b["t"] <= load_s:
            windows.append((b["finished"] - a["finished"]) / (b["t"] - a["t"]))
    finished = run.samples[-1]["finished"] if run.samples else 0
    return {
        "load_s": load_s,
        "drain_s": run.t_drained - run.t_stop_enqueue,
        "sent": run.sent,
        "accepted_per_s": len(run.accepted) / load_s,
        "finished_per_s_overall": finished / (run.t_drained - run.t_start),
        "finished_per_s_10s_windows": stats(windows) if windows else None,
        "max_send_lag_ms": run.max_lag_ms,
    }


def table(res: dict[str, Any]) -> str:
    cfg, c, t, m = res["meta"]["config"], res["checks"], res["throughput"], res["memory"]
    pick, rec = c["pickup_ms"] or {}, c["kill_to_restart_ms"] or {}
    win = t["finished_per_s_10s_windows"] or {}
    mb = 2**20
    once = c["accepted"] - c["not_completed_exactly_once"]
    ok = c["not_completed_exactly_once"] == 0 and c["repeats_without_a_kill"] == 0

    def trio(d: dict[str, float], keys: tuple[str, ...], digits: int) -> str:
        return " / ".join(f"{d.get(k, 0):,.{digits}f}" for k in keys)

    rows = [
        ("load", f"{t['load_s']:.0f} s at {cfg['rate']:.0f}/s over HTTP, "
                 f"then {t['drain_s']:.1f} s drain"),
        ("workers", f"{cfg['workers']} x concurrency {cfg['concurrency']}, "
                    f"LOCK_TTL_MS={cfg['lock_ttl_ms']}, probe sleeps {cfg['task_ms']} ms"),
        ("workers SIGKILLed (and replaced)", f"{res['kills']} (every {cfg['kill_every']:.0f} s)"),
        ("worker exits not caused by the soak", str(len(res["unexpected_exits"]))),
        ("POSTs sent / accepted (202) / refused / no answer",
         f"{t['sent']:,} / {c['accepted']:,} / {sum(c['refused'].values())} / "
         f"{c['unanswered_posts']}"),
        ("accepted/s; max send lag",
         f"{t['accepted_per_s']:,.1f}/s; {t['max_send_lag_ms']:.1f} ms"),
        ("finished/s overall; per 10 s window min / p50 / max",
         f"{t['finished_per_s_overall']:,.1f}/s; {trio(win, ('min', 'p50', 'max'), 0)}"),
        ("pickup latency p50 / p99 / max ms (first start - send)",
         trio(pick, ("p50", "p99", "max"), 1)),
        *[
            (f"... {name} ({d['n']:,} tasks)", trio(d, ("p50", "p99", "max"), 1))
            for name, d in c["pickup_ms_no_kill_in_between"].items()
        ],
        *[
            (f"... sent {name} after the latest kill ({d['n']:,} tasks)",
             trio(d, ("p50", "p99", "max"), 1))
            for name, d in c["pickup_ms_by_time_since_kill"].items()
        ],
        ("tasks started more than once / repeats", f"{c['repeated_tasks']} / {c['repeats']}"),
        ("repeats after a kill / without one",
         f"{c['repeats_after_a_kill']} / {c['repeats_without_a_kill']}"),
        ("kill -> repeated start p50 / max ms", trio(rec, ("p50", "max"), 0) if rec else "n/a"),
        ("handlers that returned twice or more", str(c["handler_returned_twice_or_more"])),
        ("accepted tasks completed exactly once (one terminal record)",
         f"{once:,} of {c['accepted']:,}"),
        ("stored but not accepted (POST unanswered)", str(c["stored_not_accepted"])),
        ("history outcomes (all attempts)",
         ", ".join(f"{k} {v:,}" for k, v in c["history_outcomes"].items())),
        ("Redis used_memory start / peak / end",
         f"{m['start'] / mb:.1f} / {m['peak'] / mb:.1f} / {m['end'] / mb:.1f} MB"),
        ("used_memory growth per finished task", f"{m['growth_per_task']:,.0f} B"),
        ("API RSS start / end", f"{m['api_rss_start'] / mb:.1f} / {m['api_rss_end'] / mb:.1f} MB"),
        ("verdict", "PASS" if ok else "**FAIL**"),
    ]  # fmt: skip
    lines = ["| soak | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]
    lines += ["", "Conveyor measured: " + describe_src(res["meta"])]
    lines += [
        "",
        f"Pickup latency per {WINDOW_S:.0f} s of the run (by send time), and CPU in use then "
        f"(cores of {psutil.cpu_count()}; ours = API + workers + Redis + this driver)",
        "",
        "| from s | tasks | p50 ms | p99 ms | max ms | machine cores | ours | other load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {w['from_s']:.0f} | {w['n']:,} | {w['p50']:.1f} | {w['p99']:.1f} | {w['max']:.1f} "
        f"| {w['machine_cores']:.2f} | {w['ours_cores']:.2f} | "
        f"{max(0.0, w['machine_cores'] - w['ours_cores']):.2f} |"
        for w in c["pickup_ms_by_window"]
    ]
    for what in ("not_completed_examples", "unexplained_examples"):
        if c[what]:
            lines += ["", f"{what}:", *[f"- {x}" for x in c[what]]]
    if res["unexpected_exits"]:
        lines += ["", "worker exits not caused by the soak:"]
        lines += [f"- {x}" for x in res["unexpected_exits"]]
    return "\n".join(lines)


# ------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=5.0, help="how long tasks are enqueued")
    ap.add_argument("--rate", type=float, default=200.0, help="POST /api/tasks per second")
    ap.add_argument("--workers", type=int, default=3, help="worker processes")
    ap.add_argument("--concurrency", type=int, default=50, help="worker --concurrency")
    ap.add_argument("--lock-ttl-ms", type=int, default=3000, help="workers' LOCK_TTL_MS")
    ap.add_argument("--kill-every", type=float, default=20.0, help="s between SIGKILLs")
    ap.add_argument("--task-ms", type=int, default=20, help="how long each probe sleeps")
    ap.add_argument("--connections", type=int, default=8, help="producer HTTP connections")
    ap.add_argument("--sample-s", type=float, default=1.0, help="s between samples")
    ap.add_argument("--progress-s", type=float, default=15.0, help="s between progress lines")
    ap.add_argument("--drain-timeout", type=float, default=120.0, help="s to wait at the end")
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of API and workers")
    return ap.parse_args()


def main() -> int:
    cfg = parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-soak-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    run = Run()
    src_at_start = src_fingerprint()
    with tempfile.TemporaryDirectory(prefix="conveyor-soak-") as tmp:
        cluster = Cluster(cfg, Path(tmp), logs)
        try:
            cluster.start_api()
            for _ in range(cfg.workers):
                cluster.start_worker()
            time.sleep(1.0)  # workers import and connect
            assert cluster.api is not None
            api_rss_start = cluster.api.ps.memory_info().rss
            mem_start = cluster.used_memory()
            print(
                f"soak: {cfg.minutes} min at {cfg.rate:.0f}/s, {cfg.workers} workers, "
                f"a SIGKILL every {cfg.kill_every:.0f} s; logs in {logs}",
                flush=True,
            )
            asyncio.run(drive(cfg, cluster, run))
            mem_end = cluster.used_memory()
            api_rss_end = cluster.api.ps.memory_info().rss
            checks = check(cfg, cluster, run)
            server = cluster.r.info("server")["redis_version"]
        finally:
            cluster.stop()
    finished = run.samples[-1]["finished"] if run.samples else 0
    res = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{psutil.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version(),
            "redis_server": server,
            "config": vars(cfg),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "src_at_start": src_at_start,
            "src_at_end": src_fingerprint(),
        },
        "throughput": throughput(cfg, run),
        "checks": checks,
        "kills": len(run.kills),
        "kill_log": run.kills,
        "unexpected_exits": run.unexpected,
        "memory": {
            "start": mem_start,
            "peak": max([s["used_memory"] for s in run.samples] + [mem_end]),
            "end": mem_end,
            "growth_per_task": (mem_end - mem_start) / max(1, finished),
            "api_rss_start": api_rss_start,
            "api_rss_end": api_rss_end,
        },
        "samples": run.samples,
    }
    md = table(res)
    out = RESULTS / f"soak-{stamp}.json"
    out.write_text(json.dumps(res, indent=2))
    out.with_suffix(".md").write_text(md + "\n")
    print(f"\n{md}\n\nJSON: {out.relative_to(HERE.parent)}")
    ok = checks["not_completed_exactly_once"] == 0 and checks["repeats_without_a_kill"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
