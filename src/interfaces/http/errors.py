"""One table from errors to HTTP statuses; every error body is `{error, detail, fields?}`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar._signature.types import ExtendedMsgSpecValidationError
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    SerializationException,
    ValidationException,
)
from litestar.openapi import ResponseSpec
from litestar.params import ParameterKwarg
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from domain.errors import (
    DuplicateSchedule,
    DuplicateTask,
    InvalidTask,
    InvalidTransition,
    LockLost,
    NotReplicated,
    QueueFull,
    QueueUnavailable,
    ScheduleNotFound,
    SchedulerError,
    StoreFull,
    TaskActive,
    TaskChanged,
    TaskNotFound,
    TemplateNotFound,
    TooManyStreams,
)
from infrastructure.logging import get_logger
from infrastructure.redis.reachable import out_of_memory
from interfaces.http.schemas import ErrorBody

_STATUS: list[tuple[type[Exception], int, str]] = [
    (InvalidTask, 422, "invalid_request"),
    (TaskNotFound, 404, "not_found"),
    (TemplateNotFound, 404, "not_found"),
    (ScheduleNotFound, 404, "not_found"),
    (DuplicateSchedule, 409, "conflict"),
    (DuplicateTask, 409, "conflict"),
    (TaskActive, 409, "task_active"),
    (InvalidTransition, 409, "conflict"),
    (TaskChanged, 409, "conflict"),
    (LockLost, 409, "conflict"),
    (TooManyStreams, 429, "too_many_requests"),
    (QueueFull, 429, "queue_full"),
    (QueueUnavailable, 503, "unavailable"),
    (RedisError, 503, "unavailable"),
    (RedisClusterException, 503, "unavailable"),  # no Cluster node answers, and the like
    (OSError, 503, "unavailable"),
]


def error_body(error: str, detail: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def error_response(status: int, error: str, detail: str, fields: Any = None) -> Response[Any]:
    return Response(content=error_body(error, detail, fields), status_code=status)


def failure(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The status and body that answer `exc`: its row of the table, else a logged 500."""
    for kind, status, error in _STATUS:
        if isinstance(exc, kind):
            fields = exc.fields if isinstance(exc, InvalidTask) else None
            detail = str(exc) if status != 503 else _unavailable(exc)
            return status, error_body(error, detail, fields)
    return _unexpected(exc)


def failure_headers(exc: Exception) -> dict[str, str]:
    """The headers that go with `failure(exc)`: a full queue says when to try again."""
    return {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, QueueFull) else {}


def _unavailable(exc: Exception) -> str:
    """A 503's detail, which never repeats Redis's own words (they may name its address)."""
    if isinstance(exc, StoreFull) or (isinstance(exc, ResponseError) and out_of_memory(exc)):
        return "Redis refuses writes (out of memory); nothing was stored; retry shortly"
    if isinstance(exc, NotReplicated):
        return "no replica confirmed the task in time; enqueue again with the same id"
    return "Redis is unreachable; retry shortly"


def domain_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, body = failure(exc)
    return Response(content=body, status_code=status, headers=failure_headers(exc))


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return validation_error(exc, request.scope.get("route_handler"))
    if (fields := _body_fields_taken_for_dependencies(exc)) is not None:
        return error_response(422, "invalid_request", "the request failed validation", fields)
    if exc.status_code >= 500:
        return unexpected_error(request, exc)
    if _number_out_of_range(exc):
        return error_response(422, "invalid_request", "the request failed validation", _RANGE)
    detail = exc.detail or "request failed"
    return error_response(exc.status_code, _name(exc.status_code), detail)


def validation_error(exc: ValidationException, handler: Any = None) -> Response[Any]:
    """litestar reports a body that is not JSON, and one that fails its schema, alike:
    the first is a 400, the second a 422 naming each field. A parameter is named as the
    request spells it (`waitMs`), not as the handler does (`wait_ms`)."""
    parameters: dict[str, Any] = handler.parsed_fn_signature.parameters if handler else {}
    names = _wire_names(parameters)
    extra = exc.extra if isinstance(exc.extra, list) else []
    fields = {
        _field(item, names): clean_message(str(item.get("message")))
        for item in extra
        if isinstance(item, dict)
    }
    if "data" in fields and "data" in parameters and parameters["data"].has_default:
        # litestar names an optional body left out whenever another field fails: noise
        del fields["data"]
    if not fields:
        return error_response(400, "bad_request", f"malformed request: {exc.detail}")
    if "data" in fields:  # litestar's name for a body that is missing altogether
        return error_response(400, "bad_request", "a JSON request body is required")
    return error_response(422, "invalid_request", "the request failed validation", fields)


