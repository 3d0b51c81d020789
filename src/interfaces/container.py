"""The composition root: the only module that knows dependency_injector."""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import AsyncIterator, Callable
from random import Random
from typing import Any

from dependency_injector import containers, providers
from redis.asyncio import Redis

from application.audit import ReadAudit, RecordAudit
from application.bulk_change import BulkChange
from application.change_task import ChangeTask
from application.clock import system_clock
from application.clone_task import CloneTask
from application.delete_task import DeleteTask
from application.enqueue_task import EnqueueTask
from application.get_batch import GetBatch
from application.get_stats import GetStats
from application.get_task import GetTask
from application.limits import ManageLimits
from application.list_tasks import ExportTasks, ListTasks
from application.meter import Meter
from application.pause_queue import PauseQueue
from application.recover_stalled import RecoverStalled
from application.registry import TaskRegistry
from application.running.leases import LeaseKeeper
from application.running.process_task import ProcessPolicy, ProcessTask
from application.schedules import FireSchedules, ManageSchedules
from application.sweep_finished import Retention, SweepFinished
from application.templates import CreateTemplate, DeleteTemplate, ListTemplates, UseTemplate
from application.watch_events import ChangeDigest, WatchChanges, WatchEvents
from application.workers import Heartbeat, ListWorkers, WorkerMetrics
from domain.admission import DepthLimits
from infrastructure.calendar import Calendar
from infrastructure.children.child import ChildSpec
from infrastructure.children.pool import ChildPool
from infrastructure.ids import new_ulid
from infrastructure.lock import RedlockService
from infrastructure.logging import get_logger
from infrastructure.redaction import secrets_in
from infrastructure.redis.audit import RedisAuditLog, target_ttl_ms
from infrastructure.redis.client import (
    create_blocking_redis,
    create_lock_redis,
    create_redis,
    database_of,
)
from infrastructure.redis.cluster import create_cluster_redis
from infrastructure.redis.cluster_lane import ClusterLane
from infrastructure.redis.events import EventHub
from infrastructure.redis.feed import RedisFeed
from infrastructure.redis.flow import RedisFlowLimits
from infrastructure.redis.lane import Lane, ScriptLane
from infrastructure.redis.queries import RedisViews
from infrastructure.redis.schedules import RedisScheduleStore
from infrastructure.redis.scripts import Scripts
from infrastructure.redis.templates import RedisTemplateStore
from infrastructure.redis.transitions import RedisTransitions
from infrastructure.redis.waiter import (
    IDLE_WAIT_MS,
    ClusterMarkerWaiter,
    MarkerWaiter,
    MarkerWaits,
)
from infrastructure.redis.workers import RedisWorkerRegistry
from infrastructure.registry import build_registry, configured_queues
from infrastructure.settings import Settings

# The longest BZPOPMIN an idle worker sends: its longest idle wait, plus the second
# MarkerWaiter gives Redis's own timeout as a backstop behind its local timer.
LONGEST_BLOCK_MS = IDLE_WAIT_MS + 1_000


async def _redis(settings: Settings) -> AsyncIterator[Redis]:
    """The queue's Redis: REDIS_CLUSTER_URLS' Cluster when set, else REDIS_URL's server (or
    the master the sentinels name)."""
    cluster, timeout_ms = settings.cluster, settings.redis_timeout_ms
    client: Any = (
        create_cluster_redis(cluster, timeout_ms)
        if cluster is not None
        else create_redis(settings.queue_redis_url, timeout_ms, settings.sentinels)
    )
    try:
        yield client
    finally:
        await client.aclose()


async def _lane(settings: Settings) -> AsyncIterator[ScriptLane]:
    cluster, timeout_ms = settings.cluster, settings.redis_timeout_ms
    lane: Lane | ClusterLane = (
        ClusterLane(cluster, timeout_ms=timeout_ms)
        if cluster is not None
        else Lane.from_url(
            settings.queue_redis_url, timeout_ms=timeout_ms, sentinels=settings.sentinels
        )
    )
    try:
        yield lane
    finally:
        await lane.aclose()


async def _marker_waiter(
    settings: Settings, client: Redis, lane: ScriptLane
) -> AsyncIterator[MarkerWaits]:
    """What idle workers block on: one connection of its own, or on a Cluster one per
    queue, on the master of the queue's slot (the lane's slot map says which)."""
    cluster, timeout_ms = settings.cluster, settings.redis_timeout_ms
    if cluster is not None and isinstance(lane, ClusterLane):
        waiter = ClusterMarkerWaiter(lane.slots, cluster, timeout_ms, LONGEST_BLOCK_MS)
        try:
            yield waiter
        finally:
            await waiter.aclose()
        return
    blocking = create_blocking_redis(
        settings.queue_redis_url, timeout_ms, LONGEST_BLOCK_MS, settings.sentinels
    )
    try:
        yield MarkerWaiter(client, blocking)
    finally:
        await blocking.aclose()


