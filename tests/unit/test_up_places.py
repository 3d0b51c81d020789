"""What `conveyor up` prints about where it serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from infrastructure.settings import Settings
from interfaces.up_places import Places, RedisOrigin, base_url, without_password

URL = "redis://127.0.0.1:6379/0"


def places(origin: RedisOrigin = RedisOrigin.GIVEN, **settings: object) -> Places:
    return Places.of(Settings(**settings), URL, origin)  # type: ignore[arg-type]


def test_the_block_names_the_api_dashboard_docs_schema_and_redis() -> None:
    assert places(port=4000).lines() == [
        "conveyor up",
        "  API        http://127.0.0.1:4000",
        "  dashboard  http://127.0.0.1:4000/admin/queues",
        "  docs       http://127.0.0.1:4000/schema (also /schema/swagger)",
        "  schema     http://127.0.0.1:4000/schema/openapi.json",
        "  Redis      redis://127.0.0.1:6379/0 (REDIS_URL)",
    ]


def test_an_api_on_every_interface_is_shown_at_a_reachable_address() -> None:
    shown = places(host="0.0.0.0", port=3000)
    assert shown.api == "http://127.0.0.1:3000"
    assert shown.lines()[1].endswith("(listening on every interface)")


def test_an_api_on_every_ipv6_interface_is_shown_at_the_ipv6_loopback() -> None:
    assert places(host="::", port=3000).api == "http://[::1]:3000"


def test_with_keys_the_dashboard_asks_for_the_admin_key_and_none_is_printed() -> None:
    shown = places(api_keys="ops:very-secret-admin-key:admin")
    assert shown.lines()[2].endswith("(asks for an admin key of API_KEYS)")
    assert "very-secret-admin-key" not in "\n".join(shown.lines()) + str(shown.fields())
    assert shown.api == "http://127.0.0.1:3000"  # keys bind every interface


@pytest.mark.parametrize(
    ("origin", "note"),
    [(RedisOrigin.FOUND, "found running"), (RedisOrigin.EMBEDDED, "embedded, data in d/r")],
)
def test_the_redis_line_says_where_redis_came_from(origin: RedisOrigin, note: str) -> None:
    assert places(origin, redis_data_dir=Path("d/r")).lines()[-1].endswith(f"({note})")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://host:6379/0"),
        ("rediss://user:s3cret@host:6380/2", "rediss://user@host:6380/2"),
        ("redis://host/0?password=s3cret&protocol=3", "redis://host/0?protocol=3"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_a_redis_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


def test_an_ipv6_host_is_bracketed_once() -> None:
    assert base_url("::1", 80) == base_url("[::1]", 80) == "http://[::1]:80"


def test_a_cluster_and_sentinels_are_named_with_the_variable_that_set_them() -> None:
    seeds = "redis://:pw@10.0.0.1:7000,redis://10.0.0.2:7001"
    shown = Places.of(Settings(redis_cluster_urls=seeds), seeds, RedisOrigin.CLUSTER)
    assert shown.lines()[-1] == (
        "  Redis      redis://10.0.0.1:7000,redis://10.0.0.2:7001 (REDIS_CLUSTER_URLS, a Cluster)"
    )
    watched = Settings(redis_sentinels="10.0.0.1:26379", redis_master_name="q")
    shown = Places.of(watched, "sentinel://10.0.0.1:26379", RedisOrigin.SENTINELS)
    assert shown.lines()[-1].endswith("(REDIS_SENTINELS, master 'q')")
