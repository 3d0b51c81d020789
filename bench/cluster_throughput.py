"""Conveyor on a Redis Cluster: processed tasks/s by shard count, and what cluster mode costs
one shard against a plain Redis. A benchmark, not a test.

    .venv/bin/python bench/cluster_throughput.py            # default run, ~2-4 min on 2 cores
    .venv/bin/python bench/cluster_throughput.py --quick    # smoke run, ~30 s

Every Redis here is the script's own, on free loopback ports, stopped by PID at the end
(Ctrl-C and failures included): a cluster of k masters from `tests/redis_cluster.py`
(`RedisClusterServers`, no replicas, `--save ""`) and, for part 2, one plain
`redis-server --save "" --appendonly no`. Workers are `conveyor worker --concurrency C
--queues <one queue>` processes (WORKER_QUEUES = that queue; `REDIS_CLUSTER_URLS` = every
master on a cluster, `REDIS_URL` on the plain Redis), task module `conveyor_bench_tasks`
(bench/ on PYTHONPATH), LOG_LEVEL=WARNING, default LOCK_TTL_MS; started in a session of
their own and stopped by PID.

Part 1, `shards`: for each k in --shards (1,2,3), a k-master cluster, k queues on k distinct
masters (`queues_on_distinct_shards`), --n no-op tasks enqueued evenly over them through
Conveyor's own EnqueueTask.execute_many (chunks of 1000, as bench_conveyor.py's bulk phase),
then k x --workers-per-shard worker processes, each serving ONE queue. Timed from the
workers' start, and from the moment all of them are registered as live workers (their
first heartbeat: `HLEN conveyor:{#workers}:info`) to the last task in the queues'
`completed` sets (ZCARD of each, polled every 5 ms).

Part 2, `cost`: the same --n tasks on one queue and ONE worker process, on a plain Redis
(REDIS_URL: the claim script takes the task's lock, `locks_with_tasks`) and on a 1-master
cluster (REDIS_CLUSTER_URLS: each task's Redlock goes through pottery, a round trip of its
own), alternated plain, cluster, plain, cluster ... (`--order abab`; `abba` flips the pair
every round) for --rounds rounds; each run starts from a FLUSHALLed server.

Per run it also records the CPU seconds (user + system, psutil) each redis-server and each
worker process used, as % of one core over the drain window (workers registered -> last
task) and per task, the whole machine's busy % over that window, this script's own CPU (it
polls), and Redis commands per task (INFO total_commands_processed difference, the
script's own polling commands taken off). os.cpu_count() bounds it: with 2 CPUs, the
workers' and the redis-servers' % of a core add up to at most 200.

The no-op body INCRs `bench:{<queue>}:done` (CONVEYOR_BENCH_PREFIX) on the queue's own
master (the task module's REDIS_URL), so a task's body goes to the queue's Redis as in
bench_conveyor.py. Prints markdown and writes bench/results/cluster-throughput-<stamp>.json
(+ .md); worker and redis logs in bench/results/logs-cluster-<stamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import redis

import bench_conveyor
from bench_conveyor import Failed, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
BIN = Path(sys.executable).parent  # the venv's bin/, where `conveyor` lives
RESULTS = HERE / "results"
TASK_MODULE = "conveyor_bench_tasks"
QUEUE_PREFIX = "bench"
POLL_S = 0.005
BULK_CHUNK = 1000
# Settings of the environment that would change which Redis or lock the workers use.
FOREIGN_ENV = (
    "REDIS_URL",
    "REDIS_CLUSTER_URLS",
    "REDLOCK_URLS",
    "REDIS_SENTINELS",
    "REDIS_MASTER_NAME",
    "ENQUEUE_REPLICAS",
    "QUEUES",
    "WORKER_QUEUES",
    "CONVEYOR_BENCH_PREFIX",
)


# ------------------------------------------------------------------ processes


def cpu_s(ps: psutil.Process | None) -> float:
    """CPU seconds (user + system) of a process and its children so far; 0 once gone."""
    if ps is None:
        return 0.0
    total = 0.0
    with suppress(psutil.NoSuchProcess):
        times = ps.cpu_times()
        total += times.user + times.system
        for child in ps.children(recursive=True):
            with suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                total += times.user + times.system
    return total


class Proc(bench_conveyor.Proc):
    """bench_conveyor's worker process, its CPU counted with its children's."""

    def cpu_s(self) -> float:
        return cpu_s(self.ps)


def wait_for(pred: Callable[[], bool], timeout: float, what: str, procs: list[Proc]) -> float:
    deadline = time.perf_counter() + timeout
    while not pred():
        for proc in procs:
            proc.check_alive()
        if time.perf_counter() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)
    return time.perf_counter()


def _ping(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# ------------------------------------------------------------------ the Redis under test


class Backend:
    """A plain redis-server or a k-master cluster, its queues, and how to look into it."""

    kind: str
    queues: list[str]
    master_of: dict[str, str]  # queue -> URL of the master that serves its keys
    servers: dict[str, psutil.Process]  # "host:port" -> its redis-server process

    def __init__(self) -> None:
        self._clients: dict[str, redis.Redis] = {}

    def client(self, url: str) -> redis.Redis:
        if url not in self._clients:
            self._clients[url] = redis.Redis.from_url(url, decode_responses=True)
        return self._clients[url]

    @property
    def master_urls(self) -> list[str]:
        return [f"redis://{name}/0" for name in self.servers]

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        raise NotImplementedError

    def workers_master(self) -> str:
        raise NotImplementedError

    def flush(self) -> None:
        for url in self.master_urls:
            self.client(url).flushall()

    def commands(self) -> dict[str, int]:
        return {
            name: int(self.client(f"redis://{name}/0").info("stats")["total_commands_processed"])
            for name in self.servers
        }

    def commandstats(self) -> Counter[str]:
        """Calls per command, summed over the masters (a script's own calls included)."""
        total: Counter[str] = Counter()
        for name in self.servers:
            stats = self.client(f"redis://{name}/0").info("commandstats")
            for key, value in stats.items():
                total[key.removeprefix("cmdstat_")] += int(value["calls"])
        return total

    def redis_cpu(self) -> dict[str, float]:
        return {name: cpu_s(ps) for name, ps in self.servers.items()}

    def version(self) -> str:
        return str(self.client(self.master_urls[0]).info("server")["redis_version"])

    def close(self) -> None:
        for client in self._clients.values():
            with suppress(redis.RedisError):
                client.close()
        self._clients.clear()


class PlainRedis(Backend):
    def __init__(self, workdir: Path, logs: Path, queue: str) -> None:
        super().__init__()
        self.kind = "plain"
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(workdir)]
        self.server = Proc(argv, dict(os.environ), logs / f"redis-plain-{port}.log").start()
        self.url = f"redis://127.0.0.1:{port}/0"
        try:
            wait_for(lambda: _ping(self.url), 10, "the plain redis-server", [self.server])
        except BaseException:
            self.server.stop()
            raise
        assert self.server.ps is not None
        self.servers = {f"127.0.0.1:{port}": self.server.ps}
        self.queues = [queue]
        self.master_of = {queue: self.url}

    def settings(self) -> dict[str, Any]:
        return {"redis_url": self.url, "redis_cluster_urls": ""}

    def worker_env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url}

    def workers_master(self) -> str:
        return self.url

    def stop(self) -> None:
        self.close()
        self.server.stop()


