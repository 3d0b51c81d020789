"""Which slots a due schedule fires: missed and overlap policies, long outages, and cron
slots in time zones across daylight-saving changes."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidTask
from domain.schedule import (
    WALK_LIMIT,
    Every,
    MissedPolicy,
    OverlapPolicy,
    Schedule,
    ScheduledTask,
    plan_firing,
    walk_slots,
)
from infrastructure.calendar import Calendar, CronCadence

SECOND = 1_000
EVERY = Every(SECOND, anchor=0)


def schedule(**fields: object) -> Schedule:
    base = Schedule(name="s", task=ScheduledTask("echo"), every_ms=SECOND, next_at=SECOND)
    return replace(base, **fields)  # type: ignore[arg-type]


def test_an_on_time_slot_fires_alone() -> None:
    plan = plan_firing(schedule(next_at=5 * SECOND), EVERY, 5 * SECOND + 3, False)
    assert (plan.fire, plan.skipped, plan.next_at) == ([5 * SECOND], 0, 6 * SECOND)


def test_nothing_is_due_before_the_slot() -> None:
    plan = plan_firing(schedule(next_at=5 * SECOND), EVERY, 5 * SECOND - 1, False)
    assert (plan.fire, plan.next_at) == ([], 5 * SECOND)


@pytest.mark.parametrize(
    ("policy", "fired"),
    [
        (MissedPolicy.SKIP, [10 * SECOND]),
        (MissedPolicy.ONCE, [10 * SECOND]),
        (MissedPolicy.ALL, [k * SECOND for k in range(1, 11)]),
    ],
)
def test_missed_slots_behind_an_on_time_one(policy: MissedPolicy, fired: list[int]) -> None:
    plan = plan_firing(schedule(missed_policy=policy), EVERY, 10 * SECOND + 5, False)
    assert plan.fire == fired
    assert plan.skipped == 10 - len(fired)
    assert plan.next_at == 11 * SECOND


@pytest.mark.parametrize(
    ("policy", "fired"),
    [
        (MissedPolicy.SKIP, []),
        (MissedPolicy.ONCE, [10 * SECOND]),
        (MissedPolicy.ALL, [k * SECOND for k in range(1, 11)]),
    ],
)
def test_only_missed_slots(policy: MissedPolicy, fired: list[int]) -> None:
    """Hourly, down from 01:00 to 10:01:01: the 10:00 slot is more than a minute late."""
    hourly = Every(3_600_000, anchor=0)
    s = schedule(missed_policy=policy, every_ms=3_600_000, next_at=3_600_000)
    plan = plan_firing(s, hourly, 10 * 3_600_000 + 61_000, False)
    assert plan.fire == [slot * 3_600 for slot in fired]
    assert plan.next_at == 11 * 3_600_000


def test_catch_up_keeps_the_latest_slots_within_its_bound() -> None:
    s = schedule(missed_policy=MissedPolicy.ALL, catch_up_limit=3)
    plan = plan_firing(s, EVERY, 10 * SECOND + 5, False)
    assert plan.fire == [7 * SECOND, 8 * SECOND, 9 * SECOND, 10 * SECOND]
    assert plan.skipped == 6


def test_overlap_skip_drops_the_slots_while_the_previous_run_goes_on() -> None:
    s = schedule(overlap_policy=OverlapPolicy.SKIP, next_at=5 * SECOND)
    plan = plan_firing(s, EVERY, 5 * SECOND + 1, True)
    assert (plan.fire, plan.skipped, plan.next_at) == ([], 1, 6 * SECOND)


def test_overlap_queue_waits_then_fires_one_run() -> None:
    s = schedule(overlap_policy=OverlapPolicy.QUEUE, missed_policy=MissedPolicy.ALL)
    waiting = plan_firing(s, EVERY, 5 * SECOND, True)
    assert (waiting.fire, waiting.next_at) == ([], None)
    done = plan_firing(s, EVERY, 5 * SECOND + 1, False)
    assert (done.fire, done.skipped, done.next_at) == ([5 * SECOND], 4, 6 * SECOND)


def test_overlap_allow_fires_whatever_runs() -> None:
    plan = plan_firing(schedule(next_at=5 * SECOND), EVERY, 5 * SECOND, True)
    assert plan.fire == [5 * SECOND]


def test_a_long_outage_of_a_fine_cadence_is_crossed_in_a_jump() -> None:
    year = 365 * 86_400 * SECOND
    walk = walk_slots(EVERY, SECOND, year + 500, keep=3)
    assert walk.last == [year - 2 * SECOND, year - SECOND, year]
    assert walk.following == year + SECOND
    assert walk.count == year // SECOND


@given(
    every=st.integers(100, 10_000_000),
    anchor=st.integers(0, 10**12),
    first_step=st.integers(1, 50),
    late=st.integers(0, 3 * WALK_LIMIT),
    keep=st.integers(1, 101),
)
def test_the_walk_keeps_the_slots_it_should(
    every: int, anchor: int, first_step: int, late: int, keep: int
) -> None:
    cadence = Every(every, anchor)
    first = anchor + first_step * every
    now = first + late * every + every // 2
    walk = walk_slots(cadence, first, now, keep)
    expected_last = [first + k * every for k in range(max(0, late + 1 - keep), late + 1)]
    assert walk.last == expected_last
    assert walk.following == first + (late + 1) * every
    assert walk.count == late + 1


def test_each_slot_is_planned_once_however_often_it_is_looked_at() -> None:
    """Looking every 137 ms for a minute fires each second's slot once, in order."""
    s = schedule(next_at=SECOND)
    fired: list[int] = []
    for now in range(0, 60 * SECOND, 137):
        plan = plan_firing(s, EVERY, now, False)
        fired.extend(plan.fire)
        if plan.next_at is not None:
            s = replace(s, next_at=plan.next_at)
    assert fired == [k * SECOND for k in range(1, 60)]


