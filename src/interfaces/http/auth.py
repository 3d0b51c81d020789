"""API keys and roles: who is calling (401) and whether the route allows it (403)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from hashlib import sha256
from typing import Any

from litestar import Request, Response
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send
from pydantic_core import to_json

from infrastructure.logging import get_logger
from interfaces.http.errors import error_response
from interfaces.key_entries import split_entry


class Access(IntEnum):
    """What a route demands, ordered: a role grants its own level and every lower one."""

    OPEN = 0
    PRODUCER = 1
    ADMIN = 2


ROLES = {"producer": Access.PRODUCER, "admin": Access.ADMIN}

# The one table of who may call what: (method, route) -> the least access it needs.
# Routes are litestar's path templates with parameter names elided, matched exactly, so a
# literal route (`/api/tasks/export`) never passes for a parameter one (`/api/tasks/{}`).
# `/*` covers a route and everything below it. A route not listed needs admin.
ROUTE_ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/health"): Access.OPEN,
    ("GET", "/ready"): Access.OPEN,
    ("GET", "/schema/*"): Access.OPEN,
    # The dashboard's page and scripts hold no data: they ask for the admin key and send it
    # with every API call, and the API routes they call are admin-only.
    ("GET", "/admin/queues"): Access.OPEN,
    ("GET", "/admin/queues/assets/{}"): Access.OPEN,
    ("POST", "/api/tasks"): Access.PRODUCER,
    ("POST", "/api/tasks/bulk"): Access.PRODUCER,
    ("POST", "/tasks"): Access.PRODUCER,  # seed 000
    ("POST", "/api/job"): Access.PRODUCER,  # seed 001
    ("POST", "/jobs/enqueue"): Access.PRODUCER,  # seed 003
    ("POST", "/api/templates/{}/use"): Access.PRODUCER,
    ("GET", "/api/tasks"): Access.PRODUCER,  # the handler narrows it to the key's tasks
    ("GET", "/api/tasks/{}"): Access.PRODUCER,  # the handler checks `may_read`
    ("GET", "/api/batches/{}"): Access.PRODUCER,
}

_PARAMETER = re.compile(r"\{[^}]*\}")


@lru_cache(maxsize=1024)
def required_access(method: str, route: str) -> Access:
    """The access `ROUTE_ACCESS` demands for a request matched to the `route` template."""
    method = "GET" if method == "HEAD" else method
    template = _PARAMETER.sub("{}", route.rstrip("/") or "/")
    if (method, template) in ROUTE_ACCESS:
        return ROUTE_ACCESS[method, template]
    for (row_method, row_route), access in ROUTE_ACCESS.items():
        subtree = row_route.removesuffix("/*")
        if row_method == method and row_route.endswith("/*") and _within(template, subtree):
            return access
    return Access.ADMIN


def _within(template: str, root: str) -> bool:
    return template == root or template.startswith(f"{root}/")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an API key's name (recorded as `createdBy` and in the audit log) and role."""

    name: str
    role: str

    @property
    def access(self) -> Access:
        return ROLES[self.role]


ANONYMOUS = Principal("anonymous", "admin")  # every caller, when no keys are configured


def may_read(principal: Principal, created_by: str | None) -> bool:
    """Admins read every task; a producer only those created with its own key."""
    return principal.access >= Access.ADMIN or created_by == principal.name


class ApiKeyError(ValueError):
    """API_KEYS cannot be parsed; the message names the entry but never shows a key."""


_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


class ApiKeys:
    """The keys of API_KEYS (`name:key:role,...`), kept as SHA-256 digests.

    Comparing fixed-length digests with `hmac.compare_digest`, against every key with no
    early exit, keeps the time taken independent of which key matched and of its length.
    """

    def __init__(self, keys: Iterable[tuple[str, Principal]]) -> None:
        self._digests = [(_digest(key), principal) for key, principal in keys]

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        entries = [entry.strip() for entry in text.split(",")]
        keys = [_entry(number, entry) for number, entry in enumerate(entries, 1) if entry]
        _check_unique(keys)
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    @property
    def principals(self) -> list[Principal]:
        return [principal for _, principal in self._digests]

    def identify(self, key: str) -> Principal | None:
        presented = _digest(key)
        found = None
        for digest, principal in self._digests:
            if hmac.compare_digest(digest, presented):
                found = principal
        return found


def _digest(key: str) -> bytes:
    return sha256(key.encode()).digest()


def _entry(number: int, entry: str) -> tuple[str, Principal]:
    name, key, role = split_entry(entry)
    where = f"API_KEYS entry {number}"
    if not key:
        raise ApiKeyError(f"{where}: expected name:key:role")
    if not _NAME.match(name.strip()):
        raise ApiKeyError(f"{where}: the name must be 1-64 of A-Z a-z 0-9 . _ @ -")
    where = f"{where} ({name.strip()!r})"
    if role.strip() not in ROLES:
        raise ApiKeyError(f"{where}: unknown role {role.strip()!r}; expected producer or admin")
    if key != key.strip():
        raise ApiKeyError(f"{where}: the key has leading or trailing spaces")
    return key, Principal(name.strip(), role.strip())


