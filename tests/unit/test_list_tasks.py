"""ListTasks and ExportTasks on the fake queue: an export pages through every match."""

from __future__ import annotations

from dataclasses import replace

from application.list_tasks import EXPORT_PAGE, FIRST_EXPORT_PAGE, ExportTasks, ListTasks
from domain.task import Task, TaskStatus
from domain.values import TaskPage, TaskQuery
from tests.fakes import InMemoryTaskQueue

NOW = 1_700_000_000_000


class CountingQueue(InMemoryTaskQueue):
    def __init__(self) -> None:
        super().__init__(60_000, queues=("qa", "qb"))
        self.queries: list[TaskQuery] = []

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        self.queries.append(query)
        return await super().list_tasks(query)


def make(n: int, queue: str, **changes: object) -> Task:
    fields: dict[str, object] = {
        "name": "echo",
        "payload": {"subject": f"report {n}"},
        "created_at": NOW + n,
        "run_at": NOW + n,
        "queue": queue,
    }
    fields.update(changes)
    return Task(id=f"job-{n:04}", **fields)  # type: ignore[arg-type]


async def stored(count: int) -> tuple[CountingQueue, list[Task]]:
    """`count` tasks over two queues; the answer newest first."""
    queue = CountingQueue()
    tasks = [make(n, "qa" if n % 3 else "qb") for n in range(count)]
    await queue.enqueue(tasks)
    return queue, tasks[::-1]


async def exported(queue: CountingQueue, query: TaskQuery) -> list[Task]:
    return [task async for task in ExportTasks(queue).execute(query)]


async def test_an_export_pages_through_every_task_by_cursor() -> None:
    queue, newest_first = await stored(2 * EXPORT_PAGE + 203)

    tasks = await exported(queue, TaskQuery(limit=5, offset=40))  # a page's bounds: ignored

    assert [t.id for t in tasks] == [t.id for t in newest_first]
    sizes = [(q.limit, q.offset) for q in queue.queries]
    assert sizes == [(FIRST_EXPORT_PAGE, 0)] + [(EXPORT_PAGE, 0)] * 3  # small first page
    assert queue.queries[0].cursor is None
    assert all(q.cursor is not None for q in queue.queries[1:])


async def test_an_export_keeps_the_filters() -> None:
    queue, newest_first = await stored(900)
    (claimed,) = (await queue.claim("qb", "w", 1, 1_000, NOW)).tasks

    tasks = await exported(queue, TaskQuery(queue="qb", status=TaskStatus.WAITING))

    assert [t.id for t in tasks] == [
        t.id for t in newest_first if t.queue == "qb" and t.id != claimed.id
    ]


async def test_an_export_of_a_word_search_pages_through_it() -> None:
    queue, newest_first = await stored(1_100)

    tasks = await exported(queue, TaskQuery(search="report"))

    assert [t.id for t in tasks] == [t.id for t in newest_first]


async def test_an_export_of_nothing_is_empty() -> None:
    queue = CountingQueue()

    assert await exported(queue, TaskQuery()) == []
    assert len(queue.queries) == 1


async def test_an_export_of_an_id_prefix_search_has_every_match() -> None:
    queue, _newest_first = await stored(600)

    tasks = await exported(queue, TaskQuery(search="job-"))

    assert len(tasks) == 600


async def test_list_tasks_answers_one_page() -> None:
    queue, newest_first = await stored(30)
    query = TaskQuery(queue="qa", limit=4)

    page = await ListTasks(queue).execute(query)

    expected = [t for t in newest_first if t.queue == "qa"]
    assert [t.id for t in page.items] == [t.id for t in expected[:4]]
    assert page.total == len(expected)
    following = await ListTasks(queue).execute(replace(query, cursor=page.next_cursor))
    assert [t.id for t in following.items] == [t.id for t in expected[4:8]]
