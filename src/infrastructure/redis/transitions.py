"""RedisTransitions: ITaskTransitions on redis-py asyncio, every transition one Lua script."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from domain.admission import DepthLimits
from domain.errors import NotReplicated
from domain.task import StopKind, Task, TaskStatus
from domain.values import ClaimBatch, ClaimRequest, Enqueued, FencedWrite, Lease, LeaseState
from infrastructure.redis import codec, storing
from infrastructure.redis.claiming import ClaimOne, queue_by_queue
from infrastructure.redis.client import database_of
from infrastructure.redis.keys import effect_key, keys_of, task_lock
from infrastructure.redis.lane import Script, ScriptLane
from infrastructure.redis.limits import DURATIONS_KEPT, FINISHED_COUNTER_TTL_MS, PROMOTE_LIMIT
from infrastructure.redis.queries import RedisViews
from infrastructure.redis.reachable import reachable
from infrastructure.redis.scripts import Code, Scripts, raise_for
from infrastructure.redis.storing import IdIndexApart

_TERMINAL = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
_LIMITS = codec.encode_json(
    {
        "promote": PROMOTE_LIMIT,
        "durations_kept": DURATIONS_KEPT,
        "finished_ttl": FINISHED_COUNTER_TTL_MS,
    }
)
_LEASE_STATES = {Code.OK: LeaseState.HELD, Code.CANCEL_REQUESTED: LeaseState.CANCEL_REQUESTED}


class RedisTransitions:
    """The queue's state in Redis: a hash per task, a sorted set per status, and indexes.

    The client must decode responses to str. The scripts run over `lane`; the reads
    (expired tasks, sweep candidates) and the pause flag go over `client`.
    `idempotency_window_ms` is how long a removed task's id keeps answering "removed" to
    a repeated enqueue. With `locks_with_tasks` (the lock's one master is this Redis), a
    claim takes each task's lock `lock:task:<id>`, the settle releases it and renewals
    renew it, in the scripts that move the task: no round trip of its own per task.
    Otherwise the lock service takes them (several masters, or a lock in another hash slot).
    With `multi_queue_scripts` (one Redis, not a Cluster) a claim over several queues is
    one script, and the scripts keep the id index; without, every script touches one
    queue's hash slot: a claim goes queue by queue, and the id index, in slots of its own,
    is kept around the scripts (see storing.IdIndexApart).
    An enqueue that would take a queue past its limit in `depth_limits` stores nothing
    and raises QueueFull; with no limit it costs nothing more.
    """

    def __init__(
        self,
        client: Redis,
        lane: ScriptLane,
        idempotency_window_ms: int,
        *,
        locks_with_tasks: bool = False,
        multi_queue_scripts: bool = True,
        depth_limits: DepthLimits = storing.NO_LIMITS,
        replicas: int = 0,
        replicas_timeout_ms: int = 0,
    ) -> None:
        self._redis = client
        self._replicas = replicas
        self._replicas_timeout_ms = replicas_timeout_ms
        self._lane = lane
        self._scripts = Scripts.load(database_of(client))
        self._window_ms = idempotency_window_ms
        self._locks_with_tasks = locks_with_tasks
        self._multi_queue_scripts = multi_queue_scripts
        self._index_apart = (
            None if multi_queue_scripts else IdIndexApart(client, idempotency_window_ms)
        )
        self._depth_limits = depth_limits
        self._reader = RedisViews(client, ())

    @reachable
    async def enqueue(self, tasks: Sequence[Task], batch_id: str | None = None) -> list[Enqueued]:
        script = self._scripts.enqueue_tasks
        limits = self._depth_limits
        stored = await storing.store(
            self._lane,
            self._redis,
            script,
            tasks,
            batch_id,
            limits=limits,
            index_apart=self._index_apart,
        )
        if self._replicas:
            await self._replicated()
        return stored

    async def _replicated(self) -> None:
        """WAIT on the lane, so it covers the writes just made: each is held by a replica
        before the caller is told the tasks are accepted, or the caller is told they may
        not be (stored on the master, which may yet lose them: enqueue again, same id)."""
        acked = await self._lane.execute("WAIT", self._replicas, self._replicas_timeout_ms)
        if int(acked) < self._replicas:
            raise NotReplicated(
                f"stored, but {acked} of {self._replicas} replicas confirmed it within "
                f"{self._replicas_timeout_ms} ms: enqueue again with the same id"
            )

    @reachable
    async def claim(
        self, queue: str, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> ClaimBatch:
        request = ClaimRequest(worker_id, limit, lease_ms, now)
        keys = keys_of(queue)
        reply = await self._run(
            self._scripts.claim_tasks,
            keys=_claim_keys(queue),
            args=[keys.prefix, queue, self._claim(request), PROMOTE_LIMIT],
        )
        return self._claimed(reply[0], reply[1:], lease_ms)

    @reachable
    async def claim_queues(
        self, quotas: Sequence[tuple[str, int]], request: ClaimRequest
    ) -> ClaimBatch:
        if len(quotas) == 1 or not self._multi_queue_scripts:
            return await queue_by_queue(self._claim_one(request), quotas, request.limit)
        keys: list[str] = []
        args: list[Any] = [self._claim(request), PROMOTE_LIMIT]
        for queue, quota in quotas:
            keys += _claim_keys(queue)
            args += [keys_of(queue).prefix, queue, quota]
        reply = await self._run(self._scripts.claim_queues, keys=keys, args=args)
        return self._claimed(reply[0], reply[1:], request.lease_ms)

    def _claim_one(self, request: ClaimRequest) -> ClaimOne:
        async def claim(queue: str, limit: int) -> ClaimBatch:
            return await self.claim(queue, request.worker_id, limit, request.lease_ms, request.now)

        return claim

    @reachable
    async def settle(
        self, task: Task, *, lease: Lease | None = None, then: ClaimRequest | None = None
    ) -> ClaimBatch:
        keys = keys_of(task.queue)
        script_keys = [keys.task(task.id), keys.active, keys.state(task.status), keys.marker]
        script_keys += [keys.seq, keys.delayed, keys.wait, keys.meta, keys.fence]
        lock = lease.token if lease is not None and lease.with_task else None
        if lock is not None:
            script_keys.append(task_lock(task.id))
        outcome = codec.encode_outcome(task, lock=lock)
        claim = self._claim(then) if then is not None else ""
        reply = await self._run(
            self._scripts.settle_task,
            keys=script_keys,
            args=[keys.prefix, task.queue, outcome, claim, _LIMITS],
        )
        raise_for(int(reply[0]), task.id)
        return self._claimed(reply[1], reply[2:], then.lease_ms if then else 0)

    @reachable
    async def recover(self, task: Task, expired_by: int) -> None:
        keys = keys_of(task.queue)
        code = await self._run(
            self._scripts.recover_task,
            keys=[
                keys.task(task.id),
                keys.active,
                keys.state(task.status),
                keys.marker,
                keys.seq,
                keys.delayed,
            ],
            args=[keys.prefix, task.queue, codec.encode_outcome(task), expired_by, _LIMITS],
        )
        raise_for(int(code), task.id)

    @reachable
    async def change(self, task: Task, previous: Task, *, stop: StopKind | None = None) -> None:
        keys = keys_of(task.queue)
        code = await self._run(
            self._scripts.change_task,
            keys=[
                keys.task(task.id),
                keys.state(previous.status),
                keys.state(task.status),
                keys.marker,
                keys.seq,
                keys.delayed,
            ],
            args=[
                keys.prefix,
                task.queue,
                codec.encode_outcome(task, previous),
                stop.value if stop else "",
                _LIMITS,
            ],
        )
        raise_for(int(code), task.id, operator=True)

    @reachable
    async def extend_leases(
        self, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[LeaseState]:
        by_queue: dict[str, list[int]] = {}
        for index, (task, _) in enumerate(held):
            by_queue.setdefault(task.queue, []).append(index)
        states: list[LeaseState] = [LeaseState.LOST] * len(held)
        for queue, indexes in by_queue.items():
            # The tasks whose lock renews here come first: the script renews the first m.
            ordered = sorted(indexes, key=lambda i: not _own(held[i][1]))
            codes = await self._extend(queue, [held[i] for i in ordered], lease_ms, now)
            for index, code in zip(ordered, codes, strict=True):
                states[index] = _LEASE_STATES.get(Code(int(code)), LeaseState.LOST)
        return states

    async def _extend(
        self, queue: str, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[Any]:
        keys = keys_of(queue)
        locks = [task_lock(task.id) for task, lease in held if _own(lease)]
        args: list[Any] = [now + lease_ms, lease_ms, len(locks)]
        for task, lease in held:
            args += [task.id, task.fence, lease.token if lease and _own(lease) else ""]
        task_keys = [keys.task(task.id) for task, _ in held]
        return cast(
            list[Any],
            await self._run(
                self._scripts.extend_leases, keys=[keys.active, *task_keys, *locks], args=args
            ),
        )

    @reachable
    async def request_cancel(self, task: Task) -> None:
        keys = keys_of(task.queue)
        code = await self._run(
            self._scripts.request_cancel, keys=[keys.task(task.id)], args=[task.id, keys.prefix]
        )
        raise_for(int(code), task.id, operator=True)

    @reachable
    async def set_progress(self, task: Task, progress: Any) -> None:
        code = await self._run(
            self._scripts.set_progress,
            keys=[keys_of(task.queue).task(task.id)],
            args=[task.fence, codec.encode_json(progress)],
        )
        raise_for(int(code), task.id)

    @reachable
    async def write_fenced(self, task: Task, write: FencedWrite) -> Any:
        keys = keys_of(task.queue)
        code, *reply = await self._run(
            self._scripts.write_fenced,
            keys=[keys.task(task.id), keys.effect(write.name)],
            args=[task.fence, write.command, *write.args],
        )
        if code == Code.WRONG_TYPE:
            raise ValueError(f"fenced write {write.command} {write.name!r}: {reply[0]}")
        raise_for(int(code), task.id)
        return None if write.command == "SET" else reply[0]

    def effect_key(self, queue: str, name: str) -> str:
        return effect_key(queue, name)

    @reachable
    async def expired(self, queue: str, now: int, limit: int) -> list[Task]:
        keys = keys_of(queue)
        ids = cast(
            list[str],
            await self._redis.zrangebyscore(keys.active, "-inf", f"({now}", start=0, num=limit),
        )
        return await self._reader.members((queue, task_id) for task_id in ids)

    @reachable
    async def remove(self, task: Task) -> None:
        keys = keys_of(task.queue)
        code = await self._run(
            self._scripts.remove_task,
            keys=[keys.task(task.id), keys.removed(task.id), self._owner(task.queue, task.id)],
            args=[task.id, self._window_ms, keys.prefix, task.queue],
        )
        raise_for(int(code), task.id, operator=True)
        if self._index_apart is not None:
            await self._index_apart.forgotten(task.queue, [task.id])

    @reachable
    async def sweep(
        self,
        queue: str,
        finished_before: Mapping[TaskStatus, int],
        limit: int,
        keep: Mapping[TaskStatus, int] | None = None,
    ) -> int:
        keys = keys_of(queue)
        cutoffs = [finished_before.get(status, 0) for status in _TERMINAL]
        counts = [(keep or {}).get(status, 0) for status in _TERMINAL]
        ids = await self._sweep_candidates(queue, cutoffs, counts, limit)
        if not ids:
            return 0
        per_task = [
            key
            for task_id in ids
            for key in (keys.task(task_id), keys.removed(task_id), self._owner(queue, task_id))
        ]
        removed = await self._run(
            self._scripts.sweep_tasks,
            keys=[*(keys.state(status) for status in _TERMINAL), *per_task],
            args=[*cutoffs, self._window_ms, keys.prefix, queue, *counts, *ids],
        )
        if self._index_apart is not None:
            await self._index_apart.forgotten(queue, removed)
        return len(removed)

    def _owner(self, queue: str, task_id: str) -> str:
        return storing.id_index_key(queue, task_id, apart=self._index_apart is not None)

    async def _sweep_candidates(
        self, queue: str, cutoffs: Sequence[int], counts: Sequence[int], limit: int
    ) -> list[str]:
        """The oldest finished tasks past their keeping time, or behind the newest `count`
        of their status (0: no such rule), at most `limit`, in one round trip; the sweep
        script checks each again."""
        keys = keys_of(queue)
        async with self._redis.pipeline(transaction=False) as pipe:
            for status, before, count in zip(_TERMINAL, cutoffs, counts, strict=True):
                state = keys.state(status)
                if before > 0:
                    pipe.zrangebyscore(state, "-inf", f"({before}", 0, limit)
                if count > 0:
                    pipe.zcard(state)
                    pipe.zrange(state, 0, limit - 1)
            found: list[Any] = await pipe.execute()
        ids: dict[str, None] = {}  # in order, once each
        replies = iter(found)
        for before, count in zip(cutoffs, counts, strict=True):
            if before > 0:
                ids.update(dict.fromkeys(next(replies)))
            if count > 0:
                beyond = max(int(next(replies)) - count, 0)
                ids.update(dict.fromkeys(next(replies)[:beyond]))
        return list(ids)[:limit]

    @reachable
    async def set_paused(self, queue: str, paused: bool) -> None:
        keys = keys_of(queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            if paused:
                pipe.hset(keys.meta, "paused", "1")
            else:
                pipe.hdel(keys.meta, "paused")
                pipe.zadd(keys.marker, {"0": 0})  # idle workers look again at once
            await pipe.execute()

    async def _run(self, script: Script, *, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The hot path's scripts go over the Lane, pipelined with every other caller's."""
        return await self._lane.run(script, keys, args)

    def _claim(self, request: ClaimRequest) -> str:
        """A claim for the scripts (claim_tasks.lua)."""
        claim: dict[str, Any] = {
            "worker": request.worker_id,
            "limit": request.limit,
            "now": request.now,
            "deadline": request.now + request.lease_ms,
        }
        if self._locks_with_tasks:
            claim |= {"lock_prefix": task_lock(""), "lock_ttl": request.lease_ms}
        return codec.encode_json(claim)

    @staticmethod
    def _claimed(next_due: Any, hashes: Sequence[list[str]], lock_ttl_ms: int) -> ClaimBatch:
        tasks: list[Task] = []
        leases: dict[str, Lease] = {}
        for fields in hashes:
            task = codec.decode(fields)
            tasks.append(task)
            lock = _field(fields, "lock")
            if lock is not None:
                leases[task.id] = Lease(f"task:{task.id}", lock_ttl_ms, lock, with_task=True)
        due = int(next_due)
        return ClaimBatch(tasks, None if due < 0 else due, leases)


def _claim_keys(queue: str) -> list[str]:
    keys = keys_of(queue)
    return [keys.wait, keys.delayed, keys.active, keys.marker, keys.meta, keys.fence, keys.seq]


def _own(lease: Lease | None) -> bool:
    return lease is not None and lease.with_task


def _field(fields: Sequence[str], name: str) -> str | None:
    for position in range(0, len(fields) - 1, 2):
        if fields[position] == name:
            return fields[position + 1]
    return None
