"""Schedule lateness: how late a 1-second schedule's slots become tasks, and start.

Run with the project's venv (a benchmark, not a test):

    .venv/bin/python bench/schedule_lateness.py              # 5 minutes
    .venv/bin/python bench/schedule_lateness.py --minutes 1

It starts its own `redis-server --port <free> --save "" --appendonly no`, --apis
`conveyor api` and --workers `conveyor worker` processes (every one of them fires
schedules), creates a schedule `lateness` with `everyMs` --every-ms firing the demo `echo`
task, waits --minutes, deletes the schedule, waits for the tasks to finish and stops
everything by PID. From the tasks (id `schedule:lateness:<slot ms>`):

- fire lateness: the task's `createdAt` - its slot (how late the firing process was);
- start lateness: `startedAt` - slot (fire lateness plus a worker's pickup);
- slots fired, missing (a gap between the first and the last) and fired twice (none can
  be: the id names the slot).

Prints a markdown table; writes bench/results/schedule-lateness-<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench_conveyor import Failed, Proc, free_port, stats

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
NAME = "lateness"


def millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise Failed(f"timed out waiting for {what}")
        time.sleep(0.1)


def answers(client: httpx.Client) -> bool:
    try:
        return client.get("/ready").status_code == 200
    except httpx.HTTPError:
        return False


def schedule_tasks(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"search": f"schedule:{NAME}:", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/tasks", params=params).json()
        found += [t for t in page["items"] if t["id"].startswith(f"schedule:{NAME}:")]
        cursor = page.get("nextCursor")
        if not cursor:
            return found


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    redis_port = free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    procs: list[Proc] = []
    env = dict(
        os.environ,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        LOG_FORMAT="json",
        FILES_BASE_DIR=str(work / "files"),
    )
    ports = [free_port() for _ in range(args.apis)]
    try:
        for i, port in enumerate(ports):
            argv = [str(BIN / "conveyor"), "api", "--port", str(port)]
            procs.append(Proc(argv, env, work / f"api-{i}.log").start())
        for i in range(args.workers):
            argv = [str(BIN / "conveyor"), "worker"]
            procs.append(Proc(argv, env, work / f"worker-{i}.log").start())
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10) as client:
            wait_until(lambda: answers(client), 30, "the API")
            body = {"name": NAME, "everyMs": args.every_ms, "task": {"taskName": "echo"}}
            created = client.post("/api/schedules", json=body)
            if created.status_code != 201:
                raise Failed(created.text)
            time.sleep(args.minutes * 60)
            for proc in procs:
                proc.check_alive()
            client.delete(f"/api/schedules/{NAME}")
            tasks = schedule_tasks(client)
            wait_until(
                lambda: all(t["status"] == "completed" for t in schedule_tasks(client)),
                60,
                "the fired tasks to finish",
            )
            tasks = schedule_tasks(client)
    finally:
        for proc in procs:
            proc.stop()
        redis_server.terminate()
        redis_server.wait()
    slots = sorted(int(t["id"].rsplit(":", 1)[1]) for t in tasks)
    expected = (slots[-1] - slots[0]) // args.every_ms + 1 if slots else 0
    fire = [millis(t["createdAt"]) - int(t["id"].rsplit(":", 1)[1]) for t in tasks]
    start = [millis(t["startedAt"]) - int(t["id"].rsplit(":", 1)[1]) for t in tasks]
    return {
        "minutes": args.minutes,
        "every_ms": args.every_ms,
        "apis": args.apis,
        "workers": args.workers,
        "slots_fired": len(slots),
        "slots_missing": expected - len(set(slots)),
        "slots_fired_twice": len(slots) - len(set(slots)),
        "fire_lateness_ms": stats([float(v) for v in fire]),
        "start_lateness_ms": stats([float(v) for v in start]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--every-ms", type=int, default=1_000)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"schedule-lateness-{stamp}.json").write_text(json.dumps(result, indent=2))
    print("| measure | n | p50 | p95 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in ("fire_lateness_ms", "start_lateness_ms"):
        s = result[key]
        cells = " | ".join(f"{s[q]:.1f}" for q in ("p50", "p95", "p99", "max"))
        print(f"| {key} | {s['n']:.0f} | {cells} |")
    print(
        f"slots fired {result['slots_fired']}, missing {result['slots_missing']}, "
        f"fired twice {result['slots_fired_twice']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
