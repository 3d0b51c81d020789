"""Schemathesis against the served OpenAPI schema, in process, with a real Redis (auth off).

Every operation of the schema is fuzzed once, 25 valid and 25 invalid examples (3 of the
event stream, which only its timeout ends), the same ones each run. Before each example the
database is flushed and a task of every status (and a batch) is seeded; a valid case that
names a task (or a batch, or bulk ids) is sent as generated, then again aimed at a seeded
task, a status after another, so that the actions meet tasks they may and may not act on,
not only unknown ids.

The responses are checked in three groups (no 5xx; bodies and content types as documented;
statuses as documented), each a test with an item per operation, so that a known bug marks
the operations it affects (strict xfail) and leaves the others guarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from dependency_injector import providers
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from application.change_task import Action, ChangeTask
from domain.task import Task, TaskStatus
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.settings import Settings
from interfaces.container import Container, new_task_id
from interfaces.http.app import create_app
from tests.conftest import TEST_REDIS_URL
from tests.stores import RedisStore

MAX_EXAMPLES = 25
# An event stream ends only at the call's timeout, so each of its examples costs that long;
# it takes no input but the key headers, and a few examples cover those.
STREAM_EXAMPLES = {("GET", "/api/events"): 3}
CALL_TIMEOUT_S = 2.0  # an event stream (GET /api/events) is cut there, with what it sent
KINDS = ["waiting", "delayed", "active", "completed", "failed", "cancelled"]
TASK_PARAMETERS = ("task_id", "job_id")
QUEUE_NAMES = ("default", "seeded")
Check = Callable[..., Any]


def make_app(files: Path) -> Litestar:
    settings_ = Settings(
        redis_url=TEST_REDIS_URL,
        files_base_dir=files,
        api_keys="",
        queues=",".join(QUEUE_NAMES),
        allowed_hosts=asgi.HOST,  # schemathesis's own test client sends Host: testserver
    )
    container = Container()
    container.settings.override(providers.Object(settings_))
    return create_app(container)


def schema_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation, read from the schema at collection (no Redis)."""
    document = make_app(Path(tempfile.gettempdir()) / "conveyor-schema").openapi_schema
    paths = document.to_schema()["paths"]
    return [(method.upper(), path) for path, item in paths.items() for method in item]


OPERATIONS = schema_operations()


def now_ms() -> int:
    return int(time.time() * 1000)


