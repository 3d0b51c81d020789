"""The live status of `conveyor up`, read through the API it started."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from interfaces.key_entries import split_entry
from interfaces.terminal import StatusTerminal

REQUEST_TIMEOUT_S = 2.0
READY_TIMEOUT_S = 30.0  # an API that has not answered by then is reported, not waited for
READY_POLL_S = 0.2
STATUS_EVERY_S = 1.0
RATE_WINDOW_S = 5.0


class StatusUnavailable(Exception):
    """The figures cannot be read now; the message says why, in a few words."""


@dataclass(frozen=True, slots=True)
class Figures:
    waiting: int
    active: int
    workers: int
    finished: Mapping[str, int]  # per minute of the API's series: tasks that finished in it
    failed: Mapping[str, int]  # and how many of those failed


def admin_key(api_keys: str) -> str | None:
    """The first admin key of API_KEYS (`name:key:role,...`), each entry read as the API
    reads it."""
    for entry in api_keys.split(","):
        _, key, role = split_entry(entry.strip())
        if key and role.strip() == "admin":
            return key
    return None


class ApiProbe:
    """Reads from the API `conveyor up` started, as an admin when API_KEYS is set."""

    def __init__(self, base_url: str, key: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # Our own child on this machine: a proxy from the environment has no part in it.
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S, trust_env=False
        )

    def ready(self) -> bool:
        try:
            return self._http.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def figures(self) -> Figures:
        stats, live = self._read("/api/stats"), self._read("/api/workers")
        minutes = stats["throughput"]["perMinute"]
        return Figures(
            waiting=stats["waiting"],
            active=stats["active"],
            workers=len(live["workers"]),
            finished={str(minute["at"]): minute["finished"] for minute in minutes},
            failed={str(minute["at"]): minute["failed"] for minute in minutes},
        )

    def close(self) -> None:
        self._http.close()

    def _read(self, path: str) -> Any:
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise StatusUnavailable("api unreachable") from exc
        if response.status_code in (401, 403):
            raise StatusUnavailable("the status needs an admin key in API_KEYS")
        if response.status_code != 200:
            raise StatusUnavailable(f"api answered {response.status_code} to {path}")
        return response.json()


class Rate:
    """Events per second over the last few seconds, from counts per minute.

    Stored task counts drop when retention sweeps tasks away, so they give no rate. A
    minute's count only grows, so the rise of each minute between two readings is what
    happened in between; a minute that left the series rose no more."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._readings: deque[tuple[float, Mapping[str, int]]] = deque()

    def add(self, at: float, minutes: Mapping[str, int]) -> float | None:
        """The rate up to this reading; None until there are two readings."""
        self._readings.append((at, minutes))
        while len(self._readings) > 2 and at - self._readings[1][0] >= self._window_s:
            self._readings.popleft()
        since, before = self._readings[0]
        if at <= since:
            return None
        return risen(before, minutes) / (at - since)

    def reset(self) -> None:
        self._readings.clear()


def risen(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    return sum(max(count - before.get(minute, 0), 0) for minute, count in after.items())


def status_line(figures: Figures, finished: float | None, failed: float | None) -> str:
    parts = [
        f"waiting {figures.waiting}",
        f"active {figures.active}",
        f"finished/s {_rate(finished)}",
        f"failed/s {_rate(failed)}",
        f"workers {figures.workers}",
    ]
    return " | ".join(parts)


def _rate(per_s: float | None) -> str:
    return "-" if per_s is None else f"{per_s:.1f}"


class StatusBoard:
    """The status line's text, one reading of the API at a time."""

    def __init__(self, probe: ApiProbe, clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self._clock = clock
        self._finished = Rate()
        self._failed = Rate()

    def read(self) -> str:
        try:
            figures = self._probe.figures()
        except StatusUnavailable as exc:
            # A rate across an outage would be an average over it: start afresh.
            self._finished.reset()
            self._failed.reset()
            return f"{exc}; retrying"
        now = self._clock()
        finished = self._finished.add(now, figures.finished)
        return status_line(figures, finished, self._failed.add(now, figures.failed))


class Watch:
    """A thread that waits for the API to answer /ready (for a while, not forever), calls
    `on_ready(ready)`, then, on a terminal, redraws the status about once a second."""

    def __init__(
        self,
        probe: ApiProbe,
        on_ready: Callable[[bool], None],
        terminal: StatusTerminal | None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self._probe = probe
        self._on_ready = on_ready
        self._terminal = terminal
        self._ready_timeout_s = ready_timeout_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="up-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=REQUEST_TIMEOUT_S * 2 + 1)
        if not self._thread.is_alive():  # else it may still be reading through the probe
            self._probe.close()

    def _run(self) -> None:
        if self._terminal is not None:
            self._terminal.status("starting: waiting for the API to answer /ready")
        ready = self._wait_ready()
        if self._stopped.is_set():
            return
        self._on_ready(ready)
        if self._terminal is None:
            return
        board = StatusBoard(self._probe)
        while not self._stopped.is_set():
            self._terminal.status(board.read())
            self._stopped.wait(STATUS_EVERY_S)

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self._ready_timeout_s
        while not self._probe.ready():
            if time.monotonic() > deadline or self._stopped.wait(READY_POLL_S):
                return False
        return True
