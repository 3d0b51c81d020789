"""What a request may send: strict numbers, due times and payloads within bounds."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000
MAX_PAYLOAD_DEPTH = 32  # nesting levels of a payload, the object itself the first


def _within_ten_years(moment: datetime) -> datetime:
    """A producer's due time: one that names no zone is UTC; in the past means now."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if millis(moment) > time.time() * 1000 + TEN_YEARS_MS:
        raise ValueError("must be at most 10 years ahead")
    return moment


def _shallow(payload: dict[str, Any]) -> dict[str, Any]:
    """Level by level, without recursion: a body of a million brackets costs no stack."""
    level: list[Any] = [payload]
    for _ in range(MAX_PAYLOAD_DEPTH):
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
        if not level:
            return payload
    raise ValueError(f"must be nested at most {MAX_PAYLOAD_DEPTH} levels deep")


def _exactly(*kinds: type) -> Any:
    """A before-validator taking only JSON values of `kinds`, never `true` for 1 or "100"
    for 100. (pydantic's Strict types would not do: litestar validates with strict=False,
    which overrides them.)"""
    expected = {int: "integer", float: "number", bool: "boolean"}[kinds[0]]

    def check(value: Any) -> Any:
        if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
            return value
        raise PydanticCustomError(f"{expected}_type", f"Input should be a JSON {expected}")

    return BeforeValidator(check)


DueTime = Annotated[datetime, AfterValidator(_within_ten_years)]
Payload = Annotated[dict[str, Any], AfterValidator(_shallow)]
WireInt = Annotated[int, _exactly(int)]
WireFloat = Annotated[float, _exactly(float, int)]  # a JSON number; 2 is as good as 2.0
WireBool = Annotated[bool, _exactly(bool)]
BackoffDelay = Annotated[WireInt, Field(ge=0, le=TEN_YEARS_MS)]


def millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
