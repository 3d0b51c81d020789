"""docs/dashboard.png: the dashboard's overview, taken in Debian's Chromium (`make screenshot`).

Starts a Redis of its own (a temporary folder, a free port), an API with an admin key and
two workers; puts some work through (tasks that complete, run for a while, fail, wait for
later, and a schedule); logs in; and takes the overview once the counts show it. Nothing of
yours is touched: every process and the Redis stop at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect, sync_playwright

from infrastructure.embedded_redis import EmbeddedRedis

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboard.png"
CHROMIUM = "/usr/bin/chromium"
KEY = "screenshot-admin-key-0123456789abcdef"
CONVEYOR = [sys.executable, "-m", "interfaces.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise SystemExit(f"screenshot: gave up waiting for {what}")


def answers(http: httpx.Client) -> bool:
    try:
        return http.get("/ready").status_code == 200
    except httpx.HTTPError:
        return False


def put_work_through(http: httpx.Client) -> None:
    http.post(
        "/api/schedules",
        json={"name": "nightly-report", "cron": "0 2 * * *", "timezone": "Europe/Paris",
              "task": {"taskName": "echo", "payload": {"report": "nightly"}}},
    ).raise_for_status()  # fmt: skip
    http.post(
        "/api/schedules",
        json={"name": "heartbeat", "everyMs": 60_000, "task": {"taskName": "echo", "payload": {}}},
    ).raise_for_status()
    tasks: list[dict[str, Any]] = []
    for i in range(120):
        tasks.append({"taskName": "echo", "payload": {"order": i}, "queue": "default"})
    for i in range(40):
        tasks.append({"taskName": "sleep", "payload": {"ms": 40 + i * 5}, "queue": "reports"})
    for i in range(6):
        tasks.append({"taskName": "fail", "payload": {"message": f"card declined ({i})",
                      "retryable": False}, "queue": "default"})  # fmt: skip
    tasks += [{"taskName": "sleep", "payload": {"ms": 20_000}, "queue": "reports"}] * 4
    for i in range(15):
        tasks.append({"taskName": "echo", "payload": {"later": i}, "delayMs": 3_600_000})
    http.post("/api/tasks/bulk", json={"tasks": tasks}).raise_for_status()


def main() -> int:
    if not Path(CHROMIUM).exists():
        print(f"screenshot: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="conveyor-screenshot-"))
    redis = EmbeddedRedis(work / "redis", port=free_port())
    procs: list[subprocess.Popen[bytes]] = []
    port = free_port()
    env = dict(
        os.environ,
        REDIS_URL=redis.url,
        QUEUES="default,reports",
        API_KEYS=f"ops:{KEY}:admin",
        HOST="127.0.0.1",
        FILES_BASE_DIR=str(work / "files"),
        LOG_LEVEL="WARNING",
    )
    try:
        redis.start()
        logs = (work / "processes.log").open("wb")
        procs.append(subprocess.Popen([*CONVEYOR, "api", "--port", str(port)], env=env,
                                      stdout=logs, stderr=logs))  # fmt: skip
        for _ in range(2):
            procs.append(subprocess.Popen([*CONVEYOR, "worker", "--concurrency", "4",
                                           "--queues", "default,reports"],
                                          env=env, stdout=logs, stderr=logs))  # fmt: skip
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}) as http:
            wait_for(lambda: answers(http), "the API")
            put_work_through(http)
            wait_for(lambda: http.get("/api/stats").json()["completed"] >= 120, "tasks to run")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"http://127.0.0.1:{port}/admin/queues")
            page.get_by_test_id("key").fill(KEY)
            page.get_by_test_id("login-submit").click()
            expect(page.get_by_test_id("live")).to_have_text("live", timeout=15_000)
            expect(page.get_by_test_id("worker")).to_have_count(2, timeout=15_000)
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
        print(f"screenshot: wrote {OUT.relative_to(HERE.parent)}")
        return 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
