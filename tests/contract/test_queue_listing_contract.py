"""TaskStore contract, read side: listings, search and stats, on the fake and on
the Redis store alike."""

from __future__ import annotations

from dataclasses import replace
from random import Random
from typing import Any

import pytest

from domain.errors import InvalidTask
from domain.task import Task, TaskStatus
from domain.values import MINUTE_MS, MinuteCount, QueueStats, TaskPage, TaskQuery
from tests.contract.queue_support import (
    CONFIGURED,
    LEASE_MS,
    QA,
    QB,
    QC,
    QUEUE,
    T0,
    TaskStore,
    claim,
    failure,
    make_task,
)

COUNT = 250
GROUP = 5  # tasks of one queue created in the same millisecond


def listing_tasks(count: int = COUNT) -> list[Task]:
    """Oldest first: groups of GROUP tasks alternate between QA and QB, a group shares its
    creation millisecond, names alternate within a queue, every third has an owner."""
    tasks = []
    for n in range(count):
        group = n // GROUP
        tasks.append(
            make_task(
                f"task-{n:03}",
                name="alpha" if n % 2 else "beta",
                payload={"n": n},
                queue=QA if group % 2 == 0 else QB,
                created_at=T0 + 7 * group,
                run_at=T0 + 7 * group,
                created_by="owner" if n % 3 == 0 else None,
            )
        )
    return tasks


async def populate(queue: TaskStore, count: int = COUNT) -> list[Task]:
    """The listing tasks, stored; the answer is newest first, as a listing gives them."""
    tasks = listing_tasks(count)
    await queue.enqueue(tasks)
    return tasks[::-1]


def ids(tasks: list[Task]) -> list[str]:
    return [task.id for task in tasks]


async def by_cursor(queue: TaskStore, query: TaskQuery) -> list[TaskPage]:
    pages = [await queue.list_tasks(query)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 100
        pages.append(await queue.list_tasks(replace(query, cursor=pages[-1].next_cursor)))
    return pages


def items(pages: list[TaskPage]) -> list[Task]:
    return [task for page in pages for task in page.items]


# --- listing -------------------------------------------------------------------------------


async def test_a_listing_is_newest_first_across_queues(queue: TaskStore) -> None:
    newest_first = await populate(queue, 30)

    page = await queue.list_tasks(TaskQuery(limit=100))

    assert ids(page.items) == ids(newest_first)
    assert page.items[0] == await queue.get("task-029")
    assert (page.total, page.next_cursor) == (30, None)


async def test_paging_by_cursor_neither_skips_nor_repeats(queue: TaskStore) -> None:
    newest_first = await populate(queue)

    pages = await by_cursor(queue, TaskQuery(limit=40))

    assert [len(page.items) for page in pages] == [40] * 6 + [10]
    assert {page.total for page in pages} == {COUNT}
    assert ids(items(pages)) == ids(newest_first)


async def test_paging_by_offset_neither_skips_nor_repeats(queue: TaskStore) -> None:
    newest_first = await populate(queue)

    pages = [await queue.list_tasks(TaskQuery(limit=40, offset=o)) for o in range(0, 280, 40)]

    assert ids(items(pages)) == ids(newest_first)
    assert {page.total for page in pages} == {COUNT}
    assert [page.next_cursor is None for page in pages] == [False] * 6 + [True]
    assert (await queue.list_tasks(TaskQuery(limit=40, offset=COUNT))).items == []


async def test_a_cursor_holds_while_tasks_change_status(queue: TaskStore) -> None:
    newest_first = await populate(queue)
    query = TaskQuery(limit=40)
    pages = [await queue.list_tasks(query)]
    while pages[-1].next_cursor is not None:
        # Between pages, workers take tasks of both queues and finish some.
        for name in (QA, QB):
            for task in await claim(queue, limit=9, name=name):
                if int(task.id[-3:]) % 2:
                    await queue.settle(task.complete(None, T0 + 10**6))
        pages.append(await queue.list_tasks(replace(query, cursor=pages[-1].next_cursor)))

    assert ids(items(pages)) == ids(newest_first)


async def test_a_cursor_combines_with_an_offset(queue: TaskStore) -> None:
    newest_first = await populate(queue, 50)
    first = await queue.list_tasks(TaskQuery(limit=10))

    page = await queue.list_tasks(TaskQuery(limit=10, offset=5, cursor=first.next_cursor))

    assert ids(page.items) == ids(newest_first[15:25])


CLAIMED = ["task-000", "task-001", "task-002", "task-003", "task-004", "task-010", "task-011"]


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({"queue": QA}, lambda t: t.queue == QA),
        ({"name": "alpha"}, lambda t: t.name == "alpha"),
        ({"queue": QB, "name": "beta"}, lambda t: t.queue == QB and t.name == "beta"),
        ({"status": TaskStatus.WAITING}, lambda t: t.id not in CLAIMED),
        ({"status": TaskStatus.ACTIVE, "queue": QA}, lambda t: t.id in CLAIMED),
        ({"status": TaskStatus.COMPLETED}, lambda t: False),
        ({"created_from": T0 + 7 * 4}, lambda t: t.created_at >= T0 + 28),
        ({"created_to": T0 + 7 * 4}, lambda t: t.created_at <= T0 + 28),
        (
            {"created_from": T0 + 7, "created_to": T0 + 14, "name": "beta"},
            lambda t: T0 + 7 <= t.created_at <= T0 + 14 and t.name == "beta",
        ),
    ],
    ids=["queue", "name", "queue-name", "waiting", "active", "completed", "from", "to", "span"],
)
async def test_filters_page_by_cursor_and_count(
    queue: TaskStore, filters: dict[str, Any], keep: Any
) -> None:
    newest_first = await populate(queue, 120)
    claimed = await claim(queue, limit=len(CLAIMED), name=QA)
    assert ids(claimed) == CLAIMED
    expected = [task for task in newest_first if keep(task)]

    pages = await by_cursor(queue, TaskQuery(limit=7, **filters))

    assert ids(items(pages)) == ids(expected)
    assert {page.total for page in pages} == {len(expected)}
    if "status" in filters:
        assert {task.status for task in items(pages)} <= {filters["status"]}


