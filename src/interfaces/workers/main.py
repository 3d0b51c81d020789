"""The worker process's entry point: wiring, signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dependency_injector import providers

from infrastructure.logging import configure_logging, get_logger
from infrastructure.redaction import secrets_in
from infrastructure.settings import Settings
from interfaces.container import Container, new_worker_id, resolve
from interfaces.workers.chores import Chores
from interfaces.workers.worker import Worker


def run_worker(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format, secrets_in(settings))
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(settings))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it exists: a worker is CPU-bound on its event loop."""
    try:
        import uvloop  # noqa: PLC0415 - optional: not on every platform
    except ImportError:
        return None
    return uvloop.new_event_loop


def _unserved_queues(settings: Settings, configured: list[str]) -> str | None:
    """What is wrong with the queues the worker is asked to serve, if anything."""
    unknown = [name for name in settings.worker_queue_list if name not in configured]
    if unknown:
        return (
            f"--queues names {', '.join(unknown)}: not configured (QUEUES: {','.join(configured)})"
        )
    return None


async def _serve(settings: Settings) -> int:
    container = Container()
    container.settings.override(providers.Object(settings))
    problem = _unserved_queues(settings, container.queues())
    if problem is not None:
        print(f"conveyor: {problem}", file=sys.stderr)  # noqa: T201 - a CLI error
        return 2
    await container.init_resources()  # type: ignore[misc]
    # Sync handlers run in threads: one per slot, so none waits for a free thread.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=settings.worker_concurrency))
    feed = await resolve(container.feed)
    chores = Chores(
        feed=feed,
        keeper=await resolve(container.lease_keeper),
        recover=await resolve(container.recover_stalled),
        sweep=await resolve(container.sweep_finished),
        heartbeat=await resolve(container.heartbeat),
        schedules=await resolve(container.fire_schedules),
        meter=await resolve(container.meter),
        log=get_logger("conveyor.worker"),
    )
    worker = Worker(
        queue=await resolve(container.queue),
        feed=feed,
        process=await resolve(container.process_task),
        chores=chores,
        queues=settings.worker_queue_order,
        concurrency=settings.worker_concurrency,
        worker_id=new_worker_id(),
        lease_ms=settings.lock_ttl_ms,
        grace_s=settings.shutdown_grace_ms / 1000,
        clock=container.clock(),
        log=get_logger("conveyor.worker"),
    )
    _install_signals(loop, worker)
    try:
        await worker.run()
    finally:
        await container.shutdown_resources()  # type: ignore[misc]
    return 0


def _install_signals(loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    log = get_logger("conveyor.worker")
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            log.info("worker.stopping", signal=signal.Signals(signum).name)
            worker.stop()
            return
        # A second signal: leave now. Running tasks are recovered once their leases expire.
        log.warning("worker.exit_now", signal=signal.Signals(signum).name)
        os._exit(1)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
