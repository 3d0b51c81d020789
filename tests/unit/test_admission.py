"""Admission's pieces without Redis: the limits setting, the Retry-After estimate, and
what the client and the CLI make of a 429."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from domain.admission import MAX_RETRY_AFTER_S, DepthLimits, finished_last_minute, retry_after_s
from infrastructure.settings import Settings
from interfaces.cli import main
from interfaces.client import ConveyorClient, TooManyRequests

FULL = {"error": "queue_full", "detail": "queue 'default' is full: ...; retry in about 7 s"}


def test_depth_limits_per_queue_override_the_default() -> None:
    settings = Settings(max_queue_depth=100, queue_max_depths=" reports=5 , bulk=0")
    limits = settings.depth_limits
    assert (limits.of("default"), limits.of("reports"), limits.of("bulk")) == (100, 5, 0)
    assert not DepthLimits().any
    assert DepthLimits(0, {"bulk": 1}).any


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"queue_max_depths": "reports"}, "'reports' is not queue=limit"),
        ({"queue_max_depths": "reports=-1"}, "'reports=-1' is not queue=limit"),
        ({"queue_max_depths": "a=1,a=2"}, "queue 'a' is named twice"),
        ({"queues": "default,a", "queue_max_depths": "b=3"}, "b: not in QUEUES (default,a)"),
        ({"max_queue_depth": -1}, "greater than or equal to 0"),
        ({"retain_completed_count": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_limits_stop_the_start_naming_the_setting(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**overrides)
    (error,) = refused.value.errors()
    assert error["loc"] == (next(iter(overrides.keys() - {"queues"})),)
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("excess", "per_minute", "seconds"),
    [(1, 0, MAX_RETRY_AFTER_S), (1, 60, 1), (2, 3, 40), (1, 600, 1), (10_000, 60, 60)],
)
def test_retry_after_is_the_time_to_drain_the_excess_at_the_recent_pace(
    excess: int, per_minute: float, seconds: int
) -> None:
    assert retry_after_s(excess, per_minute) == seconds


def test_the_last_minute_slides_over_two_counters() -> None:
    assert finished_last_minute(10, 60, 15_000) == 10 + 45  # a quarter into this minute


def _client(status: int, headers: dict[str, str]) -> ConveyorClient:
    reply = httpx.Response(status, json=FULL, headers=headers)
    return ConveyorClient("http://conveyor.test", transport=httpx.MockTransport(lambda _: reply))


def test_the_client_raises_too_many_requests_with_the_servers_retry_after() -> None:
    with _client(429, {"Retry-After": "7"}) as conveyor, pytest.raises(TooManyRequests) as full:
        conveyor.enqueue("echo", {})
    assert (full.value.status, full.value.error, full.value.retry_after_s) == (429, "queue_full", 7)


def test_the_cli_says_nothing_was_stored_and_when_to_try_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _client(429, {"Retry-After": "7"}) as conveyor:
        assert main(["enqueue", "echo"], client=conveyor) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"conveyor: {FULL['detail']}",
        "  (nothing was stored; try again in 7 s)",
    ]
