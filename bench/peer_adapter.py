"""Conveyor's rows for the peers harness (../shared/bench/peers, loaded via BENCH_EXTRA_ADAPTERS).

This file is imported twice: by the harness driver (its own venv, where Conveyor is not
installed, so nothing of Conveyor is imported at module level) and by the harness's
client.py, run with Conveyor's venv (`venv` below). Both run with cwd and PYTHONPATH set to
the harness's peers/ folder.

Rows:
- "conveyor": enqueue through EnqueueTask (payload validation + one Lua script per task;
  execute_many for bulk: one pipelined round trip per chunk), like the peers' direct enqueue.
- "conveyor-http": enqueue by POST /api/tasks (bulk: POST /api/tasks/bulk, at most 1,000
  tasks a request) to a `conveyor api` the driver starts around each client run, over one
  kept-open HTTP connection.
Both use ONE `conveyor worker` process; every task runs under its Redlock lock:task:<id>.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from typing import Any

from adapters.base import PEERS_DIR, Adapter, venv_bin
from jobs.shared import QUEUE, REDIS_URL

HERE = os.path.dirname(os.path.abspath(__file__))  # <project>/bench
VENV = os.path.join(os.path.dirname(HERE), ".venv")
TASK_MODULE = "peer_tasks"  # bench/peer_tasks.py
CONCURRENCY = 50  # Conveyor's default is 10; the Python peers run at 50 (saq) or 8 threads
LOCK_TTL_MS = 30_000  # Conveyor's default LOCK_TTL_MS, stated explicitly
FILES_DIR = os.path.join("/tmp", "conveyor-bench-files")  # FILES_BASE_DIR: never under peers/
PORT_VAR = "BENCH_CONVEYOR_API_PORT"
BULK_LIMIT = 1_000  # tasks per POST /api/tasks/bulk


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The driver picks the API port once; its children (client.py) inherit it through the env.
if not os.environ.get(PORT_VAR):
    os.environ[PORT_VAR] = str(_free_port())
API_PORT = int(os.environ[PORT_VAR])


def _env_argv() -> list[str]:
    """`env VAR=... ` prefix: Conveyor's settings, and bench/ + peers/ importable."""
    return [
        "env",
        f"REDIS_URL={REDIS_URL}",
        f"CONVEYOR_TASK_MODULES={TASK_MODULE}",
        f"PYTHONPATH={HERE}{os.pathsep}{PEERS_DIR}",
        f"FILES_BASE_DIR={FILES_DIR}",
        f"LOCK_TTL_MS={LOCK_TTL_MS}",
        "LOG_LEVEL=WARNING",
        "LOG_FORMAT=json",
    ]


