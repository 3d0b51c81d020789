"""A claim over several queues with one queue's claim at a time, where no script may touch
several queues' keys (a Redis Cluster), and for a single queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from domain.values import ClaimBatch, Lease

ClaimOne = Callable[[str, int], Awaitable[ClaimBatch]]
"""Claim up to so many tasks of a queue."""


async def queue_by_queue(
    claim: ClaimOne, quotas: Sequence[tuple[str, int]], limit: int
) -> ClaimBatch:
    """claim_queues' rule: the quotas' claims go out together (one write on the Lane),
    then the slots left go to the queues in order, one claim each, skipping a queue that
    gave less than it was asked. Not atomic across queues: a later queue may take a slot
    an earlier one got a task for after its own claim ran."""
    asked: list[tuple[str, int]] = []
    for queue, quota in quotas:  # in order, as the script takes them: never beyond `limit`
        wanted = min(quota, limit - sum(n for _, n in asked))
        if wanted > 0:
            asked.append((queue, wanted))
    if len(asked) == 1:  # one queue: no gathering task for the common case
        batches = [await claim(*asked[0])]
    else:
        batches = list(await asyncio.gather(*(claim(queue, quota) for queue, quota in asked)))
    short = {q for (q, quota), got in zip(asked, batches, strict=True) if len(got.tasks) < quota}
    left = limit - sum(len(batch.tasks) for batch in batches)
    for queue, _ in quotas:
        if left <= 0:
            break
        if queue not in short:
            batches.append(await claim(queue, left))
            left -= len(batches[-1].tasks)
    return _merged(batches)


def _merged(batches: list[ClaimBatch]) -> ClaimBatch:
    tasks = [task for batch in batches for task in batch.tasks]
    leases: dict[str, Lease] = {}
    for batch in batches:
        leases.update(batch.leases)
    dues = [batch.next_due_at for batch in batches if batch.next_due_at is not None]
    return ClaimBatch(tasks, None if tasks or not dues else min(dues), leases)