# --- cron in a time zone ----------------------------------------------------------------


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def slots(expression: str, zone: str, start: datetime, count: int) -> list[datetime]:
    cadence = CronCadence(expression, zone)
    found, moment = [], ms(start)
    for _ in range(count):
        moment = cadence.next_after(moment)
        found.append(datetime.fromtimestamp(moment / 1000, ZoneInfo(zone)))
    return found


BERLIN = ZoneInfo("Europe/Berlin")


def test_a_named_time_in_the_repeated_hour_fires_once() -> None:
    """Clocks go back on 2026-10-25 at 03:00 CEST: 02:30 happens twice, fires once."""
    found = slots("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 3)
    assert [(d.day, d.hour, d.minute) for d in found] == [(25, 2, 30), (26, 2, 30), (27, 2, 30)]
    assert found[0].utcoffset().total_seconds() == 7200  # type: ignore[union-attr]


def test_an_hourly_expression_fires_in_both_repeated_hours() -> None:
    found = slots("0 * * * *", "Europe/Berlin", datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN), 3)
    gaps = {b.timestamp() - a.timestamp() for a, b in itertools.pairwise(found)}
    assert gaps == {3600.0}


def test_a_time_in_the_skipped_hour_fires_right_after_the_gap() -> None:
    """Clocks go forward on 2026-03-29 at 02:00 CET: 02:30 does not exist that night."""
    found = slots("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2)
    assert [(d.day, d.hour, d.minute) for d in found] == [(29, 3, 0), (30, 2, 30)]


def test_six_fields_count_seconds_and_macros_are_known() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert [d.second for d in slots("*/20 * * * * *", "UTC", start, 3)] == [20, 40, 0]
    assert [d.hour for d in slots("@hourly", "UTC", start, 2)] == [1, 2]


@pytest.mark.parametrize(
    ("cron", "zone", "field"),
    [
        ("61 * * * *", "UTC", "cron"),
        ("* * *", "UTC", "cron"),
        ("0 0 30 2 *", "UTC", "cron"),
        ("x" * 200, "UTC", "cron"),
        ("* * * * *", "Nowhere/Town", "timezone"),
        ("* * * * *", "/etc/passwd", "timezone"),
        ("* * * * *", "../../../etc/passwd", "timezone"),
        ("* * * * *", "", "timezone"),
    ],
)
def test_bad_cadences_name_their_field(cron: str, zone: str, field: str) -> None:
    with pytest.raises(InvalidTask) as raised:
        Calendar().check(cron, zone, ms(datetime(2026, 1, 1, tzinfo=UTC)))
    assert raised.value.field == field
