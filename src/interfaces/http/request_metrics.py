"""The API process's own request metrics: requests, their duration and those in flight,
by method, route template and status (the series litestar's Prometheus plugin names).

Its own middleware rather than the plugin's: the plugin built a Request, a label dict and
four label lookups per request, a tenth of an enqueue's cost; here a label set's series
are looked up once and kept."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

PREFIX = "conveyor"
_LABELS = ("method", "path", "status_code", "app_name")
_UNCOUNTED = frozenset({"/metrics", "/health", "/ready"})  # scrapes and probes

_REQUESTS = Counter(f"{PREFIX}_requests_total", "Total requests", _LABELS)
_ERRORS = Counter(f"{PREFIX}_requests_error_total", "Total errors in requests", _LABELS)
_DURATION = Histogram(f"{PREFIX}_request_duration_seconds", "Request duration, in seconds", _LABELS)
_IN_FLIGHT = Gauge(
    f"{PREFIX}_requests_in_progress",
    "Total requests currently in progress",
    _LABELS,
    multiprocess_mode="livesum",
)


@lru_cache(maxsize=4096)  # bounded: methods x route templates x statuses
def _series(method: str, path: str, status: int) -> tuple[Any, Any, Any]:
    labels = (method, path, str(status), PREFIX)
    return _REQUESTS.labels(*labels), _DURATION.labels(*labels), _ERRORS.labels(*labels)


@lru_cache(maxsize=1024)
def _in_flight(method: str, path: str) -> Any:
    return _IN_FLIGHT.labels(method, path, "200", PREFIX)


class Measured:
    """One request in the metrics: in flight from its start until `done` counts it."""

    __slots__ = ("_in_flight", "_method", "_path", "_started")

    def __init__(self, method: str, path: str, started: float) -> None:
        self._method, self._path, self._started = method, path, started
        self._in_flight = _in_flight(method, path)
        self._in_flight.inc()

    def done(self, status: int) -> None:
        self._in_flight.dec()
        requests, duration, errors = _series(self._method, self._path, status)
        requests.inc()
        duration.observe(time.perf_counter() - self._started)
        if status >= 500:
            errors.inc()


def request_metrics(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: runs after routing, so the route's template is known (a
    path that matches no route is never counted: its labels would be the caller's)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path_template", "")
        if scope["type"] != ScopeType.HTTP or path in _UNCOUNTED:
            await app(scope, receive, send)
            return
        status = [200]

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        measured = Measured(scope.get("method", "GET"), path, time.perf_counter())
        try:
            await app(scope, receive, sent)
        except HTTPException as refused:  # raised before any answer (the boundary's checks):
            status[0] = refused.status_code  # litestar's outer handler sends it, past `sent`
            raise
        finally:
            measured.done(status[0])

    return middleware
