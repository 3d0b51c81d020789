"""ClusterLane and ClusterMarkerWaiter on a real Redis Cluster of three masters: a call runs
on the master of its first key's slot and follows the cluster as slots move (MOVED, ASK,
TRYAGAIN, a master that never saw the script); an idle wait blocks on each marker's own
master, ends at the first wake-up, and leaves no connection blocked behind it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.exceptions import AskError, MovedError, TryAgainError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infrastructure.redis.client import DEFAULT_LONGEST_BLOCK_MS, ClusterSeeds
from infrastructure.redis.cluster import SlotMap
from infrastructure.redis.cluster_lane import ClusterLane
from infrastructure.redis.keys import keys_of
from infrastructure.redis.lane import Script
from infrastructure.redis.waiter import ClusterMarkerWaiter
from tests.redis_cluster import LOOPBACK, Migration, RedisClusterServers, queue_key, slot_of

TIMEOUT_MS = 3_000
SET = Script("redis.call('SET', KEYS[1], ARGV[1])\nreturn ARGV[1]")
SET_BOTH = Script(
    "redis.call('SET', KEYS[1], ARGV[1])\nredis.call('SET', KEYS[2], ARGV[1])\nreturn ARGV[1]"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One cluster for the module: the tests move slots but each uses hash tags of its own."""
    with RedisClusterServers(tmp_path_factory.mktemp("cluster-lane"), masters=3) as started:
        yield started


@pytest.fixture
def seeds(cluster: RedisClusterServers) -> ClusterSeeds:
    parsed = ClusterSeeds.parse(cluster.cluster_urls)
    assert parsed is not None
    return parsed


@pytest.fixture
async def make_lane(seeds: ClusterSeeds) -> AsyncIterator[Callable[[int], ClusterLane]]:
    """ClusterLanes with a given timeout, closed at the test's end."""
    made: list[ClusterLane] = []

    def make(timeout_ms: int = TIMEOUT_MS) -> ClusterLane:
        made.append(ClusterLane(seeds, timeout_ms=timeout_ms))
        return made[-1]

    yield make
    for lane in made:
        await lane.aclose()


@pytest.fixture
def lane(make_lane: Callable[[int], ClusterLane]) -> ClusterLane:
    return make_lane(TIMEOUT_MS)


@pytest.fixture
async def waiter(seeds: ClusterSeeds) -> AsyncIterator[ClusterMarkerWaiter]:
    made = ClusterMarkerWaiter(
        SlotMap(seeds, TIMEOUT_MS), seeds, TIMEOUT_MS, DEFAULT_LONGEST_BLOCK_MS
    )
    yield made
    await made.aclose()


def tag() -> str:
    """A hash tag no other test (nor an earlier run's slot moves) has used."""
    return uuid.uuid4().hex[:12]


def read(cluster: RedisClusterServers, port: int, key: str) -> str | None:
    """`key` as the master on `port` holds it (a plain client: MOVED and ASK raise)."""
    with contextlib.closing(cluster.client(port)) as client:
        value = client.get(key)
        return None if value is None else str(value)


def read_asking(cluster: RedisClusterServers, port: int, key: str) -> str | None:
    """`key` on a master importing its slot: GET right behind ASKING, on one connection."""
    with contextlib.closing(cluster.client(port, single_connection_client=True)) as client:
        client.execute_command("ASKING")  # type: ignore[no-untyped-call]
        value = client.get(key)
        return None if value is None else str(value)


def other_master(cluster: RedisClusterServers, port: int) -> int:
    return next(other for other in cluster.ports if other != port)


def keys_on_each_master(cluster: RedisClusterServers) -> dict[int, str]:
    """A key for every master, by its port."""
    prefix = tag()
    found: dict[int, str] = {}
    n = 0
    while len(found) < len(cluster.ports):
        key = f"{{{prefix}-{n}}}k"
        found.setdefault(cluster.node_of(key), key)
        n += 1
    return found


def blocked_in_bzpopmin(cluster: RedisClusterServers, port: int) -> int:
    """Connections of the master on `port` blocked in BZPOPMIN now."""
    with contextlib.closing(cluster.client(port)) as client:
        return sum(
            1
            for entry in client.client_list()
            if entry.get("cmd") == "bzpopmin" and "b" in entry.get("flags", "")
        )


def ended_or_blocked(
    wait: asyncio.Future[None], cluster: RedisClusterServers, port: int
) -> Callable[[], bool]:
    """Whether `wait` ended, or a BZPOPMIN blocks on the master on `port`."""
    return lambda: wait.done() or blocked_in_bzpopmin(cluster, port) == 1


