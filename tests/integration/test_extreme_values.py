"""No input gives a 500 and nothing stored breaks a read, over HTTP with a real Redis.

Property tests (hypothesis, the same examples each run): extreme but valid values enqueued
through every enqueue route are stored and read back by every read, listing and export;
the listings' query parameters, fuzzed, never answer 5xx and name only their own wire
names. Then the values just past each bound, which are 422s naming the field.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from redis.asyncio import Redis

from domain.task import PRIORITY_LIMIT, Task, TaskStatus
from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app
from interfaces.http.values import MAX_PAYLOAD_DEPTH, TEN_YEARS_MS
from tests.conftest import LOCAL
from tests.integration.test_http_boundary import make_app
from tests.stores import RedisStore

Client = TestClient[Any]
EXAMPLES = 25
HUGE = 10**4300 - 1  # the longest integer Python turns into text: 4,300 digits
LEAST = -(10**4299 - 1)  # and its sign counts as one of them
READS = ["/api/tasks/{}", "/jobs/{}"]
LISTINGS = [
    "/api/tasks?limit=100",
    "/api/tasks?status=delayed&limit=100",
    "/api/jobs?limit=100",
    "/api/jobs?status=pending&limit=100",
    "/jobs?limit=100",
    "/api/tasks/export",
    "/api/jobs/export",
]


def nested(levels: int) -> dict[str, Any]:
    """A payload `levels` deep, the payload object itself the first level."""
    payload: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        payload = {"a": payload}
    return payload


def deep_list(levels: int) -> list[Any]:
    value: list[Any] = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


def run(example: Callable[..., None], **strategies: st.SearchStrategy[Any]) -> None:
    given(**strategies)(
        settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same examples each run: a failure fails every time
            database=None,
            suppress_health_check=list(HealthCheck),
        )(example)
    )()


@pytest.fixture
def api(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[Client]:
    settings_ = Settings(redis_url=redis_url, files_base_dir=tmp_path / "files")
    container = Container()
    container.settings.override(providers.Object(settings_))
    with TestClient(app=create_app(container), base_url=LOCAL) as client:
        yield client


# --- strategies -------------------------------------------------------------------------

# ISO 8601 offsets: whole minutes, less than a day either way.
_OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
_SOON = datetime.now(UTC).replace(tzinfo=None) + timedelta(milliseconds=TEN_YEARS_MS, days=-2)
# Every date-time the schema admits, naive ones meaning UTC: from year 1 (0000-12-31 in
# UTC at +14:00) to 9999-12-31 (year 10000 in UTC at -05:00). Those more than 10 years
# ahead are 422s; the others, drawn as often, are stored.
DUE_TIMES = st.one_of(
    st.datetimes(datetime.min, _SOON, timezones=_OFFSETS),
    st.datetimes(datetime.min, _SOON),
    st.datetimes(datetime.min, datetime.max, timezones=_OFFSETS),
    st.sampled_from(
        [
            datetime.min,
            datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
            datetime.max,
            _SOON + timedelta(days=4),
        ]
    ),
).map(datetime.isoformat)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(LEAST, HUGE),
    st.sampled_from([HUGE, LEAST, 2**63, -(2**63) - 1, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=24,
)
PAYLOADS = st.one_of(
    st.dictionaries(st.text(max_size=12), _JSON, max_size=6),
    st.sampled_from([MAX_PAYLOAD_DEPTH, MAX_PAYLOAD_DEPTH + 1, 400]).map(nested),
    st.just({"list": deep_list(MAX_PAYLOAD_DEPTH - 1)}),
)
MS = st.integers(0, TEN_YEARS_MS)
BACKOFFS = st.one_of(
    MS,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["exponential", "fixed"]),
            "delay": MS,
            "factor": st.floats(1.0, 100.0),
            "maxDelay": MS,
            "jitter": st.booleans(),
        },
    ),
)
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "priority": st.integers(-PRIORITY_LIMIT, PRIORITY_LIMIT),
        "attempts": st.integers(1, 1_000),
        "timeoutMs": st.integers(1, TEN_YEARS_MS),
        "backoff": BACKOFFS,
        "customJobId": st.from_regex(r"[A-Za-z0-9._:-]{1,100}", fullmatch=True),
    },
)
WHEN = st.one_of(
    st.just({}), MS.map(lambda ms: {"delayMs": ms}), DUE_TIMES.map(lambda at: {"runAt": at})
)


# --- enqueue everywhere, read everything -------------------------------------------------


class Producer:
    """Sends one example's values through every enqueue route: each stores them or answers
    422 naming a field they may fail (a due time too far ahead, a payload too deep)."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.sent = 0
        template = {"name": "t", "task": {"type": "echo", "data": {}}}
        self.template = api.post("/api/templates", json=template).json()["id"]
        self.original = api.post("/api/tasks", json={"taskName": "echo"}).json()["id"]

    def enqueue_everywhere(
        self, payload: dict[str, Any], options: dict[str, Any], when: dict[str, Any], due: str
    ) -> list[str]:
        """The ids of the tasks stored."""
        self.sent += 1
        if "customJobId" in options:  # unique, or it would be a 409 for other content
            options = {**options, "customJobId": f"{self.sent}-{options['customJobId']}"}
        native = {"taskName": "echo", "payload": payload, **options, **when}
        twins = [{**native, "customJobId": f"bulk-{self.sent}"}, {**native, "customJobId": None}]
        seed003 = {"type": "echo", "payload": payload, "priority": options.get("priority", 0),
                   "delay": when.get("delayMs", 0)}  # fmt: skip
        job = {"task": {"type": "echo", "data": payload}, "scheduled_at": due}
        use = f"/api/templates/{self.template}/use"
        answers = [
            self._send("/api/tasks", native, 202, "runAt", "payload"),
            self._send("/api/tasks/bulk", {"tasks": twins}, 202, *_each("runAt", "payload")),
            self._send("/tasks", {"taskName": "echo", "payload": payload}, 200, "payload"),
            self._send("/api/job", job, 202, "scheduled_at", "task.data"),
            self._send("/jobs/enqueue", seed003, 202, "payload"),
            self._send(use, {"scheduled_at": due}, 202, "scheduled_at"),
            self._send(f"/api/tasks/{self.original}/duplicate", {"runAt": due}, 202, "runAt"),
            self._send(
                f"/api/duplicate/{self.original}", {"scheduled_at": due}, 202, "scheduled_at"
            ),
        ]
        stored = [answer for answer in answers if answer is not None]
        return [task["id"] for answer in stored for task in answer.get("tasks", [answer])]

    def _send(self, path: str, body: dict[str, Any], status: int, *may_fail: str) -> Any:
        response = self.api.post(
            path, content=json.dumps(body), headers={"content-type": "application/json"}
        )
        if response.status_code == 422:
            assert set(response.json()["fields"]) <= set(may_fail), (path, response.text)
            return None
        assert response.status_code == status, (path, body, response.text)
        return response.json()


