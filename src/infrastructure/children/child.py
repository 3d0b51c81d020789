"""A child process's life: import the task modules, then run jobs until the worker hangs up."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from application.handlers import FenceLost, Logger
from application.registry import TaskRegistry
from application.running.children import ChildJob, child_registry, run_job
from domain.values import FencedWrite
from infrastructure.logging import bind_task, configure_logging, get_logger
from infrastructure.redis.keys import effect_key

# How the worker's answer to a fenced write names a refusal: raised in the handler as these.
REFUSALS: dict[str, type[Exception]] = {"fence_lost": FenceLost, "invalid": ValueError}
PROGRESS_INTERVAL_S = 0.05  # a handler may report in a tight loop: the pipe sees the latest
ORPHAN_CHECK_S = 1.0
_NOTHING = object()


@dataclass(frozen=True)
class ChildSpec:
    """What every child of a worker is started with (sent once, over the spawn pipe)."""

    modules: tuple[str, ...]
    context: dict[str, Any]
    log_level: str = "INFO"
    log_format: str = "auto"
    secrets: tuple[str, ...] = ()


def serve(conn: Connection, spec: ChildSpec) -> None:
    """The child's main: says "ready" once its modules are imported, then answers each
    job with ("progress", value)... and one ("done", result) or ("failed", failure); a
    ("write", FencedWrite) waits for ("written", reply) or ("refused", (why, message))."""
    # Ctrl-C reaches the whole process group: the worker decides what its children do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(spec.log_level, spec.log_format, spec.secrets)
    _leave_with(os.getppid())
    log = get_logger("conveyor.child")
    try:
        _answer_jobs(conn, child_registry(spec.modules, spec.context), log)
    except (EOFError, BrokenPipeError):
        return  # the worker closed its end (it is stopping) or is gone
    except Exception:
        # Logged as a JSON line like the worker's own, not printed by multiprocessing.
        log.exception("child.crashed")
        raise SystemExit(1) from None


def _answer_jobs(conn: Connection, registry: TaskRegistry, log: Logger) -> None:
    progress = _Progress(conn)
    conn.send(("ready", None))

    def write(fenced: FencedWrite) -> Any:
        """A fenced write, carried out by the worker: the pipe's one question with an
        answer (the worker sends nothing else while a job runs)."""
        progress.flush()  # what the handler reported before it wrote comes first
        conn.send(("write", fenced))
        kind, value = conn.recv()
        if kind == "written":
            return value
        refusal, message = value
        raise REFUSALS.get(refusal, RuntimeError)(message)

    while True:
        job: ChildJob = conn.recv()
        bind_task(task_id=job.task_id, task_name=job.task_name, queue=job.queue,
                  attempt=job.attempt, worker_id=job.worker_id)  # fmt: skip
        reply = run_job(registry, job, progress.report, log, write=write, effect_key=effect_key)
        progress.flush()
        conn.send(reply)


def _leave_with(parent: int) -> None:
    """A child never outlives its worker: one killed with SIGKILL cannot end its children,
    and a child busy with a handler does not see the pipe close; it sees its new parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="orphan-guard", daemon=True).start()


class _Progress:
    """The handler's progress, to the worker: the latest value at most every
    PROGRESS_INTERVAL_S, and the last one before the reply."""

    __slots__ = ("_conn", "_pending", "_sent_at")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pending: Any = _NOTHING
        self._sent_at = 0.0

    def report(self, progress: Any) -> None:
        self._pending = progress
        if time.monotonic() - self._sent_at >= PROGRESS_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        if self._pending is _NOTHING:
            return
        progress, self._pending = self._pending, _NOTHING
        self._sent_at = time.monotonic()
        self._conn.send(("progress", progress))