class ClusterRedis(Backend):
    def __init__(self, workdir: Path, masters: int) -> None:
        super().__init__()
        from tests.redis_cluster import RedisClusterServers, queue_key  # noqa: PLC0415

        self.kind = "cluster"
        workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = RedisClusterServers(workdir, masters=masters)
        self.cluster.start()  # stops what it started if it fails
        try:
            self._look(masters, queue_key)
        except BaseException:
            self.cluster.stop()
            raise

    def _look(self, masters: int, queue_key: Callable[[str], str]) -> None:
        self.servers = {
            f"127.0.0.1:{port}": psutil.Process(proc.pid)
            for port, proc in self.cluster.processes.items()
        }
        self.queues = self.cluster.queues_on_distinct_shards(masters, prefix=QUEUE_PREFIX)
        self.master_of = {
            q: f"redis://127.0.0.1:{self.cluster.node_of(queue_key(q))}/0" for q in self.queues
        }
        if len(set(self.master_of.values())) != masters:
            raise Failed(f"queues {self.master_of} are not on {masters} distinct masters")
        for q in self.queues:  # the no-op body's INCR must land on the queue's master
            done_port = self.cluster.node_of(f"{bench_prefix(q)}:done")
            if self.master_of[q] != f"redis://127.0.0.1:{done_port}/0":
                raise Failed(f"{bench_prefix(q)}:done is not on the master of queue {q}")

    def settings(self) -> dict[str, Any]:
        return {"redis_url": None, "redis_cluster_urls": self.cluster.cluster_urls}

    def worker_env(self) -> dict[str, str]:
        return {"REDIS_CLUSTER_URLS": self.cluster.cluster_urls}

    def workers_master(self) -> str:
        from infrastructure.redis.keys import WORKERS  # noqa: PLC0415

        return f"redis://127.0.0.1:{self.cluster.node_of(WORKERS.info)}/0"

    def stop(self) -> None:
        self.close()
        self.cluster.stop()


