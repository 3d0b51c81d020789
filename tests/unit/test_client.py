"""The Python client and the client commands of the CLI, against httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from interfaces import client as client_module
from interfaces.cli import main
from interfaces.client import (
    AsyncConveyorClient,
    Conflict,
    ConveyorClient,
    ConveyorError,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)

Handler = Callable[[httpx.Request], httpx.Response]


def task(task_id: str = "t1", status: str = "waiting", **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "taskName": "echo",
        "payload": {"a": 1},
        "queue": "default",
        "priority": 0,
        "status": status,
        "attempts": 0,
        "maxAttempts": 3,
        "createdAt": "2026-11-23T10:00:00.000Z",
        **extra,
    }


class Server:
    """A MockTransport handler that keeps every request and answers with `answer`."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json=task()))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def client(self, **options: Any) -> ConveyorClient:
        return ConveyorClient(
            "http://conveyor.test", **options, transport=httpx.MockTransport(self)
        )

    def aclient(self) -> AsyncConveyorClient:
        return AsyncConveyorClient("http://conveyor.test", transport=httpx.MockTransport(self))

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def bodies(self) -> list[Any]:
        return [
            json.loads(request.content) if request.content else None for request in self.requests
        ]


@pytest.fixture
def server() -> Server:
    return Server()


def answer(status: int, body: Any = None, text: str = "") -> Handler:
    if body is None:
        return lambda request: httpx.Response(status, text=text)
    return lambda request: httpx.Response(status, json=body)


def test_enqueue_sends_the_wire_names_and_leaves_out_what_is_unset(server: Server) -> None:
    server.answer = answer(202, task())
    run_at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    with server.client(api_key="k1") as conveyor:
        created = conveyor.enqueue("echo", {"a": 1}, run_at=run_at, task_id="job-1", priority=-2)
    assert created["id"] == "t1"
    request = server.last
    assert (request.method, request.url.path) == ("POST", "/api/tasks")
    assert request.headers["Authorization"] == "Bearer k1"
    assert json.loads(request.content) == {
        "taskName": "echo",
        "payload": {"a": 1},
        "runAt": "2026-11-23T10:00:00.000Z",
        "customJobId": "job-1",
        "priority": -2,
    }


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_URL", "http://elsewhere:9000/")
    monkeypatch.setenv("CONVEYOR_API_KEY", "secret")
    server = Server()
    with ConveyorClient(transport=httpx.MockTransport(server)) as conveyor:
        conveyor.get("t1")
    assert conveyor.url == "http://elsewhere:9000"
    assert str(server.last.url) == "http://elsewhere:9000/api/tasks/t1"
    assert server.last.headers["Authorization"] == "Bearer secret"


def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    monkeypatch.delenv("CONVEYOR_API_KEY", raising=False)
    with server.client() as conveyor:
        conveyor.get("t1", queue="emails")
    assert "Authorization" not in server.last.headers
    assert server.last.url.params["queue"] == "emails"


def test_an_unknown_option_is_a_type_error(server: Server) -> None:
    with server.client() as conveyor, pytest.raises(TypeError, match="prio"):
        conveyor.enqueue("echo", {}, prio=1)  # type: ignore[call-arg]
    assert not server.requests


def test_enqueue_many_sends_every_task_in_one_request(server: Server) -> None:
    server.answer = answer(202, {"batchId": "b1", "tasks": [task("t1"), task("t2")]})
    with server.client() as conveyor:
        batch = conveyor.enqueue_many(
            [{"task_name": "echo", "payload": {"n": 1}}, {"task_name": "sleep", "delay_ms": 5}]
        )
    assert batch["batchId"] == "b1"
    assert server.last.url.path == "/api/tasks/bulk"
    assert server.bodies()[-1] == {
        "tasks": [
            {"taskName": "echo", "payload": {"n": 1}},
            {"taskName": "sleep", "payload": {}, "delayMs": 5},
        ]
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidRequest),
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (422, InvalidRequest),
        (503, Unavailable),
        (500, ConveyorError),
    ],
)
def test_errors_map_by_status(server: Server, status: int, kind: type[ConveyorError]) -> None:
    body = {"error": "some_error", "detail": "it went wrong", "fields": {"payload.path": "bad"}}
    server.answer = answer(status, body)
    with server.client() as conveyor, pytest.raises(kind) as caught:
        conveyor.get("t1")
    assert type(caught.value) is kind
    error = caught.value
    assert (error.status, error.error, error.detail) == (status, "some_error", "it went wrong")
    assert error.fields == {"payload.path": "bad"}


