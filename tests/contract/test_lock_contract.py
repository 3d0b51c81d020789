"""ILockService contract: the in-memory fake and RedlockService must behave alike."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from domain.errors import LockLost, LockNotAcquired
from domain.ports import ILockService
from domain.values import Lease
from infrastructure.lock import RedlockService
from tests.fakes import InMemoryLockService, ManualClock, eventually

TTL_MS = 300
LONG_TTL_MS = 30_000


@pytest.fixture(params=["fake", "redis"])
def locks(request: pytest.FixtureRequest) -> ILockService:
    if request.param == "fake":
        return InMemoryLockService()
    client: Redis = request.getfixturevalue("redis")
    return RedlockService([client])


async def try_acquire(locks: ILockService, resource: str, ttl_ms: int) -> Lease | None:
    try:
        return await locks.acquire(resource, ttl_ms, None)
    except LockNotAcquired:
        return None


async def wait_until_free(locks: ILockService, resource: str) -> None:
    """Wait until the resource can be taken again, and leave it free."""

    async def free() -> bool:
        probe = await try_acquire(locks, resource, LONG_TTL_MS)
        if probe is not None:
            await locks.release(probe)
        return probe is not None

    await eventually(free)


async def test_a_held_lock_is_denied_to_others(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", LONG_TTL_MS, 3)

    with pytest.raises(LockNotAcquired):
        await locks.acquire("task:a", LONG_TTL_MS, 3)

    assert (lease.resource, lease.ttl_ms) == ("task:a", LONG_TTL_MS)
    other = await locks.acquire("task:b", LONG_TTL_MS, 3)
    assert other.token != lease.token


async def test_release_frees_the_lock(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", LONG_TTL_MS, 3)

    await locks.release(lease)

    again = await locks.acquire("task:a", LONG_TTL_MS, 3)
    await locks.release(lease)  # a second release of the old lease changes nothing
    with pytest.raises(LockNotAcquired):
        await locks.acquire("task:a", LONG_TTL_MS, 3)
    await locks.release(again)


async def test_extend_after_release_raises_lock_lost(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", LONG_TTL_MS, 3)
    await locks.release(lease)

    with pytest.raises(LockLost):
        await locks.extend(lease)


async def test_a_lease_expires_after_its_ttl(locks: ILockService) -> None:
    started = time.monotonic()
    await locks.acquire("task:a", TTL_MS, 3)

    await wait_until_free(locks, "task:a")

    assert time.monotonic() - started >= TTL_MS / 1000 * 0.9


async def test_extend_keeps_the_lock_past_its_first_ttl(locks: ILockService) -> None:
    started = time.monotonic()
    lease = await locks.acquire("task:a", TTL_MS, None)

    while time.monotonic() - started < 2 * TTL_MS / 1000:
        await asyncio.sleep(TTL_MS / 3 / 1000)
        await locks.extend(lease)

    assert await try_acquire(locks, "task:a", TTL_MS) is None
    await locks.release(lease)
    assert await try_acquire(locks, "task:a", TTL_MS) is not None


async def test_extend_after_expiry_raises_lock_lost(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", TTL_MS, None)
    await wait_until_free(locks, "task:a")

    with pytest.raises(LockLost):
        await locks.extend(lease)


async def test_extend_after_another_took_the_lock_raises_lock_lost(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", TTL_MS, None)
    await wait_until_free(locks, "task:a")
    await locks.acquire("task:a", LONG_TTL_MS, None)

    with pytest.raises(LockLost):
        await locks.extend(lease)


async def test_a_stale_lease_cannot_free_the_next_holders_lock(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", TTL_MS, None)
    await wait_until_free(locks, "task:a")
    await locks.acquire("task:a", LONG_TTL_MS, None)

    await locks.release(lease)

    assert await try_acquire(locks, "task:a", TTL_MS) is None


async def test_release_after_expiry_is_not_an_error(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", TTL_MS, None)
    await wait_until_free(locks, "task:a")

    await locks.release(lease)


async def test_extend_beyond_the_budget_raises_lock_lost(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", LONG_TTL_MS, 2)
    await locks.extend(lease)
    await locks.extend(lease)

    with pytest.raises(LockLost):
        await locks.extend(lease)


async def test_a_zero_budget_allows_no_extension(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", LONG_TTL_MS, 0)

    with pytest.raises(LockLost):
        await locks.extend(lease)


async def test_no_budget_means_unlimited_extensions(locks: ILockService) -> None:
    lease = await locks.acquire("task:a", LONG_TTL_MS, None)

    for _ in range(50):
        await locks.extend(lease)

    assert await try_acquire(locks, "task:a", TTL_MS) is None


async def test_a_ttl_shorter_than_the_drift_allowance_is_never_acquired(
    locks: ILockService,
) -> None:
    with pytest.raises(LockNotAcquired):
        await locks.acquire("task:a", 1, None)

    assert await try_acquire(locks, "task:a", TTL_MS) is not None


@pytest.mark.parametrize("locks", ["redis"], indirect=True)
async def test_the_redis_key_is_lock_task_id(locks: ILockService, redis: Redis) -> None:
    lease = await locks.acquire("task:abc-1", TTL_MS, 3)

    assert await redis.keys("*") == ["lock:task:abc-1"]
    assert 0 < await redis.pttl("lock:task:abc-1") <= TTL_MS
    await locks.release(lease)
    assert await redis.exists("lock:task:abc-1") == 0


# --- the fake on a manual clock: exact boundaries -------------------------------------------


async def test_fake_lease_is_valid_for_exactly_its_ttl() -> None:
    clock = ManualClock()
    locks = InMemoryLockService(clock)
    lease = await locks.acquire("task:a", TTL_MS, 1)

    clock.advance(TTL_MS - 1)
    assert locks.held("task:a")
    clock.advance(1)
    assert not locks.held("task:a")
    with pytest.raises(LockLost):
        await locks.extend(lease)
    await locks.acquire("task:a", TTL_MS, 1)


async def test_fake_extend_counts_from_the_moment_of_extension() -> None:
    clock = ManualClock()
    locks = InMemoryLockService(clock)
    lease = await locks.acquire("task:a", TTL_MS, 1)

    clock.advance(200)
    await locks.extend(lease)
    clock.advance(TTL_MS - 1)

    assert locks.held("task:a")
    with pytest.raises(LockLost):
        await locks.extend(lease)  # its one extension is spent
    clock.advance(1)
    assert not locks.held("task:a")