def _payload(args: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
    return {"t_ref": float(args[0])} if args else {}


def _delay_ms(delay: float | None) -> int | None:
    return round(delay * 1000) if delay else None


class Conveyor(Adapter):
    name = "conveyor"
    venv = VENV
    packages = ("conveyor", "redis", "hiredis", "pottery", "pydantic", "structlog")
    concurrency = f"1 process, asyncio, --concurrency {CONCURRENCY} (default 10)"
    has_bulk = True
    bulk_api = "EnqueueTask.execute_many (one pipeline of EVALSHA per call)"
    notes = (
        "every task runs under its Redlock lock:task:<id> (one master: the queue's Redis; "
        f"TTL {LOCK_TTL_MS} ms = the LOCK_TTL_MS default, renewed every TTL/3 while a task "
        "runs): the claim script takes it with a value pottery can extend and release, and "
        "the settle script releases it; no peer pays for a lock.",
        "per task: job body + settle (one Lua call that records the outcome, releases the "
        "lock and claims the next task with its lock); completed tasks are kept in Redis "
        "(no retention bound).",
        "worker LOG_LEVEL=WARNING (the default INFO writes one JSON line per task outcome).",
        "enqueue = EnqueueTask.execute in the client process (pydantic validation of the "
        "payload + one Lua script per task), not over HTTP; see conveyor-http for that.",
    )

    def worker_cmd(self, workload: str) -> list[str]:
        return [
            *_env_argv(),
            venv_bin(self.venv, "conveyor"),
            "worker",
            "--concurrency",
            str(CONCURRENCY),
            "--queues",
            QUEUE,
        ]

    # ---- client side (client.py, in Conveyor's venv) ----
    async def connect(self) -> None:
        from dependency_injector import providers  # noqa: PLC0415 - Conveyor's venv only

        from infrastructure.settings import Settings  # noqa: PLC0415
        from interfaces.container import Container, resolve  # noqa: PLC0415

        if HERE not in sys.path:
            sys.path.insert(0, HERE)  # the task module, for the registry
        settings = Settings(redis_url=REDIS_URL, task_modules=TASK_MODULE, files_base_dir=FILES_DIR)
        self.container = Container()
        self.container.settings.override(providers.Object(settings))
        await self.container.init_resources()
        self.enqueue_task = await resolve(self.container.enqueue_task)

    async def enqueue_one(self, job: str, args: tuple[Any, ...] = (), delay: Any = None) -> None:
        from application.enqueue_task import EnqueueRequest  # noqa: PLC0415

        await self.enqueue_task.execute(
            EnqueueRequest(job, _payload(args), delay_ms=_delay_ms(delay))
        )

    async def enqueue_bulk(self, job: str, args_list: list[tuple[Any, ...]]) -> None:
        from application.enqueue_task import EnqueueRequest  # noqa: PLC0415

        await self.enqueue_task.execute_many(
            [EnqueueRequest(job, _payload(args)) for args in args_list]
        )

    async def close(self) -> None:
        await self.container.shutdown_resources()


class ConveyorHttp(Conveyor):
    name = "conveyor-http"
    packages = (*Conveyor.packages, "litestar", "uvicorn", "httpx")
    bulk_api = "POST /api/tasks/bulk (one request and one pipelined round trip per chunk)"
    notes = (
        "enqueue = POST /api/tasks to one `conveyor api` process (litestar + uvicorn, "
        "LOG_LEVEL=WARNING) over one kept-open httpx connection, each call awaited: JSON, "
        "validation and the 202 response included; bulk = POST /api/tasks/bulk the same way.",
        "worker: the same single `conveyor worker` process as the conveyor row.",
    )

    def service_cmd(self) -> list[str]:
        return [
            *_env_argv(),
            venv_bin(self.venv, "conveyor"),
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(API_PORT),
        ]

    def service_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{API_PORT}/ready", timeout=0.5
            ) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    async def connect(self) -> None:
        import httpx  # noqa: PLC0415 - Conveyor's venv only

        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{API_PORT}",
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=30.0,
        )

    async def enqueue_one(self, job: str, args: tuple[Any, ...] = (), delay: Any = None) -> None:
        body: dict[str, Any] = {"taskName": job, "payload": _payload(args)}
        delay_ms = _delay_ms(delay)
        if delay_ms:
            body["delayMs"] = delay_ms
        response = await self.http.post("/api/tasks", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"POST /api/tasks: {response.status_code} {response.text[:300]}")

    async def enqueue_bulk(self, job: str, args_list: list[tuple[Any, ...]]) -> None:
        for first in range(0, len(args_list), BULK_LIMIT):
            chunk = args_list[first : first + BULK_LIMIT]
            body = {"tasks": [{"taskName": job, "payload": _payload(args)} for args in chunk]}
            response = await self.http.post("/api/tasks/bulk", json=body)
            if response.status_code != 202:
                raise RuntimeError(
                    f"POST /api/tasks/bulk: {response.status_code} {response.text[:300]}"
                )

    async def close(self) -> None:
        await self.http.aclose()


ADAPTERS = [Conveyor(), ConveyorHttp()]
