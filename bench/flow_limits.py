"""Flow limit accuracy: starts per second achieved under a queue's rate limit, against the
rate configured, with several worker processes claiming.

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/flow_limits.py                       # rates 50, 200, 1000 /s
    .venv/bin/python bench/flow_limits.py --rates 100 --seconds 10

It starts its own `redis-server` (no persistence), one `conveyor api` and --workers
`conveyor worker --concurrency 50` processes, and for each rate: sets the `default` queue's
limit to `{rate: {max: R, windowMs: 1000}}`, enqueues R * --seconds `echo` tasks in one
bulk request, waits for them all, and reads each task's `startedAt` (the claim, on the
claiming worker's clock). Achieved = starts in the first --seconds - 1 whole windows from
the first start, per second; busiest = the most starts in any one second (the limit says
at most R). Prints a markdown table; writes bench/results/flow-limits-<stamp>.json.
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

from bench_conveyor import Proc, free_port
from schedule_lateness import answers, millis, wait_until

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"


def starts_of(client: httpx.Client) -> list[int]:
    found: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"taskName": "echo", "status": "completed", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/tasks", params=params).json()
        found += [millis(task["startedAt"]) for task in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            return sorted(found)


def measure(client: httpx.Client, rate: int, seconds: int) -> dict[str, Any]:
    client.put("/api/queues/default/limits", json={"rate": {"max": rate, "windowMs": 1000}})
    count = rate * seconds
    for first in range(0, count, 1000):
        chunk = [{"taskName": "echo", "payload": {"n": n}} for n in range(first, first + 1000)]
        client.post("/api/tasks/bulk", json={"tasks": chunk[: count - first]})

    def done() -> bool:
        return bool(client.get("/api/stats").json()["completed"] >= count)

    wait_until(done, seconds * 3 + 30, f"{count} tasks at {rate}/s")
    starts = starts_of(client)
    whole = seconds - 1
    achieved = sum(1 for t in starts if t < starts[0] + whole * 1000) / whole
    busiest = max(sum(1 for t in starts[i:] if t < first + 1000) for i, first in enumerate(starts))
    return {"rate": rate, "tasks": count, "achieved": achieved, "busiest_second": busiest}


def run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    redis_port = free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    ping = ["redis-cli", "-p", str(redis_port), "ping"]
    wait_until(lambda: not subprocess.run(ping, check=False, capture_output=True).returncode, 9, "")
    port = free_port()
    procs: list[Proc] = []
    results = []
    try:
        for rate in args.rates:
            subprocess.run(["redis-cli", "-p", str(redis_port), "flushall"], check=True)
            env = dict(
                os.environ,
                REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
                FILES_BASE_DIR=str(work / "files"),
                LOG_LEVEL="WARNING",
            )
            api = [str(BIN / "conveyor"), "api", "--port", str(port)]
            procs = [Proc(api, env, work / f"api-{rate}.log").start()]
            for i in range(args.workers):
                argv = [str(BIN / "conveyor"), "worker", "--concurrency", "50"]
                procs.append(Proc(argv, env, work / f"worker-{rate}-{i}.log").start())
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                wait_until(lambda: answers(client), 30, "the API")
                results.append(measure(client, rate, args.seconds))
            for proc in procs:
                proc.stop()
    finally:
        for proc in procs:
            proc.stop()
        redis_server.terminate()
        redis_server.wait()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"flow-limits-{stamp}.json").write_text(json.dumps(results, indent=2))
    print("| configured /s | tasks | achieved /s | achieved / configured | busiest second |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = r["achieved"] / r["rate"]
        print(
            f"| {r['rate']} | {r['tasks']} | {r['achieved']:.1f} | {ratio:.3f} "
            f"| {r['busiest_second']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