def _body_fields_taken_for_dependencies(exc: HTTPException) -> dict[str, str] | None:
    """A body field named like one of the handler's dependencies (`{"principal": 1}`)
    fails pydantic's check, and litestar, matching the error by name alone, blames the
    dependency and raises a 500. Only the body is decoded by pydantic here (dependencies
    are plain objects), so such an error is the request's: the fields it names."""
    cause = exc.__cause__
    if not isinstance(exc, InternalServerException):
        return None
    if not isinstance(cause, ExtendedMsgSpecValidationError) or not cause.errors:
        return None
    return {
        ".".join(str(part) for part in error.get("loc", ())) or "body": clean_message(
            str(error.get("msg"))
        )
        for error in cause.errors
    }


def _field(item: dict[str, Any], wire_names: dict[str, str]) -> str:
    key = str(item.get("key") or "body")
    return key if item.get("source") == "body" else wire_names.get(key, key)


def _wire_names(parameters: dict[str, Any]) -> dict[str, str]:
    """The handler's parameter names -> the names a request gives (`wait_ms` -> `waitMs`)."""
    return {
        name: kwarg.name
        for name, parameter in parameters.items()
        if isinstance(kwarg := parameter.kwarg_definition, ParameterKwarg) and kwarg.name
    }


# msgspec refuses a number no 64-bit float holds (1e400) or an integer of more than 4,300
# digits (Python's own int-to-str limit) while it parses, before any field is known.
_RANGE = {"body": "a number is out of range: at most a 64-bit float, or 4,300 digits"}


def _number_out_of_range(exc: HTTPException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, SerializationException) and "out of range" in str(cause)


def clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


def unexpected_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, body = _unexpected(exc)
    return Response(content=body, status_code=status)


def _unexpected(exc: Exception) -> tuple[int, dict[str, Any]]:
    get_logger("conveyor.http").exception("http.unexpected_error", error=repr(exc))
    return HTTP_500_INTERNAL_SERVER_ERROR, error_body("internal", "unexpected error")


def _name(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        422: "invalid_request",
        429: "too_many_requests",
        503: "unavailable",
    }.get(status, "error")


_MEANINGS = {
    400: "Malformed request: a body that is not JSON, say, or none where one is needed",
    401: "No API key, or an unknown one (only when API_KEYS is set)",
    403: "The key's role does not allow this route",
    404: "No such task, template or batch",
    409: "The task's status does not allow this, or the id is taken",
    413: "The request body is larger than 1 MiB",
    415: "The body is not JSON: send Content-Type: application/json",
    422: "A field or parameter failed validation; `fields` names each",
    429: "This API process serves as many event streams as it may (MAX_EVENT_STREAMS)",
    503: "Redis is unreachable, or refuses writes (out of memory); retry shortly",
}
_QUEUE_FULL = (
    "The queue holds as many unfinished tasks as its depth limit allows (MAX_QUEUE_DEPTH, "
    "QUEUE_MAX_DEPTHS); nothing was stored. `Retry-After` says in how many seconds room is "
    "likely"
)
QUERY = (400, 422)  # what checking path and query parameters may answer
BODY = (400, 413, 415, 422)  # and checking a JSON body


def documented(
    *statuses: int, guarded: bool = True, enqueues: bool = False
) -> dict[int, ResponseSpec]:
    """The error responses of a route for the OpenAPI schema, all in the one error shape:
    `statuses`, and when `guarded` those every route behind the keys that reads Redis may
    answer (401, 403, 503); a route that `enqueues` may find the queue full (429)."""
    always = (401, 403, 503) if guarded else ()
    specs = {
        status: ResponseSpec(ErrorBody, description=_MEANINGS[status], generate_examples=False)
        for status in sorted({*always, *statuses})
    }
    if enqueues:
        specs[429] = ResponseSpec(ErrorBody, description=_QUEUE_FULL, generate_examples=False)
    return dict(sorted(specs.items()))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SchedulerError: domain_error,
    RedisError: domain_error,
    RedisClusterException: domain_error,
    OSError: domain_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
