"""GET /api/audit: the audit log, or one target's entries, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from application.audit import ReadAudit
from interfaces.http.errors import QUERY, documented
from interfaces.http.schemas import ID_PATTERN, Timestamp, WireModel

LimitParam = Annotated[int, QueryParameter(name="limit", ge=1, le=500)]
# A stream id, as handed out in `nextCursor`; anything else would be a Redis error.
CursorParam = Annotated[str | None, QueryParameter(name="before", pattern=r"^\d{1,20}-\d{1,20}$")]
TargetParam = Annotated[
    str | None,
    QueryParameter(
        name="target",
        pattern=ID_PATTERN,
        max_length=128,
        description="only this task's (or queue's, or schedule's) entries, the latest 100",
    ),
]


class AuditEntryOut(WireModel):
    at: Timestamp
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditPage(WireModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


@get(
    "/api/audit", tags=["audit"], summary="Who did what, newest first", responses=documented(*QUERY)
)
async def audit_log(
    read_audit: NamedDependency[ReadAudit],
    limit: LimitParam = 50,
    before: CursorParam = None,
    target: TargetParam = None,
) -> AuditPage:
    entries, cursor = await read_audit.execute(limit, before, target)
    items = [AuditEntryOut.model_validate(entry) for entry in entries]
    return AuditPage(items=items, next_cursor=cursor)