def test_an_error_without_a_json_body_keeps_its_text(server: Server) -> None:
    server.answer = answer(502, text="upstream went away")
    with server.client() as conveyor, pytest.raises(ConveyorError) as caught:
        conveyor.stats()
    assert (caught.value.status, caught.value.error) == (502, "bad_gateway")
    assert caught.value.detail == "upstream went away"
    assert caught.value.fields == {}


ACTIONS: list[tuple[Callable[[ConveyorClient], Any], str, str, Any]] = [
    (lambda c: c.retry("t1"), "POST", "/api/tasks/t1/retry", None),
    (lambda c: c.cancel("t1", queue="q"), "POST", "/api/tasks/t1/cancel", None),
    (lambda c: c.kill("t1"), "POST", "/api/tasks/t1/kill", None),
    (lambda c: c.duplicate("t1"), "POST", "/api/tasks/t1/duplicate", {}),
    (
        lambda c: c.duplicate("t1", "2026-12-01T00:00:00Z"),
        "POST",
        "/api/tasks/t1/duplicate",
        {"runAt": "2026-12-01T00:00:00Z"},
    ),
    (lambda c: c.bulk_cancel(["a", "b"]), "POST", "/api/tasks/bulk/cancel", {"ids": ["a", "b"]}),
    (lambda c: c.bulk_retry(iter(["a"])), "POST", "/api/tasks/bulk/retry", {"ids": ["a"]}),
    (lambda c: c.stats(), "GET", "/api/stats", None),
    (lambda c: c.pause("emails"), "POST", "/api/queues/emails/pause", None),
    (lambda c: c.resume("emails"), "POST", "/api/queues/emails/resume", None),
    (lambda c: c.delete("t1"), "DELETE", "/api/tasks/t1", None),
]


@pytest.mark.parametrize(("call", "method", "path", "body"), ACTIONS)
def test_each_action_has_its_route(
    server: Server, call: Callable[[ConveyorClient], Any], method: str, path: str, body: Any
) -> None:
    with server.client() as conveyor:
        call(conveyor)
    assert (server.last.method, server.last.url.path) == (method, path)
    assert server.bodies()[-1] == body


def test_delete_answers_nothing_on_204(server: Server) -> None:
    server.answer = lambda request: httpx.Response(204)
    with server.client() as conveyor:
        assert conveyor.delete("t1") is None


def test_list_sends_filters_by_their_wire_names(server: Server) -> None:
    server.answer = answer(200, {"items": [], "total": 0, "nextCursor": None})
    with server.client() as conveyor:
        conveyor.list(
            status="failed",
            task_name="echo",
            created_from=datetime(2026, 1, 1, tzinfo=UTC),
            created_to="2026-02-01",
            limit=50,
        )
    assert dict(server.last.url.params) == {
        "status": "failed",
        "taskName": "echo",
        "from": "2026-01-01T00:00:00.000Z",
        "to": "2026-02-01",
        "limit": "50",
    }


def paged(pages: int) -> Handler:
    """Three tasks a page; each page's cursor names the next one."""

    def page(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("cursor", "0"))
        items = [task(f"p{number}-{n}") for n in range(3)]
        cursor = str(number + 1) if number + 1 < pages else None
        return httpx.Response(200, json={"items": items, "total": 3 * pages, "nextCursor": cursor})

    return page


def test_iterate_follows_the_cursor_to_the_last_page() -> None:
    server = Server(paged(3))
    with server.client() as conveyor:
        ids = [item["id"] for item in conveyor.iterate(status="completed", limit=3)]
    assert len(ids) == 9
    assert (ids[0], ids[-1]) == ("p0-0", "p2-2")
    assert [r.url.params.get("cursor") for r in server.requests] == [None, "1", "2"]
    assert all(r.url.params["status"] == "completed" for r in server.requests)


async def test_async_iterate_follows_the_cursor_too() -> None:
    server = Server(paged(2))
    async with server.aclient() as conveyor:
        ids = [item["id"] async for item in conveyor.iterate()]
    assert len(ids) == 6