def bench_prefix(queue: str) -> str:
    """CONVEYOR_BENCH_PREFIX of a queue's workers: its hash tag puts the no-op's counter on
    the queue's master."""
    return f"bench:{{{queue}}}"


# ------------------------------------------------------------------ enqueue


async def enqueue(backend: Backend, counts: dict[str, int], workdir: Path) -> float:
    """counts[queue] no-op tasks per queue through EnqueueTask.execute_many, as the API
    does; returns the seconds it took."""
    from dependency_injector import providers  # noqa: PLC0415

    from application.enqueue_task import EnqueueRequest  # noqa: PLC0415
    from infrastructure.settings import Settings  # noqa: PLC0415
    from interfaces.container import Container, resolve  # noqa: PLC0415

    settings = Settings(
        **backend.settings(),
        task_modules=TASK_MODULE,
        files_base_dir=workdir / "files",
        redlock_urls="",
        redis_sentinels="",
        enqueue_replicas=0,
        queues=",".join(backend.queues),
    )
    container = Container()
    container.settings.override(providers.Object(settings))
    await container.init_resources()
    try:
        use_case = await resolve(container.enqueue_task)
        t0 = time.perf_counter()
        for queue, n in counts.items():
            for at in range(0, n, BULK_CHUNK):
                k = min(BULK_CHUNK, n - at)
                await use_case.execute_many(
                    [EnqueueRequest("noop", {}, queue=queue) for _ in range(k)]
                )
        return time.perf_counter() - t0
    finally:
        await container.shutdown_resources()


def spread(n: int, queues: list[str]) -> dict[str, int]:
    share, extra = divmod(n, len(queues))
    return {q: share + (i < extra) for i, q in enumerate(queues)}


# ------------------------------------------------------------------ one drain


