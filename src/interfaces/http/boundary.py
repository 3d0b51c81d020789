"""What a request must be before a route reads it: for a host we serve, from an origin we
allow, and with a JSON body.

An API without keys is open to anything that reaches its port, a browser included. A web
page cannot read the answers (CORS), but without these checks it could still send:
through DNS rebinding (its own host name resolving to 127.0.0.1, refused by the Host
check), or as a "simple" cross-site request that no preflight stops: a form post or a
text/plain body (refused: only JSON is read, and JSON needs a preflight), or a bare POST
to an action such as /kill (refused: a write from a foreign Origin).
"""

from __future__ import annotations

import re
from typing import Any

from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_JSON = re.compile(r"application/(?:[a-z0-9!#$&^_.+-]+\+)?json")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Health probes call by address (a compose healthcheck, a kubelet) whatever ALLOWED_HOSTS
# names, and tell a page nothing it could use.
_PROBES = frozenset({"/health", "/ready"})
_WANTED = frozenset(
    {b"host", b"origin", b"content-type", b"content-length", b"transfer-encoding",
     b"access-control-request-method", b"access-control-request-headers"}
)  # fmt: skip


def host_name(value: str) -> str:
    """The host of a Host header or an ALLOWED_HOSTS entry: no port, no IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:3000
        return value[1:].partition("]")[0]
    if value.count(":") > 1:  # a bare IPv6 address, as an entry may give it
        return value
    return value.partition(":")[0].rstrip(".")


class HostPolicy:
    """ALLOWED_HOSTS: exact names, `*.example.com` for any name below one, `*` for all."""

    def __init__(self, allowed: list[str]) -> None:
        self.any = "*" in allowed
        self._names = {host_name(host) for host in allowed if not host.startswith("*.")}
        self._suffixes = tuple(f".{host_name(host[2:])}" for host in allowed if host[:2] == "*.")

    def admits(self, header: str | None) -> bool:
        if self.any:
            return True
        name = host_name(header or "")
        return name in self._names or (bool(name) and name.endswith(self._suffixes))


class UnsupportedMediaType(HTTPException):
    status_code = 415


class Boundary(ASGIMiddleware):
    """Refuses, in the uniform error shape, before guards and handlers run: a foreign Host
    (400), a refused CORS preflight (400), a write from a foreign Origin (403), a body
    that is not JSON on a route that reads one (415). Answers an allowed preflight and
    marks the answers to an allowed origin: the CORS middleware's work, done here so that
    its refusals are JSON too."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, hosts: HostPolicy, origins: list[str]) -> None:
        self._hosts = hosts
        # Keys travel in headers, never cookies, so credentials stay disallowed.
        self._cors = CORSConfig(allow_origins=origins)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = _headers(scope)
        host = headers.get("host")
        if not self._hosts.admits(host) and scope["path"] not in _PROBES:
            raise HTTPException(
                status_code=400,
                detail=f"this API does not serve the host {host!r} (see ALLOWED_HOSTS)",
            )
        origin = headers.get("origin")
        if origin is not None:
            method = str(scope.get("method", "GET"))  # `scopes` admits HTTP only
            if method == "OPTIONS" and "access-control-request-method" in headers:
                await self._preflight(origin, headers)(scope, receive, send)
                return
            self._check_origin(origin, host, method)
        _check_body(scope, headers)
        if origin is not None and self._cors.is_origin_allowed(origin):
            send = _marking(send, origin)
        await next_app(scope, receive, send)

    def _check_origin(self, origin: str, host: str | None, method: str) -> None:
        """A write from a web page is refused unless the page is the API's own or its
        origin is in CORS_ORIGINS (reads are safe: CORS keeps their answers from it)."""
        same = host is not None and origin.lower().partition("://")[2] == host.lower()
        if method in _WRITES and not same and not self._cors.is_origin_allowed(origin):
            raise PermissionDeniedException(
                f"a page from {origin!r} may not change anything here (see CORS_ORIGINS)"
            )

    def _preflight(self, origin: str, headers: dict[str, str]) -> ASGIResponse:
        if not self._cors.is_origin_allowed(origin):
            raise HTTPException(
                status_code=400,
                detail=f"CORS: the origin {origin!r} is not allowed (see CORS_ORIGINS)",
            )
        allowed = {**self._cors.preflight_headers, "Access-Control-Allow-Origin": origin}
        if requested := headers.get("access-control-request-headers", "").strip():
            allowed["Access-Control-Allow-Headers"] = requested  # any header is allowed
        return ASGIResponse(status_code=204, headers=allowed)


def _marking(send: Send, origin: str) -> Send:
    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            response_headers = MutableScopeHeaders.from_message(message)
            response_headers["Access-Control-Allow-Origin"] = origin
            response_headers["Vary"] = "Origin"
        await send(message)

    return marked


def _headers(scope: Scope) -> dict[str, str]:
    """The few request headers these checks read (the first of each), in one pass."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            found.setdefault(name.decode(), value.decode("latin-1"))
    return found


def _check_body(scope: Scope, headers: dict[str, str]) -> None:
    """A route that reads a JSON body reads nothing else: the three content types a page
    may send without a preflight (form, multipart, text/plain) and a body without a
    type are refused before the body is read."""
    if not _reads_json(scope):
        return
    content_type = headers.get("content-type")
    if content_type is None and not _has_body(headers):
        return  # no body at all: the route answers that itself (400, or its default)
    media = _media(content_type)
    if not _JSON.fullmatch(media):
        shown = media or "a body without a Content-Type"
        raise UnsupportedMediaType(detail=f"the body must be application/json, not {shown}")


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (`application/json`, `application/x+json`)."""
    return _JSON.fullmatch(_media(content_type)) is not None


def _media(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _reads_json(scope: Scope) -> bool:
    handler: Any = scope.get("route_handler")
    return handler is not None and "data" in handler.parsed_fn_signature.parameters


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers
