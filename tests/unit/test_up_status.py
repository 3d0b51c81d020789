"""The status line of `conveyor up`: its figures, its rates, and what it says without them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from interfaces.up_status import (
    Figures,
    Rate,
    StatusBoard,
    StatusUnavailable,
    Watch,
    admin_key,
    status_line,
)


def figures(finished: dict[str, int], failed: dict[str, int] | None = None) -> Figures:
    return Figures(waiting=7, active=3, workers=2, finished=finished, failed=failed or {})


def test_the_line_names_each_figure() -> None:
    line = status_line(figures({}), 12.345, 0.0)
    assert line == "waiting 7 | active 3 | finished/s 12.3 | failed/s 0.0 | workers 2"


def test_a_rate_not_known_yet_is_a_dash() -> None:
    assert "finished/s - | failed/s -" in status_line(figures({}), None, None)


def test_a_rate_is_what_the_minutes_rose_by_over_the_time_between_readings() -> None:
    rate = Rate(window_s=5)
    assert rate.add(0.0, {"m1": 10}) is None
    assert rate.add(2.0, {"m1": 14, "m2": 2}) == 3.0  # 4 more in m1, 2 in a new minute


def test_a_minute_leaving_the_series_takes_nothing_away() -> None:
    rate = Rate(window_s=5)
    rate.add(0.0, {"m1": 100, "m2": 5})
    assert rate.add(1.0, {"m2": 6, "m3": 1}) == 2.0


def test_a_rate_spans_about_the_window_and_no_more() -> None:
    rate = Rate(window_s=2)
    rate.add(0.0, {"m": 0})
    rate.add(1.0, {"m": 100})  # a burst, then the window moves past it
    rate.add(2.0, {"m": 100})
    rate.add(3.0, {"m": 100})
    assert rate.add(4.0, {"m": 102}) == 1.0


def test_admin_key_is_the_first_admin_entry_and_may_hold_colons() -> None:
    keys = "app:producer-key:producer, ops:admin:key:with:colons:admin ,other:k2:admin"
    assert admin_key(keys) == "admin:key:with:colons"


@pytest.mark.parametrize("keys", ["", "app:producer-key:producer", "broken"])
def test_no_admin_key_without_an_admin_entry(keys: str) -> None:
    assert admin_key(keys) is None


class FakeProbe:
    """Answers /ready as told; figures come from a list, an exception standing for a
    failed read."""

    def __init__(self, ready: bool, readings: list[Figures | StatusUnavailable]) -> None:
        self._ready = ready
        self._readings = readings
        self.closed = False

    def ready(self) -> bool:
        return self._ready

    def figures(self) -> Figures:
        reading = self._readings.pop(0) if len(self._readings) > 1 else self._readings[0]
        if isinstance(reading, StatusUnavailable):
            raise reading
        return reading

    def close(self) -> None:
        self.closed = True


def ticks() -> Iterator[float]:
    yield from (0.0, 1.0, 2.0, 3.0)


def test_the_board_says_why_there_are_no_figures_and_starts_its_rates_afresh() -> None:
    clock = ticks()
    probe = FakeProbe(
        True,
        [
            figures({"m": 1}),
            figures({"m": 3}),
            StatusUnavailable("api unreachable"),
            figures({"m": 9}),
        ],
    )
    board = StatusBoard(probe, clock=lambda: next(clock))  # type: ignore[arg-type]
    assert "finished/s -" in board.read()
    assert "finished/s 2.0" in board.read()
    assert board.read() == "api unreachable; retrying"
    assert "finished/s -" in board.read()  # not 6 over the outage


class Recorder:
    """The terminal's status calls."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.drawn = threading.Event()

    def status(self, text: str) -> None:
        self.shown.append(text)
        if text.startswith("waiting"):
            self.drawn.set()


def test_an_api_that_never_answers_ready_is_reported_and_not_waited_for() -> None:
    announced: list[bool] = []
    done = threading.Event()
    probe = FakeProbe(False, [StatusUnavailable("api unreachable")])

    def on_ready(ready: bool) -> None:
        announced.append(ready)
        done.set()

    watch = Watch(probe, on_ready, None, ready_timeout_s=0.3)  # type: ignore[arg-type]
    watch.start()
    assert done.wait(timeout=5)
    watch.stop()
    assert announced == [False]
    assert probe.closed


def test_on_a_terminal_the_watch_draws_the_status_once_the_api_is_ready() -> None:
    terminal = Recorder()
    announced: list[bool] = []
    probe = FakeProbe(True, [figures({"m": 0})])
    watch = Watch(probe, announced.append, terminal)  # type: ignore[arg-type]
    watch.start()
    assert terminal.drawn.wait(timeout=5)
    watch.stop()
    assert announced == [True]
    assert terminal.shown[0].startswith("starting")
