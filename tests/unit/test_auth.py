"""API_KEYS parsing, key lookup and the route -> role table, without a server."""

from __future__ import annotations

import pytest
from litestar.datastructures import Headers

from interfaces.http.auth import (
    ANONYMOUS,
    Access,
    ApiKeyError,
    ApiKeys,
    Principal,
    may_read,
    presented_key,
    required_access,
)

SECRET = "s3cret-key-value"


def test_entries_parse_into_named_principals() -> None:
    keys = ApiKeys.parse(" ops:admin-key:admin , ci:producer-key:producer ,")
    assert keys.enabled
    assert keys.principals == [Principal("ops", "admin"), Principal("ci", "producer")]
    assert keys.identify("admin-key") == Principal("ops", "admin")
    assert keys.identify("producer-key") == Principal("ci", "producer")


def test_a_key_may_contain_colons() -> None:
    keys = ApiKeys.parse("ops:a:b:c:admin")
    assert keys.identify("a:b:c") == Principal("ops", "admin")


def test_an_unknown_key_identifies_nobody() -> None:
    keys = ApiKeys.parse("ops:admin-key:admin")
    assert keys.identify("admin-key ") is None
    assert keys.identify("admin") is None
    assert keys.identify("") is None


def test_empty_means_disabled() -> None:
    assert not ApiKeys.parse("").enabled
    assert not ApiKeys.parse(" , ").enabled


def test_one_name_may_hold_two_keys_while_rotating() -> None:
    keys = ApiKeys.parse("ci:old-key:producer,ci:new-key:producer")
    assert keys.identify("old-key") == keys.identify("new-key") == Principal("ci", "producer")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"ops:{SECRET}:admin,broken", "API_KEYS entry 2: expected name:key:role"),
        (f"ops:{SECRET}", "API_KEYS entry 1: expected name:key:role"),
        ("ops::admin", "API_KEYS entry 1: expected name:key:role"),
        (f"ops:{SECRET}:root", "API_KEYS entry 1 ('ops'): unknown role 'root'"),
        (f"ops:{SECRET}:", "API_KEYS entry 1 ('ops'): unknown role ''"),
        (f"a b:{SECRET}:admin", "API_KEYS entry 1: the name must be"),
        (f":{SECRET}:admin", "API_KEYS entry 1: the name must be"),
        (f"ops: {SECRET}:admin", "API_KEYS entry 1 ('ops'): the key has leading"),
        (f"a:{SECRET}:admin,b:{SECRET}:producer", "entries 'a' and 'b' have the same key"),
        ("ci:k1:producer,ci:k2:admin", "gives 'ci' two different roles"),
    ],
)
def test_a_bad_entry_is_named_without_showing_its_key(text: str, message: str) -> None:
    with pytest.raises(ApiKeyError) as raised:
        ApiKeys.parse(text)
    assert str(raised.value).startswith("API_KEYS")
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"Authorization": "bearer   abc "}, "abc"),
        ({"X-API-Key": "abc"}, "abc"),
        ({"Authorization": "Bearer abc", "X-API-Key": "other"}, "abc"),
        ({"Authorization": "Basic dXNlcjpwdw==", "X-API-Key": "abc"}, "abc"),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": "Basic dXNlcjpwdw=="}, None),
        ({}, None),
    ],
)
def test_the_key_comes_from_bearer_or_x_api_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(Headers(headers)) == key


@pytest.mark.parametrize(
    ("method", "route", "access"),
    [
        ("GET", "/health", Access.OPEN),
        ("HEAD", "/health", Access.OPEN),
        ("GET", "/ready", Access.OPEN),
        ("GET", "/schema", Access.OPEN),
        ("GET", "/schema/openapi.json", Access.OPEN),
        ("GET", "/schema/{path}", Access.OPEN),
        ("POST", "/api/tasks", Access.PRODUCER),
        ("POST", "/api/tasks/", Access.PRODUCER),
        ("POST", "/api/tasks/bulk", Access.PRODUCER),
        ("POST", "/tasks", Access.PRODUCER),
        ("POST", "/api/job", Access.PRODUCER),
        ("POST", "/jobs/enqueue", Access.PRODUCER),
        ("POST", "/api/templates/{template_id}/use", Access.PRODUCER),
        ("GET", "/api/tasks/{task_id}", Access.PRODUCER),
        ("GET", "/api/tasks/{id:str}", Access.PRODUCER),
        ("GET", "/api/batches/{batch_id}", Access.PRODUCER),
        ("DELETE", "/api/tasks/{task_id}", Access.ADMIN),
        ("POST", "/api/tasks/{task_id}/retry", Access.ADMIN),
        ("POST", "/api/tasks/bulk/cancel", Access.ADMIN),
        ("GET", "/api/tasks", Access.PRODUCER),  # narrowed to its own tasks
        ("GET", "/api/tasks/export", Access.ADMIN),
        ("GET", "/api/tasks/stats", Access.ADMIN),
        ("GET", "/api/stats", Access.ADMIN),
        ("GET", "/api/audit", Access.ADMIN),
        ("GET", "/api/templates", Access.ADMIN),
        ("POST", "/api/templates", Access.ADMIN),
        ("DELETE", "/api/templates/{template_id}", Access.ADMIN),
        ("POST", "/api/queues/{queue}/pause", Access.ADMIN),
        ("GET", "/admin/queues", Access.OPEN),  # the page holds no data: its API calls do
        ("GET", "/admin/queues/assets/{name}", Access.OPEN),
        ("POST", "/admin/queues", Access.ADMIN),
        ("GET", "/admin/queues/other", Access.ADMIN),
        ("GET", "/metrics", Access.ADMIN),
        ("POST", "/health", Access.ADMIN),
        ("GET", "/schemas", Access.ADMIN),
        ("OPTIONS", "/api/tasks", Access.ADMIN),
    ],
)
def test_route_table(method: str, route: str, access: Access) -> None:
    assert required_access(method, route) is access


def test_roles_are_ordered() -> None:
    admin, producer = Principal("ops", "admin"), Principal("ci", "producer")
    assert admin.access >= Access.PRODUCER
    assert producer.access >= Access.PRODUCER
    assert producer.access < Access.ADMIN
    assert ANONYMOUS.access is Access.ADMIN


def test_producers_read_their_own_tasks_and_admins_every_one() -> None:
    producer = Principal("ci", "producer")
    assert may_read(producer, "ci")
    assert not may_read(producer, "other")
    assert not may_read(producer, None)
    assert may_read(Principal("ops", "admin"), "ci")
    assert may_read(Principal("ops", "admin"), None)
    assert may_read(ANONYMOUS, None)
