"""What a worker does besides running tasks: renew their leases, obey stop requests,
recover stalls, sweep old tasks, say it is alive and fire schedules, each a loop of its
own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from application.meter import STALLS_RECOVERED, Meter
from application.recover_stalled import RecoverStalled
from application.running.execution import Execution
from application.running.leases import LeaseKeeper
from application.schedules import FireSchedules
from application.sweep_finished import SweepFinished
from application.workers import Heartbeat
from domain.ports import ITaskFeed
from domain.task import Interruption, StopKind
from domain.values import StopRequest

SWEEP_BATCH = 1_000  # tasks one sweep removes from a queue at most
# How often a worker looks for leases that ran out: a dead worker's task is taken over
# within its lease and this (plus a claim), whatever LOCK_TTL_MS is.
RECOVERY_INTERVAL_S = 0.5


def recovery_interval_s(lease_ms: int) -> float:
    """Half a second, or a quarter of a lease shorter than two seconds."""
    return min(RECOVERY_INTERVAL_S, max(lease_ms / 4_000, 0.05))


@dataclass(frozen=True)
class WorkerState:
    """What the chores read of their worker, as it is at each moment."""

    worker_id: str
    queues: list[str]
    concurrency: int
    lease_ms: int
    started_at: int
    running: Callable[[], Sequence[Execution]]
    processed: Callable[[], int]


class Chores:
    """The worker's background loops; each survives its own failures and tries again."""

    def __init__(
        self,
        *,
        feed: ITaskFeed,
        keeper: LeaseKeeper,
        recover: RecoverStalled,
        sweep: SweepFinished,
        heartbeat: Heartbeat,
        schedules: FireSchedules,
        log: Any,
        meter: Meter | None = None,
    ) -> None:
        self._meter = meter or Meter()
        self._feed = feed
        self._keeper = keeper
        self._recover = recover
        self._sweep = sweep
        self._heartbeat = heartbeat
        self._schedules = schedules
        self._log = log

    def start(self, worker: WorkerState) -> list[asyncio.Task[None]]:
        loops = (self._renew, self._obey_stop_requests, self._recover_loop, self._sweep_loop,
                 self._beat)  # fmt: skip
        return [*(asyncio.create_task(loop(worker)) for loop in loops),
                asyncio.create_task(self._schedules.run())]  # fmt: skip

    async def _renew(self, worker: WorkerState) -> None:
        """Every running task's lease, in one round every TTL/3 (sooner when one is about to
        run out), for as long as the worker runs: they are renewed until they settle."""
        while True:
            running = worker.running()
            await asyncio.sleep(self._keeper.pause_ms(running, worker.lease_ms) / 1000)
            try:
                await self._keeper.renew(worker.running(), worker.lease_ms)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                self._log.warning("worker.renewal_failed", error=repr(exc))

    async def _obey_stop_requests(self, worker: WorkerState) -> None:
        """Operators' cancel and kill requests reach the handlers running here."""
        while True:
            try:
                async for request in self._feed.stop_requests(worker.queues):
                    _stop(worker.running(), request)
            except Exception as exc:  # noqa: BLE001 - resubscribe; renewals catch cancels meanwhile
                self._log.warning("worker.stop_requests_lost", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _recover_loop(self, worker: WorkerState) -> None:
        """Stalled tasks back to the queue, soon after their lease runs out: one read of
        the active set per queue and round, a script per stalled task."""
        interval = recovery_interval_s(worker.lease_ms)
        while True:
            await asyncio.sleep(interval)
            for name in worker.queues:
                try:
                    recovered = await self._recover.execute(name)
                except Exception as exc:  # noqa: BLE001 - retried on the next round
                    self._log.warning("worker.recovery_failed", queue=name, error=repr(exc))
                    continue
                if recovered:
                    self._meter.count(STALLS_RECOVERED, recovered, name)

    async def _sweep_loop(self, worker: WorkerState) -> None:
        """Retention: every worker sweeps now and then, at once again while a queue had
        more to remove than one sweep takes; the script makes it safe to race."""
        behind = False
        while True:
            await asyncio.sleep(0 if behind else self._sweep.interval_s)
            behind = False
            for name in worker.queues:
                behind = await self._sweep_queue(name) >= SWEEP_BATCH or behind

    async def _sweep_queue(self, name: str) -> int:
        try:
            removed = await self._sweep.execute(name, SWEEP_BATCH)
        except Exception as exc:  # noqa: BLE001 - retried on the next round
            self._log.warning("worker.sweep_failed", queue=name, error=repr(exc))
            return 0
        if removed:
            self._log.info("worker.swept", queue=name, removed=removed)
        return removed

    async def _beat(self, worker: WorkerState) -> None:
        while True:
            try:
                await self._heartbeat.beat(
                    worker.worker_id,
                    queues=worker.queues,
                    concurrency=worker.concurrency,
                    running=len(worker.running()),
                    processed=worker.processed(),
                    started_at=worker.started_at,
                )
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                self._log.warning("worker.heartbeat_failed", error=repr(exc))
            await asyncio.sleep(self._heartbeat.interval_ms / 1000)

    async def forget(self, worker: WorkerState) -> None:
        """The worker stopped cleanly: it is gone at once, not three beats later."""
        await self._heartbeat.stop(worker.worker_id)


def _stop(running: Sequence[Execution], request: StopRequest) -> None:
    reason = Interruption.CANCELLED if request.kind is StopKind.CANCEL else Interruption.KILLED
    for execution in running:
        task = execution.task
        if task.id == request.task_id and task.queue == request.queue:
            execution.abort(reason, "requested by an operator")
