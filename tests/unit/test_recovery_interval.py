"""How soon a worker looks for a dead worker's tasks, whatever the lease."""

from __future__ import annotations

import pytest

from interfaces.workers.chores import recovery_interval_s


@pytest.mark.parametrize(
    ("lease_ms", "interval_s"),
    [(300_000, 0.5), (30_000, 0.5), (3_000, 0.5), (1_000, 0.25), (300, 0.075), (100, 0.05)],
)
def test_leases_that_ran_out_are_looked_for_at_least_every_half_second(
    lease_ms: int, interval_s: float
) -> None:
    # The round used to be half a lease (15 s with the default LOCK_TTL_MS of 30 s).
    assert recovery_interval_s(lease_ms) == pytest.approx(interval_s)
