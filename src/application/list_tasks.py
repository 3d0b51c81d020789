"""ListTasks and ExportTasks: pages of tasks, and every matching task for an export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from domain.ports import ITaskViews
from domain.task import Task
from domain.values import TaskPage, TaskQuery

FIRST_EXPORT_PAGE = 50  # the first rows go out quickly; later pages are larger
EXPORT_PAGE = 500


class ListTasks:
    """One page of a listing, newest first (see ITaskViews.list_tasks for the filters)."""

    def __init__(self, queue: ITaskViews) -> None:
        self._queue = queue

    async def execute(self, query: TaskQuery) -> TaskPage:
        return await self._queue.list_tasks(query)


class ExportTasks:
    """Every task a query matches, page after page by cursor, never all in memory."""

    def __init__(self, queue: ITaskViews) -> None:
        self._queue = queue

    async def execute(self, query: TaskQuery) -> AsyncIterator[Task]:
        page_query = replace(query, limit=FIRST_EXPORT_PAGE, offset=0, cursor=None)
        while True:
            page = await self._queue.list_tasks(page_query)
            for task in page.items:
                yield task
            if page.next_cursor is None:
                return
            page_query = replace(page_query, limit=EXPORT_PAGE, cursor=page.next_cursor)