def evalsha_rejected(cluster: RedisClusterServers) -> dict[int, int]:
    """EVALSHA calls each master refused (MOVED, ASK, TRYAGAIN ...), by port."""
    counts = {}
    for port in cluster.ports:
        with contextlib.closing(cluster.client(port)) as client:
            stats = client.info("commandstats").get("cmdstat_evalsha", {})
            counts[port] = int(stats.get("rejected_calls", 0))
    return counts


async def until(condition: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """Poll `condition` with the loop free to run the waits under test."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


# -- routing ------------------------------------------------------------------------------


async def woken_by_an_entry(
    cluster: RedisClusterServers, port: int, marker: str, waiting: asyncio.Future[None]
) -> float:
    """ZADD an entry to `marker` on master `port`: how long `waiting` then takes to end."""
    with contextlib.closing(cluster.client(port)) as client:
        client.zadd(marker, {"0": 0})
    woken = time.monotonic()
    await asyncio.wait_for(asyncio.shield(waiting), 5)
    return time.monotonic() - woken


async def ended(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting


async def test_a_script_runs_on_the_master_of_its_first_keys_slot(
    cluster: RedisClusterServers, lane: ClusterLane
) -> None:
    keys = keys_on_each_master(cluster)
    assert len(keys) == 3
    await lane.masters()  # the slot map, read before counting
    rejected = evalsha_rejected(cluster)

    for port, key in keys.items():
        assert await lane.run(SET, [key], [f"on-{port}"]) == f"on-{port}"

    assert evalsha_rejected(cluster) == rejected  # each went to its master at once: no MOVED

    for port, key in keys.items():
        assert read(cluster, port, key) == f"on-{port}"
        for other in cluster.ports:
            if other != port:
                with pytest.raises(MovedError):
                    read(cluster, other, key)
    assert sorted(port for _, port in await lane.masters()) == sorted(cluster.ports)


async def test_a_command_runs_on_the_master_of_its_key(
    cluster: RedisClusterServers, lane: ClusterLane
) -> None:
    keys = keys_on_each_master(cluster)

    for port, key in keys.items():
        await lane.execute("SET", key, f"cmd-{port}")

    for port, key in keys.items():
        assert read(cluster, port, key) == f"cmd-{port}"
        assert await lane.execute("GET", key) == f"cmd-{port}"


async def test_a_call_without_a_key_is_refused_before_anything_is_sent(
    lane: ClusterLane,
) -> None:
    with pytest.raises(TypeError, match="key"):
        await lane.execute("PING")
    with pytest.raises(TypeError, match="key"):
        await lane.execute()
    with pytest.raises(TypeError, match="key"):
        await lane.run(SET, [], ["x"])
    assert not lane.slots.loaded  # refused before even the slot map was asked for


# -- slots that move ----------------------------------------------------------------------


async def test_moved_the_call_follows_the_slot_to_its_new_master(
    cluster: RedisClusterServers, lane: ClusterLane
) -> None:
    key = f"{{{tag()}}}moved"
    old = cluster.node_of(key)
    new = other_master(cluster, old)
    assert await lane.run(SET, [key], ["before"]) == "before"
    assert await lane.slots.owner(key) == (LOOPBACK, old)

    cluster.migrate_slot(slot_of(key), new)
    rejected = evalsha_rejected(cluster)

    assert await lane.run(SET, [key], ["after"]) == "after"
    assert evalsha_rejected(cluster)[old] == rejected[old] + 1  # the old master said MOVED
    assert read(cluster, new, key) == "after"
    with pytest.raises(MovedError):
        read(cluster, old, key)
    assert await lane.slots.owner(key) == (LOOPBACK, new)  # the lane's map knows it now
    assert await lane.execute("GET", key) == "after"


async def test_ask_a_moved_key_runs_on_the_target_and_a_key_not_moved_on_the_source(
    cluster: RedisClusterServers, lane: ClusterLane
) -> None:
    prefix = tag()
    moved, stayed = f"{{{prefix}}}moved", f"{{{prefix}}}stayed"
    await lane.run(SET, [moved], ["one"])
    await lane.run(SET, [stayed], ["one"])
    source = cluster.node_of(moved)
    target = other_master(cluster, source)

    migration = cluster.begin_migration(slot_of(moved), target, keys=[moved])
    try:
        with pytest.raises(AskError):  # the source no longer has it: it asks the target
            read(cluster, source, moved)

        assert await lane.run(SET, [moved], ["two"]) == "two"
        assert await lane.run(SET, [stayed], ["two"]) == "two"

        assert read_asking(cluster, target, moved) == "two"
        assert read(cluster, source, stayed) == "two"  # still the source's own key
        with pytest.raises(AskError):  # not written back on the source
            read(cluster, source, moved)
        assert await lane.slots.owner(moved) == (LOOPBACK, source)  # ASK moves no slot
    finally:
        cluster.finish_migration(migration)

    assert read(cluster, target, moved) == "two"
    assert read(cluster, target, stayed) == "two"
    assert await lane.run(SET, [moved], ["three"]) == "three"
    assert read(cluster, target, moved) == "three"


async def half_moved(cluster: RedisClusterServers, lane: ClusterLane) -> tuple[str, str, Migration]:
    """Two keys of one slot, written, then the first moved to another master and the
    slot left MIGRATING: a script on both gets TRYAGAIN until the migration ends."""
    prefix = tag()
    first, second = f"{{{prefix}}}a", f"{{{prefix}}}b"
    await lane.run(SET_BOTH, [first, second], ["one"])
    target = other_master(cluster, cluster.node_of(first))
    return first, second, cluster.begin_migration(slot_of(first), target, keys=[first])


async def test_tryagain_until_the_timeout_when_a_slot_stays_half_moved(
    cluster: RedisClusterServers, make_lane: Callable[[int], ClusterLane]
) -> None:
    lane = make_lane(300)
    first, second, migration = await half_moved(cluster, lane)
    try:
        with (
            contextlib.closing(cluster.client(migration.source)) as client,
            pytest.raises(TryAgainError),
        ):
            client.eval(SET_BOTH.source, 2, first, second, "x")  # the scenario: TRYAGAIN
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await lane.run(SET_BOTH, [first, second], ["two"])
        took = time.monotonic() - started
    finally:
        cluster.finish_migration(migration)

    assert 0.3 <= took < 1.3, took
    assert read(cluster, migration.target, first) == "one"  # never ran
    assert read(cluster, migration.target, second) == "one"


async def test_tryagain_succeeds_once_the_migration_finishes_meanwhile(
    cluster: RedisClusterServers, make_lane: Callable[[int], ClusterLane]
) -> None:
    lane = make_lane(1_000)
    first, second, migration = await half_moved(cluster, lane)

    async def finish_later() -> None:
        await asyncio.sleep(0.1)
        await asyncio.to_thread(cluster.finish_migration, migration)

    finishing = asyncio.ensure_future(finish_later())
    try:
        started = time.monotonic()
        assert await lane.run(SET_BOTH, [first, second], ["two"]) == "two"
        took = time.monotonic() - started
    finally:
        await finishing

    assert took >= 0.1, took  # it did wait for the migration
    assert read(cluster, migration.target, first) == "two"
    assert read(cluster, migration.target, second) == "two"


async def test_a_script_first_run_on_a_master_that_never_saw_it_is_loaded_there(
    cluster: RedisClusterServers, lane: ClusterLane
) -> None:
    script = Script(f"-- {uuid.uuid4()}\nredis.call('SET', KEYS[1], ARGV[1])\nreturn ARGV[1]")
    key = f"{{{tag()}}}noscript"
    old = cluster.node_of(key)
    new = other_master(cluster, old)
    assert await lane.run(script, [key], ["before"]) == "before"
    cluster.migrate_slot(slot_of(key), new)
    with contextlib.closing(cluster.client(new)) as client:
        assert client.script_exists(script.sha) == [False]

    assert await lane.run(script, [key], ["after"]) == "after"

    assert read(cluster, new, key) == "after"
    with contextlib.closing(cluster.client(new)) as client:
        assert client.script_exists(script.sha) == [True]


# -- ClusterMarkerWaiter ------------------------------------------------------------------


async def test_a_marker_on_one_master_ends_the_wait_and_frees_the_others(
    cluster: RedisClusterServers, waiter: ClusterMarkerWaiter
) -> None:
    queues = cluster.queues_on_distinct_shards(3, prefix=f"wake-{tag()}-")
    markers = [keys_of(queue).marker for queue in queues]
    masters = [cluster.node_of(queue_key(queue)) for queue in queues]
    assert sorted(masters) == sorted(cluster.ports)

    waiting = asyncio.ensure_future(waiter.wait(markers, 5_000))
    try:
        await until(
            lambda: all(blocked_in_bzpopmin(cluster, port) == 1 for port in cluster.ports),
            what="a BZPOPMIN blocked on each master",
        )
        took = await woken_by_an_entry(cluster, masters[1], markers[1], waiting)
    finally:
        await ended(waiting)

    assert took < 1.0, took
    assert {port: blocked_in_bzpopmin(cluster, port) for port in cluster.ports} == dict.fromkeys(
        cluster.ports, 0
    )
    with contextlib.closing(cluster.client(masters[1])) as client:
        assert client.zcard(markers[1]) == 0  # its BZPOPMIN took the entry


async def test_a_wait_with_no_marker_ends_after_its_timeout(
    cluster: RedisClusterServers, waiter: ClusterMarkerWaiter
) -> None:
    queues = cluster.queues_on_distinct_shards(3, prefix=f"idle-{tag()}-")
    markers = [keys_of(queue).marker for queue in queues]

    started = time.monotonic()
    await waiter.wait(markers, 300)
    took = time.monotonic() - started

    assert 0.3 <= took < 1.3, took


async def test_idle_waits_one_after_another_neither_fail_nor_leave_a_connection_blocked(
    cluster: RedisClusterServers, waiter: ClusterMarkerWaiter
) -> None:
    """A worker's idle waits, each ended by its timeout: every marker's timer fires at
    once, and the first to end cancels the others, perhaps while they unblock their own
    BZPOPMIN. None may stay blocked on its master, nor hold the one connection the
    marker's next wait needs."""
    queues = cluster.queues_on_distinct_shards(3, prefix=f"idler-{tag()}-")
    markers = [keys_of(queue).marker for queue in queues]

    for n in range(25):
        await waiter.wait(markers, 100)  # raises nothing
        blocked = {port: blocked_in_bzpopmin(cluster, port) for port in cluster.ports}
        assert blocked == dict.fromkeys(cluster.ports, 0), f"after wait {n}: {blocked}"


async def test_after_a_markers_slot_moved_the_next_wait_wakes_at_its_new_master(
    cluster: RedisClusterServers, waiter: ClusterMarkerWaiter
) -> None:
    (queue,) = cluster.queues_on_distinct_shards(1, prefix=f"moving-{tag()}-")
    marker = keys_of(queue).marker
    old = cluster.node_of(marker)
    new = other_master(cluster, old)
    await waiter.wait([marker], 100)  # placed on the old master
    cluster.migrate_slot(slot_of(marker), new)

    # The waiter's next waits: the old master's MOVED counts as a wake-up, so a worker
    # waits again; within a few the wait blocks on the new master.
    waiting = asyncio.ensure_future(waiter.wait([marker], 5_000))
    try:
        for _ in range(5):
            await until(
                ended_or_blocked(waiting, cluster, new),
                what="a wait that ends or blocks on the new master",
            )
            if not waiting.done():
                break
            await waiting  # raises what the wait raised, if anything
            waiting = asyncio.ensure_future(waiter.wait([marker], 5_000))
        assert blocked_in_bzpopmin(cluster, new) == 1
        assert blocked_in_bzpopmin(cluster, old) == 0
        took = await woken_by_an_entry(cluster, new, marker, waiting)
    finally:
        await ended(waiting)

    assert took < 1.0, took
    with contextlib.closing(cluster.client(new)) as client:
        assert client.zcard(marker) == 0  # woken by the entry, on the new master
    assert blocked_in_bzpopmin(cluster, new) == 0


async def test_a_wait_during_a_half_done_migration_of_its_markers_slot_still_blocks(
    cluster: RedisClusterServers, waiter: ClusterMarkerWaiter
) -> None:
    """While a queue's slot is MIGRATING its old master answers ASK for a marker it does
    not hold (BZPOPMIN took the last entry): the slot has not moved, so a wait that took
    the ASK for a wake-up would end at once every time, an idle worker spinning on
    BZPOPMIN and claims for as long as the migration lasts. It pauses instead (100 ms: a
    task enqueued meanwhile still starts soon, as nothing can block on its marker)."""
    (queue,) = cluster.queues_on_distinct_shards(1, prefix=f"asking-{tag()}-")
    marker = keys_of(queue).marker
    source = cluster.node_of(marker)
    target = other_master(cluster, source)
    await waiter.wait([marker], 50)  # placed on the source
    migration = cluster.begin_migration(slot_of(marker), target, keys=())
    try:
        # The scenario: the source asks elsewhere for it.
        with contextlib.closing(cluster.client(source)) as client, pytest.raises(AskError):
            client.bzpopmin([marker], timeout=0.01)
        started = time.monotonic()
        for _ in range(5):
            await waiter.wait([marker], 300)
        took = time.monotonic() - started
    finally:
        cluster.finish_migration(migration)

    # Five pauses of 100 ms, not a spin (which ends five waits in a few ms), nor five
    # whole waits (a task enqueued meanwhile would wait as long to start).
    assert 0.5 - 0.05 <= took < 1.5, f"5 waits of 300 ms ended in {took * 1000:.0f} ms"
