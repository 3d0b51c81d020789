"""POST /api/tasks answered without the framework's request cycle, when nothing about the
request is unusual.

Producers call this route more than all the others together, and litestar's cycle around
it (routing, the middleware stack, signature parsing, dependency resolution, building the
response) cost more than the enqueue itself: with it one API process took fewer enqueues
per second than an Express server calling BullMQ. A request that is plainly in order, with
a Host we serve, no Origin, a JSON body of a declared length within the limit that decodes
into an `EnqueueBody`, and a key that may enqueue, is answered here by the same use case,
the same wire functions and the same error table, and counted in the same metrics.

Anything else goes to litestar, with the body already read handed on, so every refusal
(400, 401, 403, 413, 415, 422) keeps one author. A test sends the same requests both ways
and holds the answers equal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from litestar.enums import ScopeType
from litestar.exceptions import SerializationException
from litestar.serialization import decode_json
from litestar.types import (
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)
from pydantic import ValidationError
from pydantic_core import to_json

from application.enqueue_task import EnqueueTask
from interfaces.http.auth import AuthGuard, Principal, required_access
from interfaces.http.boundary import HostPolicy, is_json
from interfaces.http.errors import failure, failure_headers
from interfaces.http.request_metrics import Measured
from interfaces.http.schemas import EnqueueBody
from interfaces.http.wire import answer_to

ROUTE = "/api/tasks"
_READ = frozenset(
    {b"host", b"origin", b"content-type", b"content-length", b"transfer-encoding",
     b"authorization", b"x-api-key"}
)  # fmt: skip
_JSON_HEADERS = ((b"content-type", b"application/json"),)
_LENGTH_DIGITS = 12  # a longer Content-Length is over the limit whatever it says

ASGICall = Callable[[Scope, Receive, Send], Awaitable[None]]


class EnqueueShortcut:
    """Takes POST /api/tasks from the app (see `ConveyorApp`) once `start` has given it
    the use case; `framework` is litestar's own handling of a request."""

    def __init__(self, hosts: HostPolicy, guard: AuthGuard, max_body: int) -> None:
        self._hosts, self._guard, self._max_body = hosts, guard, max_body
        self._needs = required_access("POST", ROUTE)
        self._enqueue: EnqueueTask | None = None

    def start(self, enqueue: EnqueueTask) -> None:
        self._enqueue = enqueue

    def takes(self, scope: Scope) -> bool:
        """Whether the request is this route's (the checks of its headers come after)."""
        return (
            scope["type"] == ScopeType.HTTP
            and scope["path"] == ROUTE
            and scope.get("method") == "POST"
            and self._enqueue is not None
        )

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, framework: ASGICall
    ) -> None:
        started = time.perf_counter()
        headers = _headers(scope)
        principal = self._caller(headers)
        if principal is None:
            await framework(scope, receive, send)
            return
        received: list[ReceiveMessage] = []
        body = await _body(receive, received)
        data = _decoded(body) if body is not None else None
        if data is None:
            await framework(scope, _replaying(received, receive), send)
            return
        measured = Measured("POST", ROUTE, started)
        status = 500
        try:
            status, answer, extra = await _answer(self._enqueue, data, principal)
            await _send(send, status, answer, extra)
        finally:
            measured.done(status)

    def _caller(self, headers: dict[bytes, bytes]) -> Principal | None:
        """The caller, when the request passes every check litestar's way would make
        before reading the body; None sends it that way."""
        if b"origin" in headers or b"transfer-encoding" in headers:
            return None  # CORS, and a body of no declared length: the framework's
        host = headers.get(b"host")
        if not self._hosts.admits(None if host is None else host.decode("latin-1")):
            return None
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        length = headers.get(b"content-length", b"")
        declared = int(length) if length.isdigit() and len(length) <= _LENGTH_DIGITS else 0
        if not (is_json(content_type) and 0 < declared <= self._max_body):
            return None
        text = {name.decode(): value.decode("latin-1") for name, value in headers.items()}
        principal = self._guard.identify(text)
        return principal if principal is not None and principal.access >= self._needs else None


async def _answer(
    enqueue: EnqueueTask | None, data: EnqueueBody, principal: Principal
) -> tuple[int, bytes, dict[str, str]]:
    """What the route's handler and the app's error handlers answer: status, body as
    bytes, and the headers beside Content-Type and Content-Length."""
    headers: dict[str, str] = {}
    try:
        if enqueue is None:  # `takes` admits nothing before `start`
            raise RuntimeError("the enqueue shortcut was called before it started")
        status, body = answer_to(principal, await enqueue.execute(data.to_request(principal.name)))
    except Exception as exc:  # noqa: BLE001 - answered as the app's handlers answer it
        status, body = failure(exc)
        headers = failure_headers(exc)
    return status, to_json(body), headers


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The headers the checks read (the first of each, as litestar's way takes them)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _READ:
            found.setdefault(name, value)
    return found


async def _body(receive: Receive, received: list[ReceiveMessage]) -> bytes | None:
    """The whole body, or None when the client goes before sending it; every message
    read is kept in `received`, for the framework if it is to answer."""
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None
        if not message.get("more_body", False):
            return b"".join(part["body"] for part in received if part["type"] == "http.request")


def _decoded(body: bytes) -> EnqueueBody | None:
    """The body as litestar's way decodes it (msgspec, then the model, not strict), or
    None for the framework to refuse it in its own words."""
    try:
        return EnqueueBody.model_validate(decode_json(body), strict=False)
    except (SerializationException, ValidationError):
        return None


def _replaying(received: list[ReceiveMessage], receive: Receive) -> Receive:
    """`receive` for the framework: the messages already read, then the client's."""
    pending = list(received)

    async def replay() -> ReceiveMessage:
        return pending.pop(0) if pending else await receive()

    return replay


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    length = (b"content-length", str(len(body)).encode())
    more = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [*_JSON_HEADERS, length, *more],
    }
    answer: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(answer)
