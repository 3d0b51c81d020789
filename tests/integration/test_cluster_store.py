"""RedisTransitions and RedisViews on a real Redis Cluster of three masters, as the
container wires them there (a ClusterLane, a RedisCluster client, scripts of one queue's
slot each): each task is stored on its queue's master, and the id index, kept apart in
slots of its own (storing.IdIndexApart), names one queue per id through enqueues,
conflicts, removals, sweeps and refusals."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from redis.exceptions import MovedError

from domain.admission import DepthLimits
from domain.errors import QueueFull, TaskNotFound
from domain.task import Task, TaskStatus
from domain.values import ClaimRequest, EnqueueOutcome, LeaseState
from infrastructure.redis.client import ClusterSeeds
from infrastructure.redis.cluster import create_cluster_redis
from infrastructure.redis.cluster_lane import ClusterLane
from infrastructure.redis.keys import keys_of, task_owner
from infrastructure.redis.queries import RedisViews
from infrastructure.redis.transitions import RedisTransitions
from tests.contract.queue_support import LEASE_MS, T0, make_task
from tests.redis_cluster import RedisClusterServers, queue_key

TIMEOUT_MS = 3_000
WINDOW_MS = 60_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    with RedisClusterServers(tmp_path_factory.mktemp("cluster-store"), masters=3) as started:
        yield started


@pytest.fixture(scope="module")
def queues(cluster: RedisClusterServers) -> list[str]:
    """Three queues, each on a master of its own."""
    names = cluster.queues_on_distinct_shards(3, prefix="store")
    assert sorted(cluster.node_of(queue_key(name)) for name in names) == sorted(cluster.ports)
    return names


@dataclass
class Store:
    cluster: RedisClusterServers
    client: RedisCluster
    lane: ClusterLane
    transitions: RedisTransitions
    views: RedisViews

    def master_of(self, queue: str) -> int:
        return self.cluster.node_of(queue_key(queue))

    def holds(self, port: int, key: str) -> bool:
        """Whether the master on `port` itself holds `key` (a plain client of it)."""
        with contextlib.closing(self.cluster.client(port)) as client:
            return bool(client.exists(key))

    def field(self, queue: str, task_id: str, name: str) -> str | None:
        """A field of the task's hash, read on its queue's master."""
        with contextlib.closing(self.cluster.client(self.master_of(queue))) as client:
            value = client.hget(keys_of(queue).task(task_id), name)
            return None if value is None else str(value)

    async def owner(self, task_id: str) -> tuple[str | None, int]:
        """The id index entry of `task_id`: the queue it names, and its PTTL."""
        key = task_owner(task_id)
        holder = await self.client.get(key)
        return None if holder is None else str(holder), int(await self.client.pttl(key))


MakeStore = Callable[..., Store]


@pytest.fixture
async def make_store(cluster: RedisClusterServers, queues: list[str]) -> AsyncIterator[MakeStore]:
    """Stores on the cluster, emptied first; `depth_limits` as RedisTransitions takes them."""
    for port in cluster.ports:
        with contextlib.closing(cluster.client(port)) as plain:
            plain.flushall()
    seeds = ClusterSeeds.parse(cluster.cluster_urls)
    assert seeds is not None
    client = create_cluster_redis(seeds, TIMEOUT_MS)
    shared: Any = client  # the adapters take a RedisCluster as the container hands it over
    lanes: list[ClusterLane] = []

    def make(depth_limits: DepthLimits | None = None) -> Store:
        lanes.append(ClusterLane(seeds, timeout_ms=TIMEOUT_MS))
        transitions = RedisTransitions(
            shared,
            lanes[-1],
            WINDOW_MS,
            locks_with_tasks=False,
            multi_queue_scripts=False,
            depth_limits=depth_limits or DepthLimits(),
        )
        return Store(cluster, client, lanes[-1], transitions, RedisViews(shared, queues))

    yield make
    for lane in lanes:
        await lane.aclose()
    await client.aclose()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


async def claimed(store: Store, queue: str, limit: int, now: int = T0) -> list[Task]:
    return (await store.transitions.claim(queue, "w1", limit, LEASE_MS, now)).tasks


# -- enqueue --------------------------------------------------------------------------------


async def test_one_enqueue_stores_tasks_of_three_queues_each_on_its_master(
    store: Store, queues: list[str]
) -> None:
    tasks = [make_task(f"{queue}-{n}", queue=queue) for n in range(2) for queue in queues]

    results = await store.transitions.enqueue(tasks)

    assert [result.outcome for result in results] == [EnqueueOutcome.CREATED] * 6
    assert [result.task.id for result in results] == [task.id for task in tasks]
    for task in tasks:
        found = await store.views.get(task.id)
        assert (found.id, found.queue, found.status) == (task.id, task.queue, TaskStatus.WAITING)
        master = store.master_of(task.queue)
        assert store.holds(master, keys_of(task.queue).task(task.id))
        for other in store.cluster.ports:
            if other != master:  # the other masters do not serve its slot
                with pytest.raises(MovedError):
                    store.holds(other, keys_of(task.queue).task(task.id))
        assert await store.owner(task.id) == (task.queue, -1)  # no expiry while it lives
    for queue in queues:
        waiting = await claimed(store, queue, 5)
        assert sorted(task.id for task in waiting) == [f"{queue}-0", f"{queue}-1"]


async def test_an_id_another_queue_holds_is_a_conflict_and_stays_with_it(
    store: Store, queues: list[str]
) -> None:
    first, other, third = queues
    (stored,) = await store.transitions.enqueue([make_task("x", queue=first)])
    assert stored.outcome is EnqueueOutcome.CREATED

    results = await store.transitions.enqueue(
        [make_task("x", queue=other), make_task("x2", queue=third)]
    )

    assert [result.outcome for result in results] == [
        EnqueueOutcome.CONFLICT,
        EnqueueOutcome.CREATED,  # the rest of the request is stored
    ]
    assert (await store.views.get("x")).queue == first
    assert await store.owner("x") == (first, -1)
    assert not store.holds(store.master_of(other), keys_of(other).task("x"))
    assert await claimed(store, other, 5) == []
    assert (await store.views.get("x2")).queue == third


async def test_the_same_id_and_payload_again_in_its_queue_is_existing(
    store: Store, queues: list[str]
) -> None:
    queue = queues[1]
    await store.transitions.enqueue([make_task("x", queue=queue)])

    (again,) = await store.transitions.enqueue([make_task("x", queue=queue)])
    (changed,) = await store.transitions.enqueue([make_task("x", queue=queue, payload={"n": 2})])

    assert again.outcome is EnqueueOutcome.EXISTING
    assert again.task.queue == queue
    assert changed.outcome is EnqueueOutcome.CONFLICT
    assert (await store.views.get("x")).payload == {"n": 1}
    assert await store.owner("x") == (queue, -1)
    assert len(await claimed(store, queue, 5)) == 1


# -- remove and sweep -----------------------------------------------------------------------


async def test_a_removed_id_answers_removed_in_its_queue_and_conflict_elsewhere(
    store: Store, queues: list[str]
) -> None:
    queue, other, _ = queues
    await store.transitions.enqueue([make_task("x", queue=queue)])

    await store.transitions.remove(await store.views.get("x"))

    assert not store.holds(store.master_of(queue), keys_of(queue).task("x"))
    with pytest.raises(TaskNotFound):
        await store.views.get("x")
    holder, ttl = await store.owner("x")
    assert holder == queue
    assert 0 < ttl <= WINDOW_MS
    (again,) = await store.transitions.enqueue([make_task("x", queue=queue)])
    (elsewhere,) = await store.transitions.enqueue([make_task("x", queue=other)])
    assert again.outcome is EnqueueOutcome.REMOVED
    assert elsewhere.outcome is EnqueueOutcome.CONFLICT
    assert not store.holds(store.master_of(other), keys_of(other).task("x"))
    holder, ttl = await store.owner("x")  # neither answer took the id
    assert holder == queue
    assert 0 < ttl <= WINDOW_MS


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [({"n": 1}, EnqueueOutcome.REMOVED), ({"n": 2}, EnqueueOutcome.CONFLICT)],
)
async def test_an_index_entry_made_for_an_id_its_queue_still_reserves_expires(
    store: Store, queues: list[str], payload: dict[str, int], outcome: EnqueueOutcome
) -> None:
    """The id index entry gone (its own expiry came first) while the queue still holds
    the removal: a repeat reserves the id afresh, the queue answers REMOVED (or CONFLICT,
    another payload) and stores nothing, and the fresh entry must expire with the window,
    not name the queue for good."""
    queue, other, _ = queues
    await store.transitions.enqueue([make_task("x", queue=queue)])
    await store.transitions.remove(await store.views.get("x"))
    await store.client.delete(task_owner("x"))

    (again,) = await store.transitions.enqueue([make_task("x", queue=queue, payload=payload)])

    assert again.outcome is outcome
    assert not store.holds(store.master_of(queue), keys_of(queue).task("x"))
    holder, ttl = await store.owner("x")
    assert holder == queue
    assert 0 < ttl <= WINDOW_MS
    (elsewhere,) = await store.transitions.enqueue([make_task("x", queue=other)])
    assert elsewhere.outcome is EnqueueOutcome.CONFLICT


async def test_a_sweep_removes_finished_tasks_and_reserves_their_ids_for_the_window(
    store: Store, queues: list[str]
) -> None:
    queue = queues[2]
    await store.transitions.enqueue([make_task(f"f{n}", queue=queue) for n in range(4)])
    running = await claimed(store, queue, 4)
    assert [task.id for task in running] == ["f0", "f1", "f2", "f3"]
    for task, at in zip(running[:3], (T0 + 1, T0 + 2, T0 + 20), strict=True):
        await store.transitions.settle(task.complete(None, at))

    swept = await store.transitions.sweep(queue, {TaskStatus.COMPLETED: T0 + 10}, 100)

    assert swept == 2  # f0 and f1; f2 finished after the cutoff, f3 is still running
    for task_id in ("f0", "f1"):
        with pytest.raises(TaskNotFound):
            await store.views.get(task_id)
        assert not store.holds(store.master_of(queue), keys_of(queue).task(task_id))
        holder, ttl = await store.owner(task_id)
        assert holder == queue
        assert 0 < ttl <= WINDOW_MS
    assert (await store.views.get("f2")).status is TaskStatus.COMPLETED
    assert (await store.views.get("f3")).status is TaskStatus.ACTIVE
    assert await store.owner("f2") == (queue, -1)
    assert await store.owner("f3") == (queue, -1)
    (again,) = await store.transitions.enqueue([make_task("f0", queue=queue)])
    assert again.outcome is EnqueueOutcome.REMOVED
    assert await store.transitions.sweep(queue, {TaskStatus.COMPLETED: T0 + 10}, 100) == 0


# -- admission ------------------------------------------------------------------------------


async def test_a_refused_enqueue_leaves_no_index_entry_for_its_new_ids(
    make_store: MakeStore, queues: list[str]
) -> None:
    full, other, _ = queues
    store = make_store(DepthLimits(0, {full: 2}))
    await store.transitions.enqueue([make_task(f"a{n}", queue=full) for n in range(2)])

    with pytest.raises(QueueFull) as refused:
        await store.transitions.enqueue(
            [make_task("n1", queue=full), make_task("n2", queue=full), make_task("a0", queue=full)]
        )

    assert refused.value.queue == full
    for task_id in ("n1", "n2"):
        assert await store.owner(task_id) == (None, -2)  # no such key
        assert not store.holds(store.master_of(full), keys_of(full).task(task_id))
        with pytest.raises(TaskNotFound):
            await store.views.get(task_id)
    assert await store.owner("a0") == (full, -1)  # the repeat's entry is the stored task's
    # The ids refused are free: another queue may take them.
    (taken,) = await store.transitions.enqueue([make_task("n1", queue=other)])
    assert taken.outcome is EnqueueOutcome.CREATED
    assert await store.owner("n1") == (other, -1)


# -- claims and leases ----------------------------------------------------------------------


async def test_a_claim_over_queues_of_three_masters_takes_from_each(
    store: Store, queues: list[str]
) -> None:
    await store.transitions.enqueue(
        [make_task(f"{queue}-{n}", queue=queue) for queue in queues for n in range(2)]
    )

    batch = await store.transitions.claim_queues(
        [(queue, 1) for queue in queues], ClaimRequest("w1", 3, LEASE_MS, T0)
    )

    assert sorted(task.queue for task in batch.tasks) == sorted(queues)
    for task in batch.tasks:
        assert task.id == f"{task.queue}-0"
        assert task.status is TaskStatus.ACTIVE
        assert store.field(task.queue, task.id, "status") == "active"  # on its master
        assert store.field(task.queue, task.id, "worker_id") == "w1"
    for queue in queues:
        assert store.field(queue, f"{queue}-1", "status") == "waiting"


async def test_leases_of_tasks_on_two_masters_are_extended_together(
    store: Store, queues: list[str]
) -> None:
    first, second, _ = queues
    await store.transitions.enqueue(
        [
            make_task("a", queue=first),
            make_task("done", queue=first),
            make_task("b", queue=second),
        ]
    )
    a, done = await claimed(store, first, 2)
    (b,) = await claimed(store, second, 1)
    await store.transitions.settle(done.complete(None, T0 + 1))

    states = await store.transitions.extend_leases(
        [(a, None), (done, None), (b, None)], LEASE_MS, T0 + 500
    )

    assert states == [LeaseState.HELD, LeaseState.LOST, LeaseState.HELD]
    deadline = T0 + 500 + LEASE_MS
    for queue, task in ((first, a), (second, b)):
        with contextlib.closing(store.cluster.client(store.master_of(queue))) as client:
            assert client.zscore(keys_of(queue).active, task.id) == deadline
        assert await store.transitions.expired(queue, deadline, 10) == []
        assert [t.id for t in await store.transitions.expired(queue, deadline + 1, 10)] == [task.id]