def _each(*fields: str) -> list[str]:
    return [f"tasks.{index}.{field}" for index in (0, 1) for field in fields]


def read_everything(api: Client, ids: list[str]) -> None:
    for task_id in ids:
        for read in READS:
            response = api.get(read.format(task_id))
            assert response.status_code == 200, (read, response.text)
    for listing in LISTINGS:
        response = api.get(listing)
        assert response.status_code == 200, (listing, response.text)


def test_extreme_valid_values_pass_every_enqueue_route_and_read_back(api: Client) -> None:
    producer = Producer(api)

    def example(
        payload: dict[str, Any], options: dict[str, Any], when: dict[str, Any], due: str
    ) -> None:
        read_everything(api, producer.enqueue_everywhere(payload, options, when, due))

    run(example, payload=PAYLOADS, options=OPTIONS, when=WHEN, due=DUE_TIMES)
    assert api.get("/api/tasks").json()["total"] >= EXAMPLES * 3  # not all refused


# --- what is stored already ---------------------------------------------------------------

BEYOND_YEAR_9999_MS = 253_402_318_799_000  # 9999-12-31T23:59:59-05:00, once accepted


async def test_a_stored_time_beyond_year_9999_still_reads_and_lists(
    api: Client, redis: Redis, blocking_redis: Redis
) -> None:
    """A task stored before due times were bounded must not fail every page holding it."""
    queue = RedisStore(redis, blocking_redis, 60_000)
    now = int(datetime.now(UTC).timestamp() * 1000)
    await queue.enqueue(
        [Task("far", "echo", {}, now, BEYOND_YEAR_9999_MS, status=TaskStatus.DELAYED)]
    )
    await queue.enqueue([Task("early", "echo", {}, -62_135_596_800_001, now)])  # before year 1
    for path in ["/api/tasks/far", "/jobs/far"]:
        response = api.get(path)
        assert response.status_code == 200
        shown = response.json().get("runAt") or response.json()["scheduled_at"]
        assert shown == "9999-12-31T23:59:59.999Z"  # the latest time a datetime holds
    assert api.get("/api/tasks/early").json()["createdAt"] == "0001-01-01T00:00:00.000Z"
    for listing in LISTINGS:
        response = api.get(listing)
        assert response.status_code == 200, listing
        assert "far" in response.text