class Run:
    """N tasks pre-enqueued, then workers started; times and CPU of one drain."""

    def __init__(self, cfg: argparse.Namespace, backend: Backend, workdir: Path, logs: Path):
        self.cfg, self.b, self.workdir, self.logs = cfg, backend, workdir, logs

    def worker(self, queue: str, tag: str) -> Proc:
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        env.update(self.b.worker_env())
        env.update(
            # the no-op body's own client (the task module reads REDIS_URL): the queue's
            # master; on a cluster Conveyor itself uses REDIS_CLUSTER_URLS, not this
            REDIS_URL=self.b.master_of[queue],
            CONVEYOR_TASK_MODULES=TASK_MODULE,
            CONVEYOR_BENCH_PREFIX=bench_prefix(queue),
            QUEUES=",".join(self.b.queues),
            WORKER_QUEUES=queue,
            PYTHONPATH=str(HERE),
            FILES_BASE_DIR=str(self.workdir / "files"),
            LOG_LEVEL=self.cfg.log_level,
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        argv = [str(BIN / "conveyor"), "worker", "--concurrency", str(self.cfg.concurrency)]
        argv += ["--queues", queue]
        return Proc(argv, env, self.logs / f"worker-{tag}.log")

    def completed(self) -> dict[str, int]:
        from domain.task import TaskStatus  # noqa: PLC0415
        from infrastructure.redis.keys import QueueKeys  # noqa: PLC0415

        self.polls += len(self.b.queues)
        return {
            q: int(
                self.b.client(self.b.master_of[q]).zcard(QueueKeys(q).state(TaskStatus.COMPLETED))
            )
            for q in self.b.queues
        }

    def waiting(self) -> int:
        from domain.task import TaskStatus  # noqa: PLC0415
        from infrastructure.redis.keys import QueueKeys  # noqa: PLC0415

        return sum(
            int(self.b.client(self.b.master_of[q]).zcard(QueueKeys(q).state(TaskStatus.WAITING)))
            for q in self.b.queues
        )

    def executions(self) -> dict[str, int]:
        """How many no-op bodies ran per queue (their INCRs): above its tasks = repeats."""
        return {
            q: int(self.b.client(self.b.master_of[q]).get(f"{bench_prefix(q)}:done") or 0)
            for q in self.b.queues
        }

    def failed(self) -> int:
        from domain.task import TaskStatus  # noqa: PLC0415
        from infrastructure.redis.keys import QueueKeys  # noqa: PLC0415

        return sum(
            int(self.b.client(self.b.master_of[q]).zcard(QueueKeys(q).state(TaskStatus.FAILED)))
            for q in self.b.queues
        )

    def live_workers(self) -> int:
        from infrastructure.redis.keys import WORKERS  # noqa: PLC0415

        self.polls += 1
        return int(self.b.client(self.b.workers_master()).hlen(WORKERS.info))

    def execute(self, workers_per_queue: int, tag: str) -> dict[str, Any]:
        n, b = self.cfg.n, self.b
        b.flush()
        counts = spread(n, b.queues)
        enqueue_s = asyncio.run(enqueue(b, counts, self.workdir))
        if (waiting := self.waiting()) != n:
            raise Failed(f"{waiting} tasks waiting after enqueueing {n}")
        workers = [
            self.worker(q, f"{tag}-{q}-{i}") for q in b.queues for i in range(workers_per_queue)
        ]
        self.polls = 0
        try:
            redis_cpu0, cmds0, stats0 = b.redis_cpu(), b.commands(), b.commandstats()
            machine0, own0 = psutil.cpu_times(), time.process_time()
            for w in workers:
                w.start()
            t0 = min(w.t_start for w in workers)
            t_ready = wait_for(
                lambda: self.live_workers() >= len(workers),
                self.cfg.timeout,
                "every worker to register",
                workers,
            )
            worker_cpu_ready = [w.cpu_s() for w in workers]
            redis_cpu_ready = b.redis_cpu()
            machine_ready, own_ready = psutil.cpu_times(), time.process_time()
            done_at_ready = sum(self.completed().values())
            queue_done: dict[str, float] = {}

            def all_done() -> bool:
                now = time.perf_counter()
                for q, k in self.completed().items():
                    if k >= counts[q]:
                        queue_done.setdefault(q, now)
                return len(queue_done) == len(counts)

            t_done = wait_for(all_done, self.cfg.timeout, f"{n} completed tasks", workers)
            worker_cpu_done = [w.cpu_s() for w in workers]
            redis_cpu_done = b.redis_cpu()
            machine_done, own_done = psutil.cpu_times(), time.process_time()
            cmds1, stats1 = b.commands(), b.commandstats()
            polls = self.polls + len(b.servers)  # + the INFO calls themselves
            executed = self.executions()
            failed = self.failed()
        finally:
            stops = [w.stop() for w in workers]
        drain = t_done - t_ready
        drained = n - done_at_ready
        worker_cpu = [c1 - c0 for c0, c1 in zip(worker_cpu_ready, worker_cpu_done, strict=True)]
        errors = log_findings([w.log_path for w in workers])
        res: dict[str, Any] = {
            "backend": b.kind,
            "masters": len(b.servers),
            "queues": {q: {"master": b.master_of[q], "tasks": counts[q]} for q in b.queues},
            "worker_processes": len(workers),
            "workers_per_queue": workers_per_queue,
            "concurrency": self.cfg.concurrency,
            "n": n,
            "enqueue_s": enqueue_s,
            "enqueue_per_s": n / enqueue_s,
            "seconds_from_start": t_done - t0,
            "per_s_from_start": n / (t_done - t0),
            "ready_s": t_ready - t0,
            "completed_at_ready": done_at_ready,
            "drain_s": drain,
            "per_s": drained / drain if drain > 0 else None,
            "per_s_per_worker": drained / drain / len(workers) if drain > 0 else None,
            "queue_done_s_after_ready": {q: t - t_ready for q, t in queue_done.items()},
            "worker_cpu_s_total": worker_cpu_done,
            "worker_cpu_pct_drain": [100 * c / drain for c in worker_cpu],
            "worker_cpu_us_per_task_drain": 1e6 * sum(worker_cpu) / max(1, drained),
            "redis_cpu_s_total": {k: redis_cpu_done[k] - redis_cpu0[k] for k in redis_cpu_done},
            "redis_cpu_pct_drain": {
                k: 100 * (redis_cpu_done[k] - redis_cpu_ready[k]) / drain for k in redis_cpu_done
            },
            "redis_cpu_us_per_task_drain": 1e6
            * sum(redis_cpu_done[k] - redis_cpu_ready[k] for k in redis_cpu_done)
            / max(1, drained),
            "machine_busy_pct_drain": busy_pct(machine_ready, machine_done),
            "machine_busy_pct_from_start": busy_pct(machine0, machine_done),
            "harness_cpu_pct_drain": 100 * (own_done - own_ready) / drain,
            "harness_cpu_s_total": own_done - own0,
            "redis_commands_per_task": (sum(cmds1.values()) - sum(cmds0.values()) - polls) / n,
            "commandstats_calls": {
                cmd: stats1[cmd] - stats0[cmd] for cmd in stats1 if stats1[cmd] != stats0[cmd]
            },
            "commandstats_per_task": {
                cmd: round((stats1[cmd] - stats0[cmd]) / n, 3)
                for cmd in sorted(stats1, key=lambda c: stats0[c] - stats1[c])
                if stats1[cmd] != stats0[cmd]
            },
            "bodies_executed": sum(executed.values()),
            "bodies_executed_per_queue": executed,
            "failed_tasks": failed,
            "worker_stops": stops,
            "worker_logs": [shown(w.log_path) for w in workers],
            "worker_log_findings": errors,
        }
        return res


def shown(path: Path) -> str:
    """A path as the report shows it: from the project root when it is under it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def busy_pct(before: Any, after: Any) -> float:
    """The whole machine's busy share between two psutil.cpu_times(), in % of ALL its CPUs
    (100 = every CPU busy)."""
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return 100 * (1 - idle / total) if total > 0 else 0.0


def log_findings(paths: list[Path]) -> dict[str, Any]:
    """Lines the workers logged at WARNING or above (LOG_LEVEL=WARNING: every line they
    wrote), counted by level and event, with one example of each."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for path in paths:
        with suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    key = f"{entry.get('level', '?')} {entry.get('event', '?')}"
                except (json.JSONDecodeError, AttributeError):
                    key = "unparsed " + line[:80]
                counts[key] += 1
                examples.setdefault(key, line[:400])
    return {"counts": dict(counts), "examples": examples}


# ------------------------------------------------------------------ parts


def part_shards(cfg: argparse.Namespace, workdir: Path, logs: Path) -> list[dict[str, Any]]:
    rows = []
    for k in cfg.shard_list:
        print(f"  shards={k}: starting a {k}-master cluster", flush=True)
        backend = ClusterRedis(workdir / f"cluster-{k}", k)
        try:
            started = time.perf_counter()
            try:
                row = Run(cfg, backend, workdir, logs).execute(cfg.workers_per_shard, f"s{k}")
            except (Failed, redis.RedisError, OSError) as exc:
                row = {"masters": k, "error": f"{type(exc).__name__}: {exc}"}
            row["elapsed_s"] = time.perf_counter() - started
            with suppress(redis.RedisError):
                row.setdefault("redis_server", backend.version())
        finally:
            backend.stop()
        print(f"    {brief(row)}", flush=True)
        rows.append(row)
    return rows


def part_cost(cfg: argparse.Namespace, workdir: Path, logs: Path) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    with ExitStack() as stack:
        print("  cost: starting a plain redis-server and a 1-master cluster", flush=True)
        cluster = ClusterRedis(workdir / "cost-cluster", 1)
        stack.callback(cluster.stop)
        plain = PlainRedis(workdir, logs, cluster.queues[0])  # the same queue name
        stack.callback(plain.stop)
        backends: dict[str, Backend] = {"plain": plain, "cluster": cluster}
        for r in range(cfg.rounds):
            order = ["plain", "cluster"]
            if cfg.order == "abba" and r % 2:
                order.reverse()
            entry: dict[str, Any] = {"round": r + 1, "order": order}
            for kind in order:
                try:
                    res = Run(cfg, backends[kind], workdir, logs).execute(1, f"cost{r + 1}-{kind}")
                except (Failed, redis.RedisError, OSError) as exc:
                    res = {"backend": kind, "error": f"{type(exc).__name__}: {exc}"}
                entry[kind] = res
                print(f"    round {r + 1} {kind:7s} {brief(res)}", flush=True)
            rounds.append(entry)
        versions = {"plain": plain.version(), "cluster": cluster.version()}

    def ratios(field: str) -> list[float]:
        return [
            e["cluster"][field] / e["plain"][field]
            for e in rounds
            if e["plain"].get(field) and e["cluster"].get(field)
        ]

    summary = {
        field: {
            "ratios": ratios(field),
            "median": statistics.median(ratios(field)) if ratios(field) else None,
        }
        for field in (
            "per_s",
            "per_s_from_start",
            "worker_cpu_us_per_task_drain",
            "redis_cpu_us_per_task_drain",
            "redis_commands_per_task",
        )
    }
    return {"rounds": rounds, "cluster_over_plain": summary, "redis_server": versions}


def brief(d: dict[str, Any]) -> str:
    if "error" in d:
        return "ERROR " + d["error"]
    worst = sum(d["worker_log_findings"]["counts"].values())
    return (
        f"{d['per_s']:,.0f}/s after ready ({d['drain_s']:.2f} s), "
        f"{d['per_s_from_start']:,.0f}/s from start; workers CPU "
        f"{'/'.join(f'{x:.0f}' for x in d['worker_cpu_pct_drain'])}%, redis CPU "
        f"{'/'.join(f'{x:.0f}' for x in d['redis_cpu_pct_drain'].values())}%, machine "
        f"{d['machine_busy_pct_drain']:.0f}%; {worst} worker log lines"
    )


# ------------------------------------------------------------------ report


def fmt(x: Any, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def pcts(values: Any) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


def report(res: dict[str, Any]) -> str:
    meta = res["meta"]
    cfg = meta["config"]
    out = [
        f"Conveyor on Redis Cluster, {meta['date']}: `{meta['command']}`",
        "",
        f"Machine: os.cpu_count() = {meta['cpu_count']} ({meta['machine']}); load average "
        f"at start {meta['loadavg_start']}; redis-server {meta['redis_server']}; "
        f"{meta['src']}.",
        f"N = {cfg['n']:,} no-op tasks per run, worker --concurrency {cfg['concurrency']}, "
        f"LOCK_TTL_MS {meta['lock_ttl_ms']}. tasks/s = tasks drained / (every worker "
        "registered -> last task completed); 'from start' counts from the workers' process "
        "start (imports included). CPU % = % of ONE core over the drain window "
        f"(at most {100 * meta['cpu_count']} % in all); machine % = of all CPUs; harness = "
        "this script (it polls every 5 ms). Redis calls/task = total_commands_processed "
        "difference / N: commands a script runs count too; this script's polls are taken off.",
    ]
    if "shards" in res["parts"]:
        out += [
            "",
            "### 1. Shards: k masters, k queues (one per master), "
            f"{cfg['workers_per_shard']} worker process(es) per shard, each on one queue",
            "",
            "| shards | worker procs | tasks/s | per worker proc | tasks/s from start | "
            "worker CPU % each | redis CPU % each master | machine busy % | "
            "harness CPU % | worker CPU µs/task | redis CPU µs/task | redis calls/task |",
            "|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        for row in res["parts"]["shards"]:
            if "error" in row:
                out.append(f"| {row['masters']} | ERROR: {row['error']} |" + " |" * 10)
                continue
            out.append(
                f"| {row['masters']} | {row['worker_processes']} | {fmt(row['per_s'])} | "
                f"{fmt(row['per_s_per_worker'])} | {fmt(row['per_s_from_start'])} | "
                f"{pcts(row['worker_cpu_pct_drain'])} | "
                f"{pcts(row['redis_cpu_pct_drain'].values())} | "
                f"{row['machine_busy_pct_drain']:.0f} | {row['harness_cpu_pct_drain']:.0f} | "
                f"{fmt(row['worker_cpu_us_per_task_drain'])} | "
                f"{fmt(row['redis_cpu_us_per_task_drain'])} | "
                f"{row['redis_commands_per_task']:.1f} |"
            )
    if "cost" in res["parts"]:
        cost = res["parts"]["cost"]
        out += [
            "",
            "### 2. Cluster mode on one shard against a plain Redis (1 queue, 1 worker process)",
            "",
            "| round | run | backend | tasks/s | tasks/s from start | worker CPU % | "
            "redis CPU % | machine busy % | worker CPU µs/task | redis CPU µs/task | "
            "redis calls/task |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        seq = 0
        for entry in cost["rounds"]:
            for kind in entry["order"]:
                seq += 1
                d = entry[kind]
                if "error" in d:
                    out.append(f"| {entry['round']} | {seq} | {kind} | ERROR: {d['error']} |")
                    continue
                out.append(
                    f"| {entry['round']} | {seq} | {kind} | {fmt(d['per_s'])} | "
                    f"{fmt(d['per_s_from_start'])} | {pcts(d['worker_cpu_pct_drain'])} | "
                    f"{pcts(d['redis_cpu_pct_drain'].values())} | "
                    f"{d['machine_busy_pct_drain']:.0f} | "
                    f"{fmt(d['worker_cpu_us_per_task_drain'])} | "
                    f"{fmt(d['redis_cpu_us_per_task_drain'])} | "
                    f"{d['redis_commands_per_task']:.1f} |"
                )
        out += ["", "| cluster / plain | per round | median |", "|---|---|---:|"]
        labels = {
            "per_s": "tasks/s",
            "per_s_from_start": "tasks/s from start",
            "worker_cpu_us_per_task_drain": "worker CPU per task",
            "redis_cpu_us_per_task_drain": "redis CPU per task",
            "redis_commands_per_task": "redis calls per task",
        }
        for field, label in labels.items():
            s = cost["cluster_over_plain"][field]
            out.append(
                f"| {label} | {' / '.join(f'{r:.3f}' for r in s['ratios'])} | "
                f"**{fmt(s['median'], 3)}** |"
            )
        out += ["", *command_differences(cost["rounds"])]
    findings = worker_findings(res)
    out += ["", "Checks over all runs: " + checks(res)]
    out += ["", "Worker log lines (WARNING and above) over all runs: " + (findings or "none")]
    return "\n".join(out)


def command_differences(rounds: list[dict[str, Any]]) -> list[str]:
    """Redis calls per task by command, plain against cluster (the last round with both)."""
    both = [e for e in rounds if "error" not in e["plain"] and "error" not in e["cluster"]]
    if not both:
        return []
    plain = both[-1]["plain"]["commandstats_per_task"]
    cluster = both[-1]["cluster"]["commandstats_per_task"]
    lines = [
        f"Redis calls per task by command, round {both[-1]['round']} (INFO commandstats, "
        "summed over the masters; a script's own calls included; this script's polling "
        "ZCARD/HLEN/INFO included):",
        "",
        "| command | plain | cluster |",
        "|---|---:|---:|",
    ]
    for cmd in sorted(
        set(plain) | set(cluster), key=lambda c: -max(plain.get(c, 0), cluster.get(c, 0))
    ):
        a, b = plain.get(cmd, 0.0), cluster.get(cmd, 0.0)
        if max(a, b) >= 0.01:
            lines.append(f"| {cmd} | {a:.2f} | {b:.2f} |")
    return lines


def checks(res: dict[str, Any]) -> str:
    """Every body ran once, nothing failed, every worker stopped on SIGTERM by itself."""
    problems = []
    runs = 0
    for run in all_runs(res):
        if "error" in run:
            problems.append(f"{run.get('backend', '?')}: {run['error']}")
            continue
        runs += 1
        label = f"{run['backend']} {run['masters']} master(s)"
        if run["bodies_executed"] != run["n"]:
            problems.append(f"{label}: {run['bodies_executed']} bodies ran for {run['n']} tasks")
        if run["failed_tasks"]:
            problems.append(f"{label}: {run['failed_tasks']} failed tasks")
        for stop in run["worker_stops"]:
            if stop.get("killed") or stop.get("exit_code") not in (0, None):
                problems.append(f"{label}: a worker stopped with {stop}")
    if problems:
        return "; ".join(problems)
    return (
        f"{runs} runs: every no-op body ran exactly once per task (its INCRs), no task failed, "
        "every worker exited 0 on SIGTERM"
    )


def all_runs(res: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from res["parts"].get("shards", [])
    for entry in res["parts"].get("cost", {}).get("rounds", []):
        for kind in entry["order"]:
            yield entry[kind]


def worker_findings(res: dict[str, Any]) -> str:
    total: Counter[str] = Counter()
    for run in all_runs(res):
        total.update(run.get("worker_log_findings", {}).get("counts", {}))
    return "; ".join(f"`{k}` x{v}" for k, v in total.most_common())


# ------------------------------------------------------------------ main


def src_fingerprint() -> str:
    """Which Conveyor was measured: git HEAD, files changed under src/, a hash of src/."""
    digest = hashlib.sha256()
    for path in sorted(SRC.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".lua"):
            digest.update(str(path.relative_to(SRC)).encode() + b"\0" + path.read_bytes())

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = len(git("status", "--short", "src").splitlines())
    return (
        f"Conveyor git {git('rev-parse', '--short', 'HEAD')} + {changed} changed paths under "
        f"src/, src sha256 {digest.hexdigest()[:16]}"
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=None, help="tasks per run (20000; --quick 2000)")
    ap.add_argument("--shards", default="1,2,3", help="shard (master) counts of part 1")
    ap.add_argument("--workers-per-shard", type=int, default=1, help="worker processes a shard")
    ap.add_argument("--rounds", type=int, default=None, help="part 2 rounds (3; --quick 2)")
    ap.add_argument("--order", choices=("abab", "abba"), default="abab", help="part 2 order")
    ap.add_argument("--concurrency", type=int, default=50, help="worker --concurrency")
    ap.add_argument("--parts", default="shards,cost", help="shards, cost or both")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the workers")
    ap.add_argument("--timeout", type=float, default=180.0, help="limit (s) of each wait")
    cfg = ap.parse_args()
    cfg.n = cfg.n or (2000 if cfg.quick else 20000)
    cfg.rounds = cfg.rounds or (2 if cfg.quick else 3)
    cfg.shard_list = [int(s) for s in cfg.shards.split(",") if s.strip()]
    cfg.part_list = [p.strip() for p in cfg.parts.split(",") if p.strip()]
    if unknown := set(cfg.part_list) - {"shards", "cost"}:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if any(k < 1 for k in cfg.shard_list) or cfg.workers_per_shard < 1 or cfg.n < 1:
        ap.error("--shards, --workers-per-shard and --n must be positive")
    return cfg


@contextmanager
def importable() -> Iterator[None]:
    """tests/ (the cluster helper) and bench/ (the task module, for the registry) too."""
    added = [p for p in (str(ROOT), str(HERE)) if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            sys.path.remove(p)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every cleanup


def main() -> int:
    cfg = parse_args()
    # SIGINT too: a shell's background job starts with SIGINT ignored
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _terminate)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-cluster-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    workdir = logs / "redis"  # cluster node files and redis logs, kept for inspection
    workdir.mkdir()
    t0 = time.perf_counter()
    meta: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "cpu_count": os.cpu_count(),
        "machine": f"{psutil.cpu_count(logical=False)} physical cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.platform()}",
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "redis_py": importlib.metadata.version("redis"),
        "pottery": importlib.metadata.version("pottery"),
        "lock_ttl_ms": os.environ.get("LOCK_TTL_MS", "30000 (default)"),
        "src": src_fingerprint(),
        "config": {k: v for k, v in vars(cfg).items()},
        "logs": shown(logs),
    }
    print(f"cluster_throughput: os.cpu_count()={os.cpu_count()}, logs in {meta['logs']}")
    parts: dict[str, Any] = {}
    try:
        with importable():
            if "shards" in cfg.part_list:
                parts["shards"] = part_shards(cfg, workdir, logs)
            if "cost" in cfg.part_list:
                parts["cost"] = part_cost(cfg, workdir, logs)
    except KeyboardInterrupt as exc:  # every process was stopped on the way out
        print(f"\ninterrupted ({exc or 'Ctrl-C'}): every worker and redis-server stopped")
        return 130
    versions = {r.get("redis_server") for r in parts.get("shards", [])}
    versions |= set(parts.get("cost", {}).get("redis_server", {}).values())
    meta["redis_server"] = ", ".join(sorted(v for v in versions if v)) or "n/a"
    meta["wall_s"] = time.perf_counter() - t0
    res = {"meta": meta, "parts": parts}
    md = report(res)
    out = RESULTS / f"cluster-throughput-{stamp}.json"
    out.write_text(json.dumps(res, indent=2))
    out.with_suffix(".md").write_text(md + "\n")
    print(f"\n{md}\n\nwall {meta['wall_s']:.0f} s; JSON: {shown(out)}")
    failed = any("error" in run for run in all_runs(res))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
