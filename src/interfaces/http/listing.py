"""Listing: every listing route's filter and query, built once, and the CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from application.list_tasks import ExportTasks, ListTasks
from domain.errors import InvalidTask
from domain.task import Task, TaskStatus
from domain.values import TaskPage, TaskQuery
from interfaces.http.auth import Access, Principal, caller
from interfaces.http.errors import QUERY, documented
from interfaces.http.schemas import PageOut, TaskOut

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


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What a listing asks for, in our terms. Each route maps its clients' names onto it
    (seed 001's `taskType` and `startDate`, its `pending` that spans two of our statuses)."""

    statuses: tuple[TaskStatus, ...] | None = None  # tasks in any of these; None: any status
    name: str | None = None
    queue: str | None = None
    search: str | None = None
    created: tuple[datetime | None, datetime | None] = (None, None)
    page: int = 1
    limit: int = 20
    cursor: str | None = None


def statuses_of(status: TaskStatus | None) -> tuple[TaskStatus, ...] | None:
    """A route's one status as a filter's statuses: None (any status) when none is given."""
    return None if status is None else (status,)


def task_query(wanted: TaskFilter, principal: Principal) -> TaskQuery:
    """The use cases' query for `wanted` (any status: see `tasks_page`), narrowed to a
    producer's own tasks by the capped scan."""
    start, end = (None if moment is None else millis(moment) for moment in wanted.created)
    if wanted.page > 1 and wanted.cursor is not None:
        raise InvalidTask("cursor", "give page or cursor, not both")
    if (wanted.page - 1) * wanted.limit > 10_000:
        raise InvalidTask("page", "pages beyond 10,000 tasks are reached with the cursor")
    return TaskQuery(
        queue=wanted.queue, name=wanted.name, search=wanted.search, created_from=start,
        created_to=end, created_by=None if principal.access >= Access.ADMIN else principal.name,
        limit=wanted.limit, offset=(wanted.page - 1) * wanted.limit, cursor=wanted.cursor,
    )  # fmt: skip


async def tasks_page(list_tasks: ListTasks, wanted: TaskFilter, principal: Principal) -> TaskPage:
    """One page of the tasks `wanted` names, newest first. Over several statuses each is read
    from the top and merged (a deep page costs up to page x limit tasks per status)."""
    query = task_query(wanted, principal)
    queries = _per_status(query, wanted.statuses)
    if len(queries) == 1:
        return await list_tasks.execute(queries[0])
    top = query.offset + query.limit
    pages = [await list_tasks.execute(replace(each, offset=0, limit=top)) for each in queries]
    merged = sorted(
        (task for page in pages for task in page.items),
        key=lambda task: (task.created_at, task.id),
        reverse=True,
    )
    totals = [page.total for page in pages]
    total = None if None in totals else sum(t or 0 for t in totals)
    return TaskPage(merged[query.offset :][: query.limit], total, None)


def page_out(result: TaskPage) -> PageOut:
    items = [TaskOut.model_validate(task) for task in result.items]
    return PageOut(items=items, total=result.total, next_cursor=result.next_cursor)


def exported_tasks(
    export_tasks: ExportTasks, wanted: TaskFilter, principal: Principal
) -> AsyncIterator[Task]:
    """Every task `wanted` names; over several statuses, those of each in turn."""
    queries = _per_status(task_query(wanted, principal), wanted.statuses)
    return export_tasks.execute(queries[0]) if len(queries) == 1 else _chain(export_tasks, queries)


def _per_status(query: TaskQuery, statuses: tuple[TaskStatus, ...] | None) -> list[TaskQuery]:
    """`query` once for each of `statuses`; once, for any status, when they are None."""
    return [query] if statuses is None else [replace(query, status=status) for status in statuses]


async def _chain(export_tasks: ExportTasks, queries: list[TaskQuery]) -> AsyncIterator[Task]:
    for query in queries:
        async for task in export_tasks.execute(query):
            yield task


def millis(moment: datetime) -> int:
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
        request: Request[Any, Any, Any],
        status: StatusParam = None,
        task_name: NameParam = None,
        queue: QueueParam = None,
        search: SearchParam = None,
        created_from: FromParam = None,
        created_to: ToParam = None,
    ) -> Stream:
        wanted = TaskFilter(
            statuses=statuses_of(status), name=task_name, queue=queue, search=search,
            created=(created_from, created_to),
        )  # fmt: skip
        return await csv_stream(exported_tasks(export_tasks, wanted, caller(request)))


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