# --- just past each bound -----------------------------------------------------------------

_ECHO = {"taskName": "echo", "payload": {}}
_FAR = "9999-12-31T23:59:59-05:00"  # year 10000 in UTC
_ELEVEN_YEARS = (datetime.now(UTC) + timedelta(days=11 * 365)).isoformat()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/tasks", {**_ECHO, "runAt": _FAR}, "runAt"),
        ("/api/tasks", {**_ECHO, "runAt": _ELEVEN_YEARS}, "runAt"),
        ("/api/tasks", {**_ECHO, "delayMs": TEN_YEARS_MS + 1}, "delayMs"),
        ("/api/tasks", {**_ECHO, "backoff": 10**20}, "backoff.delay"),
        ("/api/tasks", {**_ECHO, "backoff": TEN_YEARS_MS + 1}, "backoff.delay"),
        ("/api/tasks", {**_ECHO, "backoff": {"maxDelay": 10**30}}, "backoff.maxDelay"),
        ("/api/tasks", {**_ECHO, "timeoutMs": 10**400}, "timeoutMs"),
        ("/api/tasks", {**_ECHO, "payload": nested(MAX_PAYLOAD_DEPTH + 1)}, "payload"),
        ("/api/tasks", {**_ECHO, "payload": {"x": deep_list(MAX_PAYLOAD_DEPTH)}}, "payload"),
        ("/api/tasks/bulk", {"tasks": [{**_ECHO, "runAt": _FAR}]}, "tasks.0.runAt"),
        ("/tasks", {**_ECHO, "payload": nested(500)}, "payload"),
        ("/api/job", {"task": {"type": "echo"}, "scheduled_at": _FAR}, "scheduled_at"),
        ("/api/job", {"task": {"type": "echo", "data": nested(40)}}, "task.data"),
        ("/jobs/enqueue", {"type": "echo", "delay": TEN_YEARS_MS + 1}, "delay"),
        ("/jobs/enqueue", {"type": "echo", "priority": 10**30}, "priority"),
        ("/jobs/enqueue", {"type": "echo", "payload": nested(33)}, "payload"),
        (
            "/api/templates",
            {"name": "t", "task": {"type": "echo", "data": nested(33)}},
            "task.data",
        ),
        ("/api/templates/{template}/use", {"scheduled_at": _FAR}, "scheduled_at"),
        ("/api/tasks/{task}/duplicate", {"runAt": _FAR}, "runAt"),
        ("/api/duplicate/{task}", {"scheduled_at": _ELEVEN_YEARS}, "scheduled_at"),
    ],
)
def test_a_value_past_its_bound_is_a_422_naming_it(
    api: Client, path: str, body: dict[str, Any], field: str
) -> None:
    template = api.post("/api/templates", json={"name": "t", "task": {"type": "echo"}}).json()
    task = api.post("/api/tasks", json=_ECHO).json()
    response = api.post(path.format(template=template["id"], task=task["id"]), json=body)
    assert response.status_code == 422, response.text
    assert list(response.json()["fields"]) == [field]
    assert api.get("/api/tasks").json()["total"] == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"taskName": "echo", "payload": {"x": 1e400}}',
        b'{"taskName": "echo", "payload": {"x": -1e400}}',
        b'{"taskName": "echo", "payload": {"x": ' + b"9" * 5000 + b"}}",
        b'{"taskName": "echo", "payload": {"x": [-' + b"9" * 4300 + b"]}}",
        b'{"taskName": "echo", "delayMs": ' + b"9" * 5000 + b"}",
    ],
)
def test_a_number_no_float_or_int_text_holds_is_a_422(api: Client, raw: bytes) -> None:
    response = api.post("/api/tasks", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert "out of range" in response.json()["fields"]["body"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(api: Client, literal: bytes) -> None:
    raw = b'{"taskName": "echo", "payload": {"x": ' + literal + b"}}"
    response = api.post("/api/tasks", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize(
    "query",
    [
        "/api/jobs?endDate=9999-12-31",
        "/api/jobs?startDate=9999-12-31&endDate=9999-12-31",
        "/api/jobs?startDate=0001-01-01&endDate=0001-01-01",
        "/api/jobs/export?endDate=9999-12-31",
        "/api/jobs?endDate=9999-12-31T23:59:59-05:00",
        "/api/tasks?from=0001-01-01T00:00:00%2B14:00&to=9999-12-31T23:59:59-05:00",
        "/api/tasks/export?to=9999-12-31T23:59:59-05:00",
    ],
)
def test_the_widest_date_filters_list(api: Client, query: str) -> None:
    api.post("/api/tasks", json=_ECHO)
    assert api.get(query).status_code == 200


def _cursor(parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor(["s", 10**400, "a", "default"]),  # float() of it raises OverflowError
        _cursor(["s", float("inf"), "a", "default"]),
        _cursor(["s", float("nan"), "a", "default"]),
        _cursor(["s", True, "a", "default"]),
        _cursor(["s", 1, "a"]),
        _cursor(["i", 1, "default"]),
        _cursor({"s": 1}),
        _cursor([]),
        "!!!",
        "é",
        "A" * 512,
    ],
)
@pytest.mark.parametrize("path", ["/api/tasks", "/jobs", "/jobs/failed/jobs"])
def test_a_cursor_the_api_did_not_hand_out_is_a_422_naming_it(
    api: Client, path: str, cursor: str
) -> None:
    api.post("/api/tasks", json=_ECHO)
    for query in [{"cursor": cursor}, {"cursor": cursor, "search": "echo"}]:
        response = api.get(path, params=query)
        if path != "/api/tasks" and "search" in query:
            continue  # the seed's listing takes no search
        assert response.status_code == 422, (query, response.text)
        assert list(response.json()["fields"]) == ["cursor"]


# --- the listings' parameters, fuzzed -----------------------------------------------------


def listing_parameters() -> dict[str, list[str]]:
    """path -> the wire names of its query parameters, for every GET route that has some
    (read from the app: a new listing is fuzzed too); a task id is one that is not there,
    so that a valid waitMs answers 404 at once instead of waiting. An event stream is no
    listing: it answers only when the client leaves (its `summary` is fuzzed by schemathesis,
    cut at its timeout)."""
    found = {}
    for route in make_app().routes:
        if not isinstance(route, HTTPRoute) or "GET" not in route.route_handler_map:
            continue
        handler, kwargs_model = route.route_handler_map["GET"]
        if handler.media_type == "text/event-stream":
            continue
        names = sorted(parameter.field_alias for parameter in kwargs_model.expected_query_params)
        if names:
            found[route.path.replace("{task_id:str}", "missing")] = names
    return found


LISTING_PARAMETERS = listing_parameters()
_ODD = [
    "", "0", "-1", "1e400", "NaN", "Infinity", "true", "9" * 5000, "-" + "9" * 5000,
    "99999999999999999999", "9999-12-31", "0001-01-01", "0000-01-01", "2026-02-30",
    "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+14:00", "pending", "waiting",
    "default", "echo", "A" * 513, "\x00", "../..",
]  # fmt: skip
_CURSORS = _JSON.map(_cursor) | st.tuples(st.just("s"), _SCALARS, st.text(), st.text()).map(
    lambda parts: _cursor(list(parts))
)
QUERY_VALUES = st.one_of(
    st.sampled_from(_ODD), st.text(max_size=30), st.integers().map(str), _CURSORS
)


def test_the_listing_routes_are_found() -> None:
    assert {"/api/tasks", "/api/jobs", "/jobs", "/api/tasks/export"} <= set(LISTING_PARAMETERS)
    assert "waitMs" in LISTING_PARAMETERS["/api/tasks/missing"]


@pytest.mark.parametrize("path", sorted(LISTING_PARAMETERS))
def test_fuzzed_listing_parameters_never_answer_5xx(api: Client, path: str) -> None:
    producer = Producer(api)
    producer.enqueue_everywhere({"n": 1}, {}, {"delayMs": 60_000}, "2026-01-01T00:00:00Z")
    wire = LISTING_PARAMETERS[path]
    handed_out = api.get("/api/tasks", params={"limit": 1}).json()["nextCursor"]

    def example(query: dict[str, str]) -> None:
        response = api.get(path, params=query)
        assert response.status_code < 500, (query, response.text)
        if response.status_code == 422:
            assert set(response.json()["fields"]) <= set(wire), (query, response.text)

    values = QUERY_VALUES | st.just(handed_out)
    run(example, query=st.fixed_dictionaries({}, optional=dict.fromkeys(wire, values)))