async def test_created_by_is_found_by_the_capped_scan(queue: TaskStore) -> None:
    newest_first = await populate(queue, 60)

    pages = await by_cursor(queue, TaskQuery(limit=8, created_by="owner"))

    # No index on the owner: as a search by substring, pages are filled from a newest-first
    # scan, the total is unknown, and the cursor goes on until the scan is done.
    assert ids(items(pages)) == [t.id for t in newest_first if t.created_by == "owner"]
    assert [len(page.items) for page in pages] == [8, 8, 4]
    assert {page.total for page in pages} == {None}


async def test_created_by_narrows_the_other_filters(queue: TaskStore) -> None:
    newest_first = await populate(queue, 60)

    query = TaskQuery(limit=100, created_by="owner", status=TaskStatus.WAITING, name="alpha")
    (page,) = await by_cursor(queue, query)

    expected = [
        t for t in newest_first
        if t.created_by == "owner" and t.status is TaskStatus.WAITING and t.name == "alpha"
    ]  # fmt: skip
    assert expected
    assert ids(page.items) == ids(expected)


async def test_a_cursor_that_was_not_handed_out_is_invalid(queue: TaskStore) -> None:
    await populate(queue, 3)

    for cursor in ("not-a-cursor", "bm90LWEtbnVtYmVyfHg"):  # the second: "not-a-number|x"
        with pytest.raises(InvalidTask) as raised:
            await queue.list_tasks(TaskQuery(cursor=cursor))
        assert raised.value.field == "cursor"


async def test_an_empty_store_lists_nothing(queue: TaskStore) -> None:
    assert await queue.list_tasks(TaskQuery()) == TaskPage([], 0, None)
    for query in (TaskQuery(queue="nope"), TaskQuery(queue="nope", search="x")):
        with pytest.raises(InvalidTask) as refused:  # queues are configured, never made up
            await queue.list_tasks(query)
        assert refused.value.field == "queue"


async def test_tasks_of_one_score_in_two_queues_are_both_listed_by_cursor(
    queue: TaskStore,
) -> None:
    # The first task of each queue in one millisecond: equal scores, told apart by id.
    await queue.enqueue([make_task("a", queue=QA), make_task("b", queue=QB)])

    pages = await by_cursor(queue, TaskQuery(limit=1))

    assert sorted((t.id, t.queue) for t in items(pages)) == [("a", QA), ("b", QB)]