def _check_unique(keys: list[tuple[str, Principal]]) -> None:
    """Two entries may share a name (old and new key while rotating), not a key or a role."""
    seen_keys: dict[str, str] = {}
    roles: dict[str, str] = {}
    for key, principal in keys:
        if key in seen_keys:
            names = f"{seen_keys[key]!r} and {principal.name!r}"
            raise ApiKeyError(f"API_KEYS entries {names} have the same key")
        seen_keys[key] = principal.name
        if roles.setdefault(principal.name, principal.role) != principal.role:
            raise ApiKeyError(f"API_KEYS gives {principal.name!r} two different roles")


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of `Authorization: Bearer <key>`, else of `X-API-Key: <key>`."""
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key", "").strip() or None


_KEY_HEADERS = (b"authorization", b"x-api-key")


def _key_headers(scope: Scope) -> dict[str, str]:
    """The headers a key may come in (the first of each), read from the scope in one pass:
    a parsed copy of every header cost more than the rest of the check."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name.lower() in _KEY_HEADERS:
            found.setdefault(name.lower().decode(), value.decode("latin-1"))
    return found


class AuthGuard:
    """The app's one guard: it identifies the caller, stores the principal in the scope
    (see `caller`), and refuses the request when its role falls short.

    It runs as a middleware, after routing (the route's template decides the access it
    needs): as a litestar guard it cost a copy of the route handler per request."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP:
                try:
                    self.admit(scope, _key_headers(scope) if self._keys.enabled else {})
                except (NotAuthorizedException, PermissionDeniedException) as refused:
                    # Answered here, through the `send` the outer middleware gave (CORS
                    # headers for an allowed origin reach a refusal too).
                    await _refusal(refused)(scope, receive, send)
                    return
            await app(scope, receive, send)

        return guarded

    def admit(self, scope: Scope, headers: Mapping[str, str]) -> None:
        """Store the caller in `scope`; NotAuthorized or PermissionDenied if it may not."""
        required = required_access(scope.get("method", "GET"), scope["path_template"])
        principal = self.identify(headers)
        if principal is not None:
            scope["auth"] = principal
        if required is Access.OPEN:
            return
        if principal is None:
            raise NotAuthorizedException(self._missing(headers))
        if principal.access < required:
            role = required.name.lower()
            raise PermissionDeniedException(
                f"this route needs the {role} role; key {principal.name!r} is a {principal.role}"
            )

    def identify(self, headers: Mapping[str, str]) -> Principal | None:
        if not self._keys.enabled:
            return ANONYMOUS
        key = presented_key(headers)
        return self._keys.identify(key) if key is not None else None

    @staticmethod
    def _missing(headers: Mapping[str, str]) -> str:
        if presented_key(headers) is None:
            return "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>"
        return "the API key is not valid"

    def announce(self) -> None:
        """Log, at start, whether the API is protected: an open API must not go unnoticed."""
        log = get_logger("conveyor.http")
        if self._keys.enabled:
            keys = {principal.name: principal.role for principal in self._keys.principals}
            log.info("api.auth_enabled", keys=keys)
            return
        log.warning(
            "api.auth_disabled",
            detail="API_KEYS is empty: anyone who can reach this port is an admin",
        )


def caller(request: Request[Any, Any, Any]) -> Principal:
    """Whoever `AuthGuard` identified for this request. The hot routes read it here rather
    than as a dependency: litestar resolves two dependencies in a task group of their own,
    a sixth of an enqueue's cost."""
    principal = request.scope.get("auth")
    if isinstance(principal, Principal):
        return principal
    raise NotAuthorizedException("an API key is required")


def unauthorized(_: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    """401 in the uniform shape, with the challenge RFC 6750 asks of a Bearer API."""
    response = error_response(401, "unauthorized", exc.detail)
    response.headers.update(_CHALLENGE)
    return response


def _refusal(exc: NotAuthorizedException | PermissionDeniedException) -> ASGIResponse:
    """401 or 403 in the uniform shape (`unauthorized` adds the Bearer challenge)."""
    if isinstance(exc, NotAuthorizedException):
        body, status, headers = {"error": "unauthorized", "detail": exc.detail}, 401, _CHALLENGE
    else:
        body, status, headers = {"error": "forbidden", "detail": exc.detail}, 403, {}
    return ASGIResponse(
        body=to_json(body), status_code=status, media_type=MediaType.JSON, headers=headers
    )


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="conveyor"'}
provide_principal = caller  # the `principal` dependency of the other routes


AUTH_EXCEPTION_HANDLERS: dict[Any, Any] = {NotAuthorizedException: unauthorized}
