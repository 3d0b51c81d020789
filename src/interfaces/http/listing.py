"""Listing queries and the CSV export (GET /api/tasks/export)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from application.list_tasks import ExportTasks
from domain.errors import InvalidTask
from domain.ports import TaskQuery
from domain.task import Task, TaskStatus
from interfaces.http.errors import QUERY, documented
from interfaces.http.schemas import TaskOut

NAME = r"^[A-Za-z0-9._:-]{1,128}$"
StatusParam = Annotated[TaskStatus | None, QueryParameter(name="status")]
NameParam = Annotated[str | None, QueryParameter(name="taskName", max_length=200)]
QueueParam = Annotated[str | None, QueryParameter(name="queue", pattern=NAME)]
SearchParam = Annotated[str | None, QueryParameter(name="search", min_length=1, max_length=200)]
FromParam = Annotated[datetime | None, QueryParameter(name="from")]
ToParam = Annotated[datetime | None, QueryParameter(name="to")]
PageParam = Annotated[int, QueryParameter(name="page", ge=1, le=10_000)]
LimitParam = Annotated[int, QueryParameter(name="limit", ge=1, le=100)]
CursorParam = Annotated[str | None, QueryParameter(name="cursor", max_length=512)]

CSV_COLUMNS = ["id", "taskName", "queue", "status", "priority", "attempts", "createdAt",
               "runAt", "startedAt", "finishedAt", "createdBy", "error", "payload"]  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def task_query(
    *,
    status: TaskStatus | None,
    name: str | None,
    queue: str | None,
    search: str | None,
    created: tuple[datetime | None, datetime | None],
    page: int = 1,
    limit: int = 20,
    cursor: str | None = None,
) -> TaskQuery:
    start, end = (None if moment is None else _millis(moment) for moment in created)
    if page > 1 and cursor is not None:
        raise InvalidTask("cursor", "give page or cursor, not both")
    if (page - 1) * limit > 10_000:
        raise InvalidTask("page", "pages beyond 10,000 tasks are reached with the cursor")
    return TaskQuery(
        queue=queue, status=status, name=name, search=search, created_from=start,
        created_to=end, limit=limit, offset=(page - 1) * limit, cursor=cursor,
    )  # fmt: skip


def _millis(moment: datetime) -> int:
    """A time without a zone (a bare date, say) is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class ExportController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]  # noqa: RUF012 - litestar reads it as a class attribute

    @get(
        "/export",
        summary="The same listing as CSV",
        media_type="text/csv",
        responses=documented(*QUERY),
    )
    async def export(
        self,
        *,
        export_tasks: NamedDependency[ExportTasks],
        status: StatusParam = None,
        task_name: NameParam = None,
        queue: QueueParam = None,
        search: SearchParam = None,
        created_from: FromParam = None,
        created_to: ToParam = None,
    ) -> Stream:
        query = task_query(
            status=status, name=task_name, queue=queue, search=search,
            created=(created_from, created_to),
        )  # fmt: skip
        return csv_stream(export_tasks.execute(query))


def csv_stream(tasks: AsyncIterator[Task], columns: list[str] = CSV_COLUMNS) -> Stream:
    return Stream(
        _csv_lines(tasks, columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="tasks.csv"'},
    )


async def _csv_lines(tasks: AsyncIterator[Task], columns: list[str]) -> AsyncIterator[str]:
    yield _row(columns)
    async for task in tasks:
        wire: dict[str, Any] = TaskOut.model_validate(task).model_dump(mode="json", by_alias=True)
        wire["error"] = (wire.get("error") or {}).get("message")
        yield _row([_cell(wire.get(column)) for column in columns])


def _cell(value: Any) -> str:
    """A spreadsheet must not run a cell as a formula: such text gets a leading quote."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _row(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
