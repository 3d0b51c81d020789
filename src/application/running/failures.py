"""What a handler hands back, made storable: its failure as a domain Failure, its result
as plain JSON."""

from __future__ import annotations

import traceback
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from application.handlers import NonRetryableError, RetryAfter
from domain.task import Failure, TaskError

_TRACEBACK_LIMIT = 2_000  # characters kept: the end, where the cause is
_JSON = TypeAdapter(Any)


def json_value(result: Any) -> Any:
    """The result as JSON data (models, dataclasses, dates converted); ValueError if it
    has no JSON form."""
    try:
        return _JSON.dump_python(result, mode="json")
    except PydanticSerializationError as exc:
        raise ValueError(str(exc)) from None


class RaisedInChild(Exception):
    """A handler raised in a child process: its failure, as `failure_from` made it there
    (the traceback is the child's)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error.message)
        self.failure = failure


def failure_from(exc: BaseException) -> Failure:
    if isinstance(exc, RaisedInChild):
        return exc.failure
    error = TaskError(type(exc).__name__, str(exc), _summary(exc))
    if isinstance(exc, RetryAfter):
        return Failure(error, retry_after_ms=max(exc.delay_ms, 0))
    if isinstance(exc, NonRetryableError):
        return Failure(error, retryable=False)
    return Failure(error)


def unstorable(reason: ValueError) -> Failure:
    """The failure of a handler whose result has no JSON form: retrying cannot help."""
    return failure_from(NonRetryableError(f"the handler's result cannot be stored: {reason}"))


def _summary(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc, limit=-8))
    return text[-_TRACEBACK_LIMIT:]