class FakeTime:
    """Stands in for the client module's `time`: sleeping only moves the clock on."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(client_module, "time", fake)
    return fake


def holding(clock: FakeTime, statuses: list[str]) -> Server:
    """Honours waitMs: each request holds for its slice, unless its task is terminal."""
    answers = iter(statuses)

    def hold(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status not in client_module.TERMINAL:
            clock.now += int(request.url.params["waitMs"]) / 1000
        return httpx.Response(200, json=task(status=status))

    return Server(hold)


def test_wait_asks_in_slices_of_30_s_until_the_deadline(clock: FakeTime) -> None:
    server = holding(clock, ["active"] * 3)
    with server.client() as conveyor, pytest.raises(TimeoutError, match="still active after 70"):
        conveyor.wait("t1", 70)
    assert [r.url.params["waitMs"] for r in server.requests] == ["30000", "30000", "10000"]
    assert clock.now == 70


def test_wait_returns_the_terminal_task(clock: FakeTime) -> None:
    server = holding(clock, ["waiting", "completed"])
    with server.client() as conveyor:
        assert conveyor.wait("t1", 300)["status"] == "completed"
    assert len(server.requests) == 2
    assert clock.now == 30


def test_wait_with_no_time_asks_once(clock: FakeTime) -> None:
    server = holding(clock, ["active"])
    with server.client() as conveyor, pytest.raises(TimeoutError):
        conveyor.wait("t1", 0)
    assert [r.url.params["waitMs"] for r in server.requests] == ["0"]


def test_wait_keeps_asking_a_server_that_ignores_wait_ms(clock: FakeTime) -> None:
    """Today's server answers at once: the client pauses POLL_S between reads."""
    statuses = iter(["waiting", "active", "completed"])
    server = Server(lambda request: httpx.Response(200, json=task(status=next(statuses))))
    with server.client() as conveyor:
        assert conveyor.wait("t1", 60)["status"] == "completed"
    assert len(server.requests) == 3
    assert clock.now == pytest.approx(2 * client_module.POLL_S)


def test_wait_on_a_server_that_ignores_wait_ms_still_ends(clock: FakeTime) -> None:
    server = Server(lambda request: httpx.Response(200, json=task(status="active")))
    with server.client() as conveyor, pytest.raises(TimeoutError):
        conveyor.wait("t1", 1)
    assert len(server.requests) == pytest.approx(1 / client_module.POLL_S + 1, abs=1)


async def test_async_wait_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "POLL_S", 0.01)
    statuses = iter(["active", "failed"])

    async def answer_later(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        if request.url.path.endswith("/missing"):
            return httpx.Response(404, json={"error": "not_found", "detail": "no task missing"})
        return httpx.Response(200, json=task(status=next(statuses)))

    server = Server(answer_later)  # type: ignore[arg-type]
    async with server.aclient() as conveyor:
        assert (await conveyor.wait("t1", 5))["status"] == "failed"
        with pytest.raises(NotFound, match="no task missing"):
            await conveyor.get("missing")


def test_gather_polls_the_batch_until_every_task_is_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "POLL_S", 0.01)
    rounds = iter([["active", "waiting"], ["completed", "active"], ["completed", "failed"]])

    def batch(request: httpx.Request) -> httpx.Response:
        tasks = [task(f"t{n}", status) for n, status in enumerate(next(rounds))]
        return httpx.Response(200, json={"batchId": "b1", "tasks": tasks})

    server = Server(batch)
    with server.client() as conveyor:
        gathered = conveyor.gather("b1", 5)
    assert [t["status"] for t in gathered["tasks"]] == ["completed", "failed"]
    assert [r.url.path for r in server.requests] == ["/api/batches/b1"] * 3


# The CLI's client commands, on a client built over the same mock transport.


def cli(server: Server, *argv: str) -> int:
    with server.client() as conveyor:
        return main(list(argv), client=conveyor)


