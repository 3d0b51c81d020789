"""422s name what the request sent, over HTTP with a real Redis: every query parameter of
every route by its wire name (`waitMs`, never `wait_ms`), and every number of the native
bodies strictly (`true` or `"100"` is refused where an integer belongs), while the seeds'
own routes keep taking what their documents send."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

import pytest
from litestar.enums import ParamType
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from pydantic import BaseModel

from interfaces.http.schemas import BackoffBody, DuplicateBody, EnqueueBody
from tests.integration.test_http_boundary import make_app

Client = AsyncTestClient[Any]


class Query(NamedTuple):
    method: str
    path: str
    wire: str  # the name a request gives
    internal: str  # the handler's
    bad: str  # a value it refuses


def query_parameters() -> Iterator[Any]:
    """Every query parameter of every route, as litestar itself reads them: a new one is
    covered too. "!" is no integer, date, status or id; past a max_length it is too long."""
    for route in make_app().routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{[^}]*\}", "some-id", route.path)
        for method, (handler, kwargs_model) in route.route_handler_map.items():
            for parameter in kwargs_model.expected_query_params:
                if parameter.param_type is not ParamType.QUERY:
                    continue
                field = handler.parsed_fn_signature.parameters[parameter.field_name]
                longest = getattr(field.kwarg_definition, "max_length", None) or 0
                wire, internal = parameter.field_alias, parameter.field_name
                query = Query(method, path, wire, internal, "!" * (longest + 1))
                yield pytest.param(query, id=f"{method} {path} {wire}")


QUERY_PARAMETERS = list(query_parameters())


def test_the_parameters_renamed_on_the_wire_are_among_those_found() -> None:
    found = {(param.values[0].wire, param.values[0].internal) for param in QUERY_PARAMETERS}
    assert {("waitMs", "wait_ms"), ("from", "created_from"), ("taskName", "task_name")} <= found
    assert ("startDate", "start_date") in found


@pytest.mark.parametrize("query", QUERY_PARAMETERS)
async def test_a_bad_query_parameter_is_named_as_the_request_spells_it(
    client: Client, query: Query
) -> None:
    response = await client.request(query.method, query.path, params={query.wire: query.bad})
    assert response.status_code == 422, response.text
    assert list(response.json()["fields"]) == [query.wire]


# --- strict numbers in the native bodies --------------------------------------------------


def _leaves(annotation: Any) -> Iterator[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _leaves(get_args(annotation)[0])
    elif origin in (Union, types.UnionType):
        for member in get_args(annotation):
            yield from _leaves(member)
    else:
        yield annotation


def scalar_fields(model: type[BaseModel]) -> list[tuple[str, type]]:
    """(wire name, int | float | bool) of every number or boolean field of `model`."""
    found = []
    for name, field in model.model_fields.items():
        kinds = [kind for kind in _leaves(field.annotation) if kind in (int, float, bool)]
        if kinds:
            found.append((field.alias or name, kinds[0]))
    return found


def test_the_native_bodies_numbers_are_found() -> None:
    assert {name for name, _ in scalar_fields(EnqueueBody)} == {
        "delayMs", "priority", "attempts", "timeoutMs",
    }  # fmt: skip
    assert {name for name, _ in scalar_fields(BackoffBody)} == {
        "delay", "factor", "maxDelay", "jitter",
    }  # fmt: skip
    assert scalar_fields(DuplicateBody) == []  # a due time only


def impostors(kind: type) -> list[Any]:
    """JSON values a lenient parser would take for a `kind`: none of them is one."""
    if kind is bool:
        return [1, 0, "true", "false"]
    return [True, False, "100", "1e3"] + ([1.0, 2.5] if kind is int else [])


def body_cases() -> Iterator[Any]:
    echo = {"taskName": "echo", "payload": {}}
    for name, kind in scalar_fields(EnqueueBody):
        for value in impostors(kind):
            yield "/api/tasks", {**echo, name: value}, name, value
            yield (
                "/api/tasks/bulk",
                {"tasks": [echo, {**echo, name: value}]},
                f"tasks.1.{name}",
                value,
            )
    for name, kind in scalar_fields(BackoffBody):
        for value in impostors(kind):
            yield "/api/tasks", {**echo, "backoff": {name: value}}, f"backoff.{name}", value


@pytest.mark.parametrize(("path", "body", "field", "value"), list(body_cases()))
async def test_a_boolean_or_a_string_is_no_number_in_a_native_body(
    client: Client, path: str, body: dict[str, Any], field: str, value: Any
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert list(response.json()["fields"]) == [field]
    assert (await client.get("/api/tasks")).json()["total"] == 0


@pytest.mark.parametrize("backoff", [True, "1000", 1.5])
async def test_the_backoff_shorthand_is_a_number_of_ms_only(client: Client, backoff: Any) -> None:
    response = await client.post(
        "/api/tasks", json={"taskName": "echo", "payload": {}, "backoff": backoff}
    )
    assert response.status_code == 422
    assert response.json()["fields"] == {"backoff": "Input should be an object or a number of ms"}


async def test_real_numbers_are_taken(client: Client) -> None:
    backoff = {"delay": 10, "factor": 3, "maxDelay": 99, "jitter": False}
    response = await client.post(
        "/api/tasks",
        json={
            "taskName": "echo", "payload": {}, "delayMs": 5000, "priority": -3, "attempts": 2,
            "timeoutMs": 1000, "backoff": backoff,
        },
    )  # fmt: skip
    assert response.status_code == 202
    task = response.json()
    assert task["backoff"] == {"delayMs": 10, "factor": 3.0, "maxDelayMs": 99, "jitter": False}
    shorthand = await client.post(
        "/api/tasks", json={"taskName": "echo", "payload": {}, "backoff": 2500}
    )
    assert shorthand.json()["backoff"]["delayMs"] == 2500


async def test_the_seed_routes_stay_lenient_with_their_numbers(client: Client) -> None:
    """Seed 003 sends its numbers as numbers; a client that quoted them worked with
    BullMQ's Express server too, and keeps working."""
    response = await client.post(
        "/jobs/enqueue",
        json={
            "type": "email",
            "payload": {"to": "user@example.com"},
            "priority": "1",
            "delay": "5000",
        },
    )
    assert response.status_code == 202
    assert response.json()["priority"] == 1
    assert response.json()["status"] == "delayed"