async def test_tasks_of_one_millisecond_list_in_creation_order(queue: TaskStore) -> None:
    await queue.enqueue([make_task(f"filler-{n}", created_at=T0 - 1) for n in range(997)])
    batch = [make_task(f"t{n}", created_at=T0) for n in range(5)]  # sequence 998 to 1002
    await queue.enqueue(batch)

    page = await queue.list_tasks(TaskQuery(limit=5))

    assert ids(page.items) == ["t4", "t3", "t2", "t1", "t0"]


# --- search --------------------------------------------------------------------------------


def mail(task_id: str, n: int, **payload: Any) -> Task:
    return make_task(task_id, name="send_email", payload=payload, created_at=T0 + n, run_at=T0 + n)


MAILS = [
    make_task("misc-1", name="resize", payload={"path": "/img/alice.png", "n": 7}),
    mail("inv-2024-001", 1, to="alice@example.com", subject="Monthly report"),
    mail("inv-2024-002", 2, to="bob@example.com", subject="Weekly REPORT", tags=["urgent"]),
    mail("inv-2024-010", 3, to="carol@example.com", subject="monthly digest"),
    mail("rcpt-7", 4, to="dave@example.com", subject="Report: monthly", body={"n": 7}),
]


async def search(queue: TaskStore, text: str, **filters: Any) -> TaskPage:
    return await queue.list_tasks(TaskQuery(search=text, **filters))


async def test_search_by_id_prefix(queue: TaskStore) -> None:
    await queue.enqueue(MAILS)

    page = await search(queue, "inv-2024-00")

    assert ids(page.items) == ["inv-2024-002", "inv-2024-001"]  # newest first
    assert (page.total, page.next_cursor) == (2, None)
    assert ids((await search(queue, " inv-2024-0 ", limit=2)).items) == [
        "inv-2024-010",
        "inv-2024-002",
    ]
    assert (await search(queue, " inv-2024-0 ", limit=2)).total == 3


async def test_search_by_id_prefix_honours_the_filters(queue: TaskStore) -> None:
    await queue.enqueue(MAILS)
    (claimed,) = await claim(queue)
    assert claimed.id == "misc-1"  # enqueued first

    assert ids((await search(queue, "misc", status=TaskStatus.WAITING)).items) == []
    assert ids((await search(queue, "misc", status=TaskStatus.ACTIVE)).items) == ["misc-1"]
    assert ids((await search(queue, "inv", created_to=T0 + 2)).items) == [
        "inv-2024-002",
        "inv-2024-001",
    ]


async def test_search_by_words_of_the_name_and_string_values(queue: TaskStore) -> None:
    await queue.enqueue(MAILS)

    assert ids((await search(queue, "Monthly REPORT")).items) == ["rcpt-7", "inv-2024-001"]
    assert ids((await search(queue, "report")).items) == [
        "rcpt-7",
        "inv-2024-002",
        "inv-2024-001",
    ]
    assert ids((await search(queue, "urgent email")).items) == ["inv-2024-002"]
    assert ids((await search(queue, "alice")).items) == ["inv-2024-001", "misc-1"]
    page = await search(queue, "email send", status=TaskStatus.WAITING, created_from=T0 + 3)
    assert ids(page.items) == ["rcpt-7", "inv-2024-010"]
    assert (page.total, page.next_cursor) == (None, None)


async def test_search_falls_back_to_a_substring_of_name_and_payload(queue: TaskStore) -> None:
    await queue.enqueue(MAILS)

    assert ids((await search(queue, "ICE@EXA")).items) == ["inv-2024-001"]
    assert ids((await search(queue, "d_em")).items) == [
        "rcpt-7",
        "inv-2024-010",
        "inv-2024-002",
        "inv-2024-001",
    ]
    page = await search(queue, '"n":7')  # the payload as compact JSON, nested values too
    assert ids(page.items) == ["rcpt-7", "misc-1"]
    assert (page.total, page.next_cursor) == (None, None)
    assert (await search(queue, "monthly nowhere")).items == []


async def test_a_search_pages_by_cursor(queue: TaskStore) -> None:
    tasks = [mail(f"m{n:02}", n, subject=f"report {n % 2}") for n in range(30)]
    await queue.enqueue(tasks)
    newest_first = ids(tasks[::-1])

    for text in ("report", "eport"):  # by the word's index, and by a scan
        pages = await by_cursor(queue, TaskQuery(search=text, limit=7))
        assert ids(items(pages)) == newest_first
        assert [len(page.items) for page in pages] == [7, 7, 7, 7, 2]