def test_cli_enqueue_prints_the_task(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.answer = answer(202, task("t9", priority=3))
    assert cli(server, "enqueue", "echo", "--payload", '{"a": 1}', "--priority", "3") == 0
    assert server.bodies()[-1] == {"taskName": "echo", "payload": {"a": 1}, "priority": 3}
    out = capsys.readouterr().out
    assert "id:       t9" in out
    assert "status:   waiting" in out
    assert 'payload:  {"a": 1}' in out


def test_cli_enqueue_wait_json(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    statuses = iter([("POST", "waiting"), ("GET", "completed")])

    def reply(request: httpx.Request) -> httpx.Response:
        method, status = next(statuses)
        assert request.method == method
        return httpx.Response(202 if method == "POST" else 200, json=task(status=status))

    server.answer = reply
    assert cli(server, "enqueue", "echo", "--wait", "5", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"


def test_cli_enqueue_wait_exits_1_when_the_task_failed(server: Server) -> None:
    server.answer = answer(200, task(status="failed", error={"type": "X", "message": "boom"}))
    assert cli(server, "enqueue", "fail", "--wait", "5") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--payload", "{not json"], "--payload is not valid JSON"),
        (["--payload", "[1, 2]"], "--payload must be a JSON object"),
        (["--payload-file", "/nonexistent/payload.json"], "cannot read /nonexistent"),
        (["--run-at", "tomorrow"], "--run-at is not an ISO 8601 time"),
    ],
)
def test_cli_usage_errors_exit_2_before_any_request(
    server: Server, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli(server, "enqueue", "echo", *argv) == 2
    assert not server.requests
    assert capsys.readouterr().err.startswith(f"conveyor: {message}")


def test_cli_reports_invalid_fields(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    fields = {"payload.path": "climbs above the base folder"}
    body = {"error": "invalid_request", "detail": "the request failed validation", "fields": fields}
    server.answer = answer(422, body)
    assert cli(server, "enqueue", "write_file", "--payload", '{"path": "../x"}') == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "conveyor: the request failed validation",
        "  payload.path: climbs above the base folder",
    ]


def test_cli_cannot_reach_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert cli(Server(refuse), "tasks", "show", "t1") == 1
    err = capsys.readouterr().err
    assert err.startswith("conveyor: cannot reach Conveyor at http://conveyor.test")
    assert "Traceback" not in err


def test_cli_tasks_list_prints_a_table(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    items = [task("01A", "completed", attempts=1), task("01B", "failed", taskName="sendEmail")]
    server.answer = answer(200, {"items": items, "total": 7, "nextCursor": "c2"})
    assert cli(server, "tasks", "list", "--status", "failed", "--limit", "2") == 0
    assert server.last.url.params["limit"] == "2"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "ATTEMPTS", "QUEUE", "CREATED"]
    assert lines[1].split() == [
        "01A",
        "echo",
        "completed",
        "1/3",
        "default",
        "2026-11-23",
        "10:00:00",
    ]
    assert lines[2].split()[:3] == ["01B", "sendEmail", "failed"]
    assert lines[0].index("STATUS") == lines[1].index("completed") == lines[2].index("failed")
    assert lines[-1] == "2 of 7 tasks; next page: --cursor c2"


def test_cli_tasks_show(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    error = {"type": "ValueError", "message": "bad", "traceback": "line 1\nline 2"}
    server.answer = answer(200, task(status="failed", error=error, workerId="w1"))
    assert cli(server, "tasks", "show", "t1", "--queue", "q") == 0
    assert server.last.url.params["queue"] == "q"
    out = capsys.readouterr().out
    assert "error:    ValueError: bad" in out
    assert "worker:   w1" in out
    assert out.endswith("traceback:\n  line 1\n  line 2\n")


def test_cli_actions_run_every_id_and_report_each_failure(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    def cancel(request: httpx.Request) -> httpx.Response:
        task_id = request.url.path.split("/")[3]
        if task_id == "gone":
            return httpx.Response(404, json={"error": "not_found", "detail": "no task gone"})
        return httpx.Response(200, json=task(task_id, "cancelled"))

    server.answer = cancel
    assert cli(server, "tasks", "cancel", "a1", "gone", "b2") == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["a1  cancelled", "b2  cancelled"]
    assert captured.err == "conveyor: gone: no task gone\n"


def test_cli_delete_json(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.answer = lambda request: httpx.Response(204)
    assert cli(server, "tasks", "delete", "t1", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [{"id": "t1", "status": "removed"}]


def test_cli_stats_table(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    stats = {
        "waiting": 3,
        "active": 1,
        "completed": 10,
        "queues": {"default": {"waiting": 3, "active": 1, "completed": 10, "paused": True}},
        "throughput": {"lastMinute": 4, "lastHour": 40},
    }
    server.answer = answer(200, stats)
    assert cli(server, "stats") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "QUEUE",
        "WAITING",
        "ACTIVE",
        "DELAYED",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "PAUSED",
    ]
    assert lines[1].split() == ["default", "3", "1", "0", "10", "0", "0", "yes"]
    assert lines[2].split() == ["(all)", "3", "1", "0", "10", "0", "0"]
    assert lines[3] == "throughput: 4 last minute, 40 last hour"


def test_cli_unauthorized_hints_at_the_key(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    server.answer = answer(401, {"error": "unauthorized", "detail": "an API key is required"})
    assert cli(server, "stats") == 1
    assert "--api-key" in capsys.readouterr().err


def test_cli_usage_errors_from_argparse_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["enqueue", "echo", "--delay-ms", "5", "--run-at", "2026-01-01T00:00:00Z"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_client_module_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, interfaces.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('litestar', 'redis', 'pydantic', 'domain', 'application', 'infrastructure')"
        " or m.startswith('interfaces.http')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_cli_a_malformed_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--url", "http://[::1"]) == 2
    assert capsys.readouterr().err.startswith("conveyor: invalid URL")