async def _lock_masters(
    urls: list[str], lock_ttl_ms: int, timeout_ms: int, queue_redis: Redis
) -> AsyncIterator[list[Redis]]:
    """The Redlock masters: REDLOCK_URLS when set, else the queue's own Redis."""
    clients = [create_lock_redis(url, lock_ttl_ms, timeout_ms) for url in urls]
    try:
        yield clients or [queue_redis]
    finally:
        for client in clients:
            await client.aclose()


async def resolve(provider: Callable[[], Any]) -> Any:
    """A provider's value: those that depend on an async resource hand back an awaitable."""
    value = provider()
    if inspect.isawaitable(value):
        value = await value
    return value


def _one_server(settings: Settings) -> bool:
    """One Redis server: a script may touch several queues' slots (not on a Cluster)."""
    return settings.cluster is None


def new_task_id() -> str:
    return new_ulid()


def _scripts_of(client: Redis) -> Scripts:
    return Scripts.load(database_of(client))


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def _process_policy(settings: Settings) -> ProcessPolicy:
    return ProcessPolicy(
        lock_ttl_ms=settings.lock_ttl_ms,
        lock_tries=settings.lock_tries,
        lock_retry_delay_ms=settings.lock_retry_delay_ms,
        lock_retry_jitter_ms=settings.lock_retry_jitter_ms,
        lock_denied_delay_ms=settings.lock_retry_ms,
        shutdown_grace_ms=settings.shutdown_grace_ms,
    )


async def _child_pool(settings: Settings, registry: TaskRegistry) -> AsyncIterator[ChildPool]:
    """The worker's child processes; none is started until a process task type runs."""
    spec = ChildSpec(
        modules=tuple(registry.child_modules),
        context=registry.context,
        log_level=settings.log_level,
        log_format=settings.log_format,
        secrets=tuple(secrets_in(settings)),
    )
    pool = ChildPool(spec, settings.worker_processes, get_logger("conveyor.worker"))
    try:
        yield pool
    finally:
        await pool.close()


def _retention(settings: Settings) -> Retention:
    return Retention(
        completed_ms=settings.retain_completed_ms,
        failed_ms=settings.retain_failed_ms,
        cancelled_ms=settings.retain_cancelled_ms,
        completed_count=settings.retain_completed_count,
        failed_count=settings.retain_failed_count,
        cancelled_count=settings.retain_cancelled_count,
    )


def _audit_target_ttl(settings: Settings) -> int:
    retention = _retention(settings)
    return target_ttl_ms((retention.completed_ms, retention.failed_ms, retention.cancelled_ms))


def _depth_limits(settings: Settings, queues: list[str]) -> DepthLimits:
    """QUEUE_MAX_DEPTHS may name configured queues only (a typo would limit nothing)."""
    limits = settings.depth_limits
    unknown = sorted(set(limits.per_queue) - set(queues))
    if unknown:
        raise ValueError(
            f"QUEUE_MAX_DEPTHS names {', '.join(unknown)}: not configured ({','.join(queues)})"
        )
    return limits


async def _event_hub(client: Redis, buffer: int, max_streams: int) -> AsyncIterator[EventHub]:
    hub = EventHub(client, buffer=buffer, max_streams=max_streams)
    try:
        yield hub
    finally:
        await hub.aclose()


async def _change_digest(feed: RedisFeed, max_readers: int) -> AsyncIterator[ChangeDigest]:
    digest = ChangeDigest(feed, max_readers=max_readers)
    try:
        yield digest
    finally:
        await digest.aclose()


