"""ITemplateStore contract: the in-memory fake and RedisTemplateStore must behave alike."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from domain.errors import TemplateNotFound
from domain.ports import ITemplateStore
from domain.templates import Template
from infrastructure.redis.templates import RedisTemplateStore
from tests.fakes_templates import InMemoryTemplateStore

T0 = 1_700_000_000_000
EMAIL = {"to": "user@example.com", "subject": "Hello", "message": "Hi"}


@pytest.fixture(params=["fake", "redis"])
def store(request: pytest.FixtureRequest) -> ITemplateStore:
    if request.param == "fake":
        return InMemoryTemplateStore()
    client: Redis = request.getfixturevalue("redis")
    return RedisTemplateStore(client)


async def test_an_added_template_reads_back_equal(store: ITemplateStore) -> None:
    added = await store.add("welcome", "send_email", EMAIL, T0)
    assert added == Template("1", "welcome", "send_email", EMAIL, T0)
    assert await store.get(added.id) == added


async def test_ids_count_up_and_are_never_reused(store: ITemplateStore) -> None:
    first = await store.add("a", "echo", {}, T0)
    second = await store.add("b", "echo", {}, T0)
    await store.remove(second.id)
    third = await store.add("c", "echo", {}, T0)
    assert [first.id, second.id, third.id] == ["1", "2", "3"]


async def test_nested_data_survives_the_round_trip(store: ITemplateStore) -> None:
    data = {"list": [1, 2.5, None, True], "nested": {"é": "ünïcode"}, "empty": {}}
    added = await store.add("n", "echo", data, T0)
    assert (await store.get(added.id)).data == data


async def test_the_listing_is_newest_first(store: ITemplateStore) -> None:
    await store.add("old", "echo", {}, T0)
    await store.add("new", "echo", {}, T0 + 5)
    await store.add("middle", "echo", {}, T0 + 1)
    assert [t.name for t in await store.list()] == ["new", "middle", "old"]


async def test_templates_of_one_millisecond_list_by_id_descending(store: ITemplateStore) -> None:
    for n in range(1, 12):  # past 9, so "10" and "11" must not sort as text
        await store.add(f"t{n}", "echo", {}, T0)
    assert [t.id for t in await store.list()] == [str(n) for n in range(11, 0, -1)]


async def test_an_empty_store_lists_nothing(store: ITemplateStore) -> None:
    assert await store.list() == []


async def test_a_removed_template_is_gone(store: ITemplateStore) -> None:
    kept = await store.add("kept", "echo", {}, T0)
    gone = await store.add("gone", "echo", {}, T0)
    await store.remove(gone.id)
    assert await store.list() == [kept]
    with pytest.raises(TemplateNotFound):
        await store.get(gone.id)


@pytest.mark.parametrize("template_id", ["1", "0", "nope", ""])
async def test_unknown_ids_raise_template_not_found(
    store: ITemplateStore, template_id: str
) -> None:
    with pytest.raises(TemplateNotFound):
        await store.get(template_id)
    with pytest.raises(TemplateNotFound):
        await store.remove(template_id)


async def test_removing_twice_raises_the_second_time(store: ITemplateStore) -> None:
    added = await store.add("once", "echo", {}, T0)
    await store.remove(added.id)
    with pytest.raises(TemplateNotFound):
        await store.remove(added.id)