async def test_a_scan_examines_a_bounded_number_of_tasks_per_call(queue: TaskStore) -> None:
    old = mail("needle", 0, subject="haystack")
    hay = [mail(f"hay-{n:04}", 1 + n, subject="straw") for n in range(2_050)]
    await queue.enqueue([old, *hay])

    first = await search(queue, "ystac")  # no word: a scan, newest first

    assert (first.items, first.total) == ([], None)
    assert first.next_cursor is not None  # 2,000 examined, more to go
    second = await search(queue, "ystac", cursor=first.next_cursor)
    assert ids(second.items) == ["needle"]
    assert second.next_cursor is None


@pytest.mark.parametrize("text", ["m", "report", "eport"], ids=["id", "word", "scan"])
async def test_a_search_pages_by_offset(queue: TaskStore, text: str) -> None:
    tasks = [mail(f"m{n:02}", n, subject=f"report {n % 2}") for n in range(30)]
    await queue.enqueue(tasks)

    pages = [await search(queue, text, limit=7, offset=offset) for offset in range(0, 35, 7)]

    assert ids(items(pages)) == ids(tasks[::-1])
    assert [len(page.items) for page in pages] == [7, 7, 7, 7, 2]


async def test_an_id_prefix_search_pages_through_every_match(queue: TaskStore) -> None:
    await queue.enqueue([mail(f"order-{n:02}", n) for n in range(12)])

    pages = await by_cursor(queue, TaskQuery(search="order-", limit=5))

    assert len(items(pages)) == 12


# --- stats ---------------------------------------------------------------------------------

NOW = T0 + 30_000  # 50 s into the minute of T0: the previous minute counts for 1/6


async def test_stats_count_per_queue_status_and_type(queue: TaskStore) -> None:
    await queue.enqueue(
        [make_task(f"w{n}", queue=QA, name="alpha" if n else "beta") for n in range(4)]
        + [make_task("d", queue=QA, run_at=T0 + 10**6), make_task("b", queue=QB)]
    )
    w0, w1, w2 = await claim(queue, 3, T0, QA)  # beta, alpha, alpha
    await queue.settle(w0.complete(None, T0 + 1_000))
    await queue.settle(w1.fail(failure(retryable=False), T0 + 2_000, Random(0)))
    await queue.set_paused(QC, True)

    stats = {s.queue: s for s in await queue.stats(NOW)}

    assert sorted(stats) == sorted(CONFIGURED)  # every configured queue, used or not
    a = stats[QA]
    assert not a.paused
    assert a.counts == counts(waiting=1, delayed=1, active=1, completed=1, failed=1)
    assert a.type_counts == {
        "alpha": counts(waiting=1, active=1, failed=1),
        "beta": counts(completed=1),
        "echo": counts(delayed=1),
    }
    assert a.durations_ms == {"alpha": [], "beta": [1_000], "echo": []}
    assert stats[QB].counts == counts(waiting=1)
    assert stats[QC] == QueueStats(QC, True, counts(), {}, {}, 0, 0, idle_minutes())
    assert stats[QUEUE] == QueueStats(QUEUE, False, counts(), {}, {}, 0, 0, idle_minutes())
    assert w2.status is TaskStatus.ACTIVE


async def stats_of(queue: TaskStore, name: str) -> QueueStats:
    (found,) = [stats for stats in await queue.stats(NOW) if stats.queue == name]
    return found


def counts(**by_status: int) -> dict[TaskStatus, int]:
    return {status: by_status.get(status.value, 0) for status in TaskStatus}


MINUTE = NOW - NOW % MINUTE_MS  # the start of NOW's minute


def idle_minutes() -> tuple[MinuteCount, ...]:
    return tuple(MinuteCount(MINUTE - n * MINUTE_MS, 0, 0) for n in range(60, -1, -1))