class Container(containers.DeclarativeContainer):
    """Adapters are singletons, use cases factories, Redis clients async resources."""

    settings = providers.Singleton(Settings)
    clock = providers.Object(system_clock)
    rng = providers.Singleton(Random)
    log = providers.Callable(get_logger, "conveyor")

    redis = providers.Resource(_redis, settings=settings)
    # The hot path's connection: every transition's script, pipelined (see Lane).
    lane = providers.Resource(_lane, settings=settings)
    marker_waiter = providers.Resource(_marker_waiter, settings=settings, client=redis, lane=lane)
    lock_masters = providers.Resource(
        _lock_masters,
        urls=settings.provided.redlock_url_list,
        lock_ttl_ms=settings.provided.lock_ttl_ms,
        timeout_ms=settings.provided.redis_timeout_ms,
        queue_redis=redis,
    )

    registry = providers.Singleton(build_registry, settings=settings)
    queues = providers.Singleton(configured_queues, settings=settings, registry=registry)
    locks = providers.Singleton(RedlockService, masters=lock_masters)
    child_pool = providers.Resource(_child_pool, settings=settings, registry=registry)
    event_hub = providers.Resource(
        _event_hub,
        client=redis,
        buffer=settings.provided.event_buffer,
        max_streams=settings.provided.max_event_streams,
    )
    # The task store, by reader: what moves tasks, what reads them, what is pushed.
    queue = providers.Singleton(
        RedisTransitions,
        client=redis,
        lane=lane,
        idempotency_window_ms=settings.provided.idempotency_window_ms,
        locks_with_tasks=settings.provided.locks_with_tasks,
        multi_queue_scripts=providers.Callable(_one_server, settings),
        depth_limits=providers.Callable(_depth_limits, settings, queues),
        replicas=settings.provided.enqueue_replicas,
        replicas_timeout_ms=settings.provided.enqueue_replicas_timeout_ms,
    )
    views = providers.Singleton(RedisViews, client=redis, queues=queues)
    feed = providers.Singleton(
        RedisFeed, client=redis, waiter=marker_waiter, views=views, events=event_hub
    )
    audit_log = providers.Singleton(
        RedisAuditLog, client=redis, target_ttl_ms=providers.Callable(_audit_target_ttl, settings)
    )

    enqueue_task = providers.Factory(
        EnqueueTask,
        queue=queue,
        registry=registry,
        clock=clock,
        new_id=providers.Object(new_task_id),
        default_timeout_ms=settings.provided.default_timeout_ms,
        queues=queues,
    )
    get_task = providers.Factory(GetTask, views=views, feed=feed)
    delete_task = providers.Factory(
        DeleteTask, views=views, queue=queue, clock=clock, audit=audit_log
    )
    change_task = providers.Factory(
        ChangeTask, views=views, queue=queue, clock=clock, audit=audit_log
    )
    bulk_change = providers.Factory(BulkChange, change=change_task)
    clone_task = providers.Factory(
        CloneTask, views=views, queue=queue, clock=clock, new_id=providers.Object(new_task_id)
    )
    list_tasks = providers.Factory(ListTasks, queue=views)
    export_tasks = providers.Factory(ExportTasks, queue=views)
    get_stats = providers.Factory(GetStats, queue=views, clock=clock)
    pause_queue = providers.Factory(
        PauseQueue, queue=queue, queues=queues, clock=clock, audit=audit_log
    )
    get_batch = providers.Factory(GetBatch, queue=views)
    worker_registry = providers.Singleton(RedisWorkerRegistry, client=redis)
    watch_events = providers.Factory(WatchEvents, queue=feed)
    change_digest = providers.Resource(
        _change_digest, feed=feed, max_readers=settings.provided.max_event_streams
    )
    watch_changes = providers.Factory(WatchChanges, digest=change_digest)
    list_workers = providers.Factory(ListWorkers, registry=worker_registry, clock=clock)
    worker_metrics = providers.Factory(WorkerMetrics, registry=worker_registry)
    meter = providers.Singleton(Meter)  # the process's own: handed over with its heartbeats
    heartbeat = providers.Factory(Heartbeat, registry=worker_registry, clock=clock, meter=meter)
    sweep_finished = providers.Factory(
        SweepFinished,
        queue=queue,
        clock=clock,
        retention=providers.Callable(_retention, settings),
    )
    templates = providers.Singleton(RedisTemplateStore, client=redis)
    create_template = providers.Factory(
        CreateTemplate, store=templates, registry=registry, clock=clock
    )
    list_templates = providers.Factory(ListTemplates, store=templates)
    delete_template = providers.Factory(DeleteTemplate, store=templates)
    use_template = providers.Factory(UseTemplate, store=templates, enqueue_task=enqueue_task)
    flow_limits = providers.Singleton(
        RedisFlowLimits,
        client=redis,
        lane=lane,
        scripts=providers.Callable(_scripts_of, redis),
    )
    manage_limits = providers.Factory(
        ManageLimits,
        store=flow_limits,
        registry=registry,
        queues=queues,
        clock=clock,
        audit=audit_log,
    )
    schedules = providers.Singleton(RedisScheduleStore, client=redis)
    calendar = providers.Singleton(Calendar)
    manage_schedules = providers.Factory(
        ManageSchedules,
        store=schedules,
        calendar=calendar,
        enqueue_task=enqueue_task,
        clock=clock,
        audit=audit_log,
    )
    fire_schedules = providers.Factory(
        FireSchedules,
        store=schedules,
        calendar=calendar,
        enqueue_task=enqueue_task,
        views=views,
        clock=clock,
        log=log,
    )
    record_audit = providers.Factory(RecordAudit, log=audit_log, clock=clock)
    read_audit = providers.Factory(ReadAudit, log=audit_log)
    process_task = providers.Singleton(
        ProcessTask,
        queue=queue,
        locks=locks,
        registry=registry,
        policy=providers.Callable(_process_policy, settings),
        clock=clock,
        log=log,
        rng=rng,
        children=child_pool,
        meter=meter,
    )
    lease_keeper = providers.Factory(
        LeaseKeeper, queue=queue, locks=locks, clock=clock, log=log, meter=meter
    )
    recover_stalled = providers.Factory(
        RecoverStalled,
        queue=queue,
        clock=clock,
        log=log,
        max_stalls=settings.provided.max_stalls,
        rng=rng,
    )
