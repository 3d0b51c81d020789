"""The one filter every listing route maps its names onto, on the fake queue: the query it
builds, a producer narrowed to its own tasks, and the merge over several statuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from application.list_tasks import ExportTasks, ListTasks
from domain.errors import InvalidTask
from domain.task import Task, TaskStatus
from interfaces.http.auth import ANONYMOUS, Principal
from interfaces.http.listing import TaskFilter, exported_tasks, task_query, tasks_page
from tests.fakes import InMemoryTaskQueue

NOW = 1_700_000_000_000
PRODUCER = Principal("ci", "producer")
PENDING = (TaskStatus.WAITING, TaskStatus.DELAYED)  # seed 001's `pending`


def make(n: int, status: TaskStatus, created_by: str = "ops") -> Task:
    run_at = NOW + n + (3_600_000 if status is TaskStatus.DELAYED else 0)
    return Task(
        id=f"job-{n:02}", name="echo", payload={}, status=status, created_at=NOW + n,
        run_at=run_at, created_by=created_by,
    )  # fmt: skip


async def stored(*tasks: Task) -> InMemoryTaskQueue:
    queue = InMemoryTaskQueue(60_000)
    await queue.enqueue(tasks)
    return queue


def test_a_producer_is_narrowed_to_its_own_tasks_and_an_admin_is_not() -> None:
    assert task_query(TaskFilter(), PRODUCER).created_by == "ci"
    assert task_query(TaskFilter(), ANONYMOUS).created_by is None


def test_page_and_dates_become_an_offset_and_ms_a_bare_time_in_utc() -> None:
    wanted = TaskFilter(page=3, limit=10, created=(datetime(2024, 1, 1), None))

    query = task_query(wanted, ANONYMOUS)

    assert (query.offset, query.limit) == (20, 10)
    assert query.created_from == int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert query.created_to is None


@pytest.mark.parametrize(
    ("wanted", "field"),
    [(TaskFilter(page=2, cursor="c"), "cursor"), (TaskFilter(page=502, limit=20), "page")],
)
def test_a_page_with_a_cursor_or_past_10000_tasks_is_refused(
    wanted: TaskFilter, field: str
) -> None:
    with pytest.raises(InvalidTask) as refused:
        task_query(wanted, ANONYMOUS)
    assert field in refused.value.fields


async def test_a_filter_over_two_statuses_merges_their_pages_newest_first() -> None:
    queue = await stored(
        make(1, TaskStatus.WAITING), make(2, TaskStatus.DELAYED), make(3, TaskStatus.WAITING),
        make(4, TaskStatus.DELAYED), make(5, TaskStatus.WAITING),
    )  # fmt: skip

    page = await tasks_page(ListTasks(queue), TaskFilter(PENDING, page=2, limit=2), ANONYMOUS)

    assert [task.id for task in page.items] == ["job-03", "job-02"]
    assert page.total == 5


async def test_a_producer_lists_only_its_own_tasks() -> None:
    queue = await stored(make(1, TaskStatus.WAITING, "ci"), make(2, TaskStatus.WAITING))

    page = await tasks_page(ListTasks(queue), TaskFilter(), PRODUCER)

    assert [task.id for task in page.items] == ["job-01"]


async def test_an_export_over_two_statuses_writes_each_in_turn() -> None:
    queue = await stored(
        make(1, TaskStatus.DELAYED), make(2, TaskStatus.WAITING), make(3, TaskStatus.FAILED)
    )

    tasks = exported_tasks(ExportTasks(queue), TaskFilter(PENDING), ANONYMOUS)

    assert [task.id async for task in tasks] == ["job-02", "job-01"]


async def test_a_filter_over_no_status_finds_nothing() -> None:  # seed 001's `picked`
    queue = await stored(make(1, TaskStatus.WAITING))

    page = await tasks_page(ListTasks(queue), TaskFilter(statuses=()), ANONYMOUS)
    tasks = exported_tasks(ExportTasks(queue), TaskFilter(statuses=()), ANONYMOUS)

    assert (page.items, page.total) == ([], 0)
    assert [task async for task in tasks] == []
