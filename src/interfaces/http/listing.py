"""Listing queries and the CSV export (GET /api/tasks/export)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from application.list_tasks import ExportTasks
from domain.errors import InvalidTask
from domain.task import Task, TaskStatus
from domain.values import TaskQuery
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
# What a spreadsheet may run as a formula, or read as a cell of its own (a line break, a NUL).
_UNSAFE_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


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
        return await csv_stream(export_tasks.execute(query))


async def csv_stream(tasks: AsyncIterator[Task], columns: list[str] = CSV_COLUMNS) -> Stream:
    """The CSV of `tasks`, whose first page is read before the response starts: a Redis
    that is down is a 503, not a 200 with a header row alone. A failure midway ends the
    response without its last chunk, so no client takes a cut export for a whole one."""
    first = await anext(tasks, None)
    return Stream(
        _csv_lines(first, tasks, columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="tasks.csv"'},
    )


async def _csv_lines(
    first: Task | None, rest: AsyncIterator[Task], columns: list[str]
) -> AsyncIterator[str]:
    yield _row(columns)
    if first is None:
        return
    yield _task_row(first, columns)
    async for task in rest:
        yield _task_row(task, columns)


def _task_row(task: Task, columns: list[str]) -> str:
    wire: dict[str, Any] = TaskOut.model_validate(task).model_dump(mode="json", by_alias=True)
    wire["error"] = (wire.get("error") or {}).get("message")
    return _row([cell(wire.get(column)) for column in columns])


def cell(value: Any) -> str:
    """A spreadsheet must not run a cell as a formula, nor split it: such text gets a
    leading quote. A plain number (-5, +3, -1.5) stays a number."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if text.startswith(_UNSAFE_START) and not _NUMBER.fullmatch(text):
        return f"'{text}"
    return text


def _row(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
