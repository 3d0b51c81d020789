"""Group fairness: how long a small group's tasks wait to start behind a large group's
backlog, with groups (served in turn) and without (one FIFO queue), in the same run.

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/group_fairness.py                   # about 15 s here
    .venv/bin/python bench/group_fairness.py --big 20000 --workers 3 --task-ms 5

It starts its own `redis-server` (no persistence), and for each mode a fresh `conveyor api`
and, once --big demo `sleep` tasks (`ms` = --task-ms) are enqueued in bulk requests of
1,000, --workers `conveyor worker --concurrency C` processes (all stopped by PID after the
mode). Once the first big task has completed, it enqueues --small `sleep` tasks in one
bulk request and waits until those have completed. A small task's start delay = its
`startedAt` (the claim, on the worker's clock) - its `createdAt` (the enqueue, on the
API's clock; one machine).

- `groups`: the big tasks carry group "big", the small ones group "small";
- `fifo`: neither carries a group, so the small tasks queue behind what is left of the big.

"ahead" is how many big tasks were still waiting when the small ones were enqueued, "big
done" how many had completed once the small ones all had. Prints a markdown table; writes
bench/results/group-fairness-<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench_conveyor import Failed, Proc, free_port, stats
from schedule_lateness import answers, millis, wait_until

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
BULK_MAX = 1_000  # POST /api/tasks/bulk takes at most this many tasks a request
MODES = {"groups": ("big", "small"), "fifo": (None, None)}


def enqueue(client: httpx.Client, count: int, ms: int, group: str | None) -> list[str]:
    item = {"taskName": "sleep", "payload": {"ms": ms}, "group": group}
    ids: list[str] = []
    for first in range(0, count, BULK_MAX):
        body = {"tasks": [item] * min(BULK_MAX, count - first)}
        response = client.post("/api/tasks/bulk", json=body)
        if response.status_code != 202:
            raise Failed(response.text)
        ids += [task["id"] for task in response.json()["tasks"]]
    return ids


def counts(client: httpx.Client) -> dict[str, Any]:
    result: dict[str, Any] = client.get("/api/stats").json()
    return result


def finished(client: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    tasks = [client.get(f"/api/tasks/{task_id}").json() for task_id in ids]
    return tasks if all(task["status"] == "completed" for task in tasks) else []


def measure(client: httpx.Client, args: argparse.Namespace, mode: str) -> dict[str, Any]:
    _, small_group = MODES[mode]
    began = time.monotonic()
    wait_until(lambda: counts(client)["completed"] > 0, 60, "the big tasks to start")
    ahead = counts(client)["waiting"]
    small = enqueue(client, args.small, args.task_ms, small_group)
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = finished(client, small)
        return bool(found)

    wait_until(done, args.big / 100 + 60, f"the {args.small} small tasks")
    delays = [float(millis(t["startedAt"]) - millis(t["createdAt"])) for t in found]
    return {
        "mode": mode,
        "big": args.big,
        "small": args.small,
        "ahead": ahead,
        "big_done": counts(client)["completed"] - args.small,
        "seconds": time.monotonic() - began,
        "start_delay_ms": stats(delays),
    }


def run_mode(args: argparse.Namespace, mode: str, redis_url: str, work: Path) -> dict[str, Any]:
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        FILES_BASE_DIR=str(work / "files"),
        LOG_LEVEL="WARNING",
    )
    port = free_port()
    api = [str(BIN / "conveyor"), "api", "--port", str(port)]
    procs = [Proc(api, env, work / f"api-{mode}.log").start()]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_until(lambda: answers(client), 30, "the API")
            # The whole backlog is there before any worker: the small tasks meet all of it.
            enqueue(client, args.big, args.task_ms, MODES[mode][0])
            for i in range(args.workers):
                argv = [str(BIN / "conveyor"), "worker", "--concurrency", str(args.concurrency)]
                procs.append(Proc(argv, env, work / f"worker-{mode}-{i}.log").start())
            result = measure(client, args, mode)
        for proc in procs:
            proc.check_alive()
        return result
    finally:
        for proc in procs:
            proc.stop()


def run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    redis_port = free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    cli = ["redis-cli", "-p", str(redis_port)]
    ping = [*cli, "ping"]
    wait_until(lambda: not subprocess.run(ping, check=False, capture_output=True).returncode, 9, "")
    try:
        results = []
        for mode in args.modes:
            subprocess.run([*cli, "flushall"], check=True, capture_output=True)
            results.append(run_mode(args, mode, f"redis://127.0.0.1:{redis_port}/0", work))
        return results
    finally:
        redis_server.terminate()
        redis_server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=5_000, help="tasks of the large group")
    parser.add_argument("--small", type=int, default=20, help="tasks of the small group")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--task-ms", type=int, default=0, help="each task's sleep")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"group-fairness-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(f"{args.workers} workers x concurrency {args.concurrency}, tasks of {args.task_ms} ms")
    print()
    print("| mode | big | ahead | small | big done | start delay p50 ms | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        s = r["start_delay_ms"]
        print(
            f"| {r['mode']} | {r['big']} | {r['ahead']} | {r['small']} | {r['big_done']} "
            f"| {s['p50']:.0f} | {s['p99']:.0f} | {s['max']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