class Seeder:
    """Flushes the database and makes a task of every status, on an event loop of its own."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = create_redis(TEST_REDIS_URL)
        self._blocking = create_blocking_redis(TEST_REDIS_URL)

    def close(self) -> None:
        for client in (self._client, self._blocking):
            self._loop.run_until_complete(client.aclose())
        self._loop.run_until_complete(asyncio.sleep(0.05))  # let the sockets finish closing
        self._loop.close()

    def seed(self) -> dict[str, str]:
        return self._loop.run_until_complete(self._seed())

    async def _seed(self) -> dict[str, str]:
        await self._client.flushdb()
        queue = RedisStore(self._client, self._blocking, 60_000, queues=QUEUE_NAMES)
        now = now_ms()

        def task(queue: str = "default", run_at: int = now, **changes: Any) -> Task:
            return Task(new_task_id(), "echo", {"n": 1}, now, run_at, queue=queue, **changes)

        plain = {status: task() for status in ("waiting", "cancelled", "failed")}
        plain["delayed"] = task(status=TaskStatus.DELAYED, run_at=now + 3_600_000)
        running = {"active": task("seeded"), "completed": task("seeded")}
        batch_id = new_task_id()
        await queue.enqueue([*plain.values(), *running.values()], batch_id)
        claimed = await queue.claim("seeded", "seeder", 10, 60_000, now)
        by_id = {claimed_task.id: claimed_task for claimed_task in claimed.tasks}
        await queue.settle(by_id[running["completed"].id].complete({"ok": True}, now_ms()))
        change = ChangeTask(queue, queue, now_ms)
        await change.execute(Action.CANCEL, plain["cancelled"].id)
        await change.execute(Action.KILL, plain["failed"].id)
        await queue.aclose()
        seeds = {status: seeded.id for status, seeded in {**plain, **running}.items()}
        return {**seeds, "batch": batch_id}


def aim(case: Any, seeds: dict[str, str], kind: str) -> bool:
    """Point the case at the seeded task of `kind` (or at the seeded batch, or add the
    seeded ids to a bulk body); False if it names nothing of the kind."""
    path_parameters = case.path_parameters or {}
    name = next((name for name in TASK_PARAMETERS if name in path_parameters), None)
    if name is not None:
        path_parameters[name] = seeds[kind]
        if isinstance(case.query, dict):
            case.query.pop("queue", None)  # the seeded task's own queue is found by id
            wait = case.query.get("waitMs")
            if isinstance(wait, int) and wait > 20:
                case.query["waitMs"] = 20  # a waiting task would hold the request that long
        return True
    if "batch_id" in path_parameters:
        path_parameters["batch_id"] = seeds["batch"]
        return True
    if isinstance(case.body, dict) and isinstance(case.body.get("ids"), list):
        case.body["ids"] = [seeds[kind], *case.body["ids"]]
        return True
    return False


# The checks, in groups that each have a test of their own.
GROUPS: dict[str, list[Check]] = {
    "server_errors": [not_a_server_error],
    "schema": [content_type_conformance, response_schema_conformance],
    "statuses": [status_code_conformance],
}


class Fuzzer:
    """Fuzzes an operation once, in both modes, and keeps each group's first failure."""

    def __init__(self, schema: Any, seeder: Seeder) -> None:
        self._schema = schema
        self._seeder = seeder
        self._findings: dict[tuple[str, str], dict[str, str]] = {}

    def failure(self, method: str, path: str, group: str) -> str | None:
        if (method, path) not in self._findings:
            self._findings[method, path] = self._fuzz(method, path)
        return self._findings[method, path].get(group)

    def _fuzz(self, method: str, path: str) -> dict[str, str]:
        operation = self._schema[path][method]
        found: dict[str, str] = {}
        examples = STREAM_EXAMPLES.get((method, path), MAX_EXAMPLES)
        self._examples(operation, GenerationMode.POSITIVE, examples, found)
        with contextlib.suppress(Unsatisfiable):  # when the operation takes no input at all
            self._examples(operation, GenerationMode.NEGATIVE, examples, found)
        return found

    def _examples(
        self, operation: Any, mode: GenerationMode, count: int, found: dict[str, str]
    ) -> None:
        aimed = mode is GenerationMode.POSITIVE
        sent = 0

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=count,
            deadline=None,
            derandomize=True,  # the same examples each run: a known bug fails every time
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def examples(case: Any) -> None:
            nonlocal sent
            seeds = self._seeder.seed()
            self._send(case, found)
            # A valid request is sent again at a seeded task, of a kind after another.
            kind = KINDS[sent % len(KINDS)]
            sent += 1
            if aimed and aim(case, seeds, kind):
                self._send(case, found)

        examples()

    @staticmethod
    def _send(case: Any, found: dict[str, str]) -> None:
        response = case.call(timeout=CALL_TIMEOUT_S)
        for group, checks in GROUPS.items():
            if group in found:
                continue
            try:
                case.validate_response(response, checks=checks)
            except FailureGroup as failure:
                found[group] = f"{failure}\n\nReproduce: {case.as_curl_command()}"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Litestar]:
    try:
        yield make_app(tmp_path_factory.mktemp("files"))
    finally:
        asgi.shutdown_lifespans()
        flush = redis.Redis.from_url(TEST_REDIS_URL)
        flush.flushdb()
        flush.close()


@pytest.fixture(scope="module")
def fuzzer(app: Litestar) -> Iterator[Fuzzer]:
    seeder = Seeder()
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    try:
        yield Fuzzer(schema, seeder)
    finally:
        seeder.close()


def operations(known_bugs: dict[str, tuple[str, ...]]) -> list[Any]:
    """Every operation; those a known bug affects are expected to fail, for its reason."""
    params = []
    for method, path in OPERATIONS:
        label = f"{method} {path}"
        reasons = [reason for reason, labels in known_bugs.items() if label in labels]
        marks = [pytest.mark.xfail(strict=True, reason="; ".join(reasons))] if reasons else []
        params.append(pytest.param(method, path, id=label, marks=marks))
    return params


# Known bugs: reason -> the operations where the fuzzing meets them.
SERVER_ERRORS: dict[str, tuple[str, ...]] = {}
SCHEMA_VIOLATIONS: dict[str, tuple[str, ...]] = {}
UNDOCUMENTED_STATUSES: dict[str, tuple[str, ...]] = {}


@pytest.mark.parametrize(("method", "path"), operations(SERVER_ERRORS))
def test_no_server_errors(fuzzer: Fuzzer, method: str, path: str) -> None:
    failure = fuzzer.failure(method, path, "server_errors")
    assert failure is None, failure


@pytest.mark.parametrize(("method", "path"), operations(SCHEMA_VIOLATIONS))
def test_responses_match_the_schema(fuzzer: Fuzzer, method: str, path: str) -> None:
    failure = fuzzer.failure(method, path, "schema")
    assert failure is None, failure


@pytest.mark.parametrize(("method", "path"), operations(UNDOCUMENTED_STATUSES))
def test_statuses_are_documented(fuzzer: Fuzzer, method: str, path: str) -> None:
    failure = fuzzer.failure(method, path, "statuses")
    assert failure is None, failure