async def test_stats_keep_recent_durations_and_throughput(queue: TaskStore) -> None:
    minute_ago, half_hour_ago, hour_ago = T0 - 30_000, T0 - 1_800_000, T0 - 3_600_000
    finish_times = [minute_ago] * 6 + [half_hour_ago] + [hour_ago] * 6 + [hour_ago - 60_000]
    await queue.enqueue([make_task(f"old-{n}", queue=QA) for n in range(len(finish_times))])
    for n, at in enumerate(finish_times):
        read = await queue.get(f"old-{n}", QA)
        await queue.change(read.cancelled(at), read)
    await queue.enqueue([make_task("fast", queue=QA), make_task("slow", queue=QA)])
    fast, slow = await claim(queue, 2, T0, QA)
    await queue.settle(fast.complete(None, T0 + 1_000))
    await queue.settle(slow.complete(None, T0 + 3_000))

    stats = await stats_of(queue, QA)

    assert stats.durations_ms == {"echo": [3_000, 1_000]}  # newest first
    assert stats.finished_last_minute == 2 + 6 // 6
    assert stats.finished_last_hour == 2 + 6 + 1 + 6 // 6
    assert stats.counts[TaskStatus.CANCELLED] == len(finish_times)


async def test_stats_count_finished_and_failed_tasks_per_minute(queue: TaskStore) -> None:
    await queue.enqueue([make_task(f"t{n}", queue=QA) for n in range(6)])
    await queue.enqueue([make_task("b", queue=QB)])
    done, failed, retried = await claim(queue, 3, T0, QA)
    await queue.settle(done.complete(None, T0 + 1_000))
    await queue.settle(failed.fail(failure(retryable=False), T0 + 2_000, Random(0)))
    await queue.settle(retried.fail(failure(), T0 + 2_000, Random(0)))  # not finished
    for task_id, at, action in [
        ("t3", MINUTE - 2 * MINUTE_MS, "cancelled"),
        ("t4", MINUTE - 60 * MINUTE_MS, "killed"),  # the oldest minute of the series
        ("t5", MINUTE - 61 * MINUTE_MS, "killed"),  # before it
        ("b", MINUTE + 1, "killed"),
    ]:
        read = await queue.get(task_id)
        await queue.change(getattr(read, action)(at), read)

    a, b = await stats_of(queue, QA), await stats_of(queue, QB)

    assert [minute.at for minute in a.per_minute] == [m.at for m in idle_minutes()]
    assert busy_minutes(a) == {0: (2, 1), -2: (1, 0), -60: (1, 1)}
    assert busy_minutes(b) == {0: (1, 1)}


def busy_minutes(stats: QueueStats) -> dict[int, tuple[int, int]]:
    """{minutes before NOW's: (finished, failed)}, for the minutes with any."""
    return {
        (minute.at - MINUTE) // MINUTE_MS: (minute.finished, minute.failed)
        for minute in stats.per_minute
        if minute.finished or minute.failed
    }


async def test_stats_follow_removals_and_pauses(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1", queue=QA), make_task("t2", queue=QA)])
    await queue.remove(await queue.get("t1"))
    await queue.set_paused(QA, True)

    stats = await stats_of(queue, QA)
    assert (stats.paused, stats.counts, stats.type_counts) == (
        True,
        counts(waiting=1),
        {"echo": counts(waiting=1)},
    )
    await queue.set_paused(QA, False)
    assert not (await stats_of(queue, QA)).paused
    assert (await queue.claim(QA, "w", 1, LEASE_MS, T0)).tasks[0].id == "t2"


async def test_an_id_prefix_search_counts_every_match(queue: TaskStore) -> None:
    await queue.enqueue([mail(f"order-{n:03}", n) for n in range(250)])

    last = await search(queue, "order-", limit=100, offset=200)

    assert last.total == 250
    assert ids(last.items) == [f"order-{n:03}" for n in range(49, -1, -1)]


async def test_a_producer_s_search_finds_and_counts_only_its_own_tasks(queue: TaskStore) -> None:
    await queue.enqueue(
        [
            make_task("order-1", created_by="alice", payload={"word": "receipt"}),
            make_task("order-2", created_by="bob", payload={"word": "invoice"}),
            make_task("order-3", created_by="alice", payload={"word": "invoice"}),
        ]
    )

    def alice(text: str) -> TaskQuery:
        return TaskQuery(search=text, created_by="alice")

    by_id, by_word = (
        await queue.list_tasks(alice("order-")),
        await queue.list_tasks(alice("invoice")),
    )
    theirs = await queue.list_tasks(alice("order-2"))

    assert (ids(by_id.items), by_id.total) == (["order-3", "order-1"], None)
    assert (ids(by_word.items), by_word.total) == (["order-3"], None)
    assert theirs == TaskPage([], None, None)  # bob's id reads as if it did not exist
