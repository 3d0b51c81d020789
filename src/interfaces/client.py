"""A typed HTTP client for producers: ConveyorClient (blocking) and AsyncConveyorClient."""

from __future__ import annotations

import asyncio
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Required, Self, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:3000"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
PENDING = ("waiting", "active", "delayed")
WAIT_SLICE_S = 30.0  # the longest the server holds one `?waitMs=` request
POLL_S = 0.2  # pause between reads when the server answers without waiting


class ConveyorError(Exception):
    """Any answer outside 2xx, read from the uniform body `{error, detail, fields?}`."""

    def __init__(
        self, status: int, error: str, detail: str, fields: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, error, detail, fields)
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = dict(fields or {})

    def __str__(self) -> str:
        return f"{self.detail} ({self.status} {self.error})"


class NotFound(ConveyorError):
    """404: no such task, batch or route."""


class Conflict(ConveyorError):
    """409: the same id with another request, or a transition the task's state forbids."""


class InvalidRequest(ConveyorError):
    """400 or 422: `fields` names each field at fault."""


class Unauthorized(ConveyorError):
    """401 (no or unknown API key) or 403 (a key whose role may not do this)."""


class TooManyRequests(ConveyorError):
    """429: the queue is full (error `queue_full`: nothing was stored), or the API process
    serves all the event streams it may. `retry_after_s`: the server's `Retry-After`."""

    retry_after_s: float | None = None


class Unavailable(ConveyorError):
    """503: the server cannot reach Redis, or Redis refuses writes (out of memory);
    nothing was stored, and retrying shortly is safe."""


_ERRORS: dict[int, type[ConveyorError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: TooManyRequests,
    503: Unavailable,
}


class EnqueueOptions(TypedDict, total=False):
    delay_ms: int | None
    run_at: datetime | str | None
    priority: int | None
    task_id: str | None
    attempts: int | None
    backoff: int | Mapping[str, Any] | None
    timeout_ms: int | None
    queue: str | None
    group: str | None


class TaskSpec(EnqueueOptions, total=False):
    """One task of `enqueue_many`: enqueue()'s arguments by name."""

    task_name: Required[str]
    payload: Mapping[str, Any]


class ListFilters(TypedDict, total=False):
    status: str | None
    task_name: str | None
    queue: str | None
    search: str | None
    created_from: datetime | str | None
    created_to: datetime | str | None
    limit: int | None


_WIRE_NAMES = {"task_id": "customJobId", "created_from": "from", "created_to": "to"}
_MOMENTS = {"run_at", "created_from", "created_to"}


def _iso(moment: datetime | str | None) -> str | None:
    """A naive datetime is local time, as `datetime.astimezone` takes it."""
    if moment is None or isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _wire(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Keyword arguments, None left out, to the wire's camelCase names and ISO times."""
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise TypeError(f"unexpected arguments: {', '.join(unknown)}")
    return {
        _WIRE_NAMES.get(key) or _camel(key): _iso(value) if key in _MOMENTS else value
        for key, value in values.items()
        if value is not None
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _task_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    body = _wire(spec, TaskSpec.__required_keys__ | TaskSpec.__optional_keys__)
    body["payload"] = dict(body.get("payload", {}))
    return body


def _task_path(task_id: str, action: str = "") -> str:
    path = f"/api/tasks/{quote(task_id, safe='')}"
    return f"{path}/{action}" if action else path


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    hold_s: float = 0.0  # how long the server may hold the request before answering


@dataclass(frozen=True)
class _Pause:
    seconds: float


T = TypeVar("T")
# A call written once without I/O: it yields what to send (or how long to pause), receives
# the parsed answer, and returns its result. Each client drives plans with its own I/O.
_Plan = Generator[_Call | _Pause, Any, T]


def _one(call: _Call) -> _Plan[Any]:
    answer = yield call
    return answer


def _wait_plan(task_id: str, timeout_s: float, queue: str | None) -> _Plan[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        slice_s = min(max(deadline - time.monotonic(), 0.0), WAIT_SLICE_S)
        asked = time.monotonic()
        params = {"queue": queue, "waitMs": int(slice_s * 1000)}
        task = yield _Call("GET", _task_path(task_id), params, hold_s=slice_s)
        if task["status"] in TERMINAL:
            return task
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"task {task_id} is still {task['status']} after {timeout_s:g} s")
        if time.monotonic() - asked < slice_s / 2:  # answered at once: waitMs is not honoured
            yield _Pause(min(POLL_S, left))


def _batch_done(batch: Mapping[str, Any]) -> bool:
    tasks = batch.get("tasks")
    if isinstance(tasks, list):
        return all(task.get("status") in TERMINAL for task in tasks)
    counts = batch.get("counts", batch)
    return not any(counts.get(status) for status in PENDING)


def _gather_plan(batch_id: str, timeout_s: float) -> _Plan[Any]:
    deadline = time.monotonic() + timeout_s
    pause = POLL_S / 4
    while True:
        batch = yield _Call("GET", f"/api/batches/{quote(batch_id, safe='')}")
        if _batch_done(batch):
            return batch
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"batch {batch_id} is unfinished after {timeout_s:g} s")
        yield _Pause(min(pause, left))
        pause = min(pause * 2, 1.0)


def _connection(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get("CONVEYOR_URL") or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get("CONVEYOR_API_KEY")
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def _request(http: httpx.Client | httpx.AsyncClient, call: _Call, timeout: float) -> httpx.Request:
    params = {key: value for key, value in call.params.items() if value is not None}
    limits = httpx.Timeout(timeout, read=timeout + call.hold_s)
    return http.build_request(call.method, call.path, params=params, json=call.body, timeout=limits)


def _parse(response: httpx.Response) -> Any:
    if not response.is_success:
        raise _error(response)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        detail = f"the answer is not JSON: {response.text[:200]}"
        raise ConveyorError(response.status_code, "bad_response", detail) from None


def _error(response: httpx.Response) -> ConveyorError:
    error = _error_of(response)
    if isinstance(error, TooManyRequests):
        error.retry_after_s = _seconds(response.headers.get("retry-after"))
    return error


def _seconds(value: str | None) -> float | None:
    """A Retry-After of delay-seconds (what Conveyor sends); None for anything else."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_of(response: httpx.Response) -> ConveyorError:
    kind = _ERRORS.get(response.status_code, ConveyorError)
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        fields = body.get("fields")
        named = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else None
        return kind(response.status_code, str(body.get("error", "")), str(body["detail"]), named)
    phrase = response.reason_phrase or "error"
    error = phrase.lower().replace(" ", "_")
    return kind(response.status_code, error, response.text.strip()[:500] or phrase)


Doc = TypeVar("Doc")  # a JSON object, or an awaitable of one
Done = TypeVar("Done")  # nothing, or an awaitable of nothing


class _Api(ABC, Generic[Doc, Done]):
    """Conveyor's calls, written once; a subclass runs their plans with its own I/O."""

    @abstractmethod
    def _run(self, plan: _Plan[Any]) -> Doc: ...

    @abstractmethod
    def _run_quietly(self, plan: _Plan[Any]) -> Done: ...

    def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Doc:
        return self._run(_one(_Call(method, path, params or {}, body)))

    def enqueue(
        self, task_name: str, payload: Mapping[str, Any], **options: Unpack[EnqueueOptions]
    ) -> Doc:
        """202 creates the task; a repeated `task_id` with the same request returns it."""
        body = _task_body({"task_name": task_name, "payload": payload, **options})
        return self._call("POST", "/api/tasks", body)

    def enqueue_many(self, tasks: Iterable[TaskSpec]) -> Doc:
        """One round trip; answers `{batchId, tasks}`."""
        body = {"tasks": [_task_body(spec) for spec in tasks]}
        return self._call("POST", "/api/tasks/bulk", body)

    def get(self, task_id: str, queue: str | None = None) -> Doc:
        return self._call("GET", _task_path(task_id), params={"queue": queue})

    def wait(self, task_id: str, timeout_s: float, *, queue: str | None = None) -> Doc:
        """The task once completed, failed or cancelled; TimeoutError after `timeout_s`.
        Asks with `?waitMs=` in slices of at most 30 s. A server that answers at once
        (one that ignores waitMs) is asked again every POLL_S seconds until the deadline."""
        return self._run(_wait_plan(task_id, timeout_s, queue))

    def gather(self, batch_id: str, timeout_s: float) -> Doc:
        """The batch once every task in it is terminal; TimeoutError after `timeout_s`."""
        return self._run(_gather_plan(batch_id, timeout_s))

    def list(
        self, *, cursor: str | None = None, page: int | None = None, **filters: Unpack[ListFilters]
    ) -> Doc:
        """One page, `{items, total, nextCursor}`, newest first."""
        params = {**_wire(filters, ListFilters.__optional_keys__), "cursor": cursor, "page": page}
        return self._call("GET", "/api/tasks", params=params)

    def retry(self, task_id: str, *, queue: str | None = None) -> Doc:
        return self._call("POST", _task_path(task_id, "retry"), params={"queue": queue})

    def cancel(self, task_id: str, *, queue: str | None = None) -> Doc:
        return self._call("POST", _task_path(task_id, "cancel"), params={"queue": queue})

    def kill(self, task_id: str, *, queue: str | None = None) -> Doc:
        return self._call("POST", _task_path(task_id, "kill"), params={"queue": queue})

    def duplicate(
        self, task_id: str, run_at: datetime | str | None = None, *, queue: str | None = None
    ) -> Doc:
        body = _wire({"run_at": run_at}, ["run_at"])
        return self._call("POST", _task_path(task_id, "duplicate"), body, {"queue": queue})

    def delete(self, task_id: str, *, queue: str | None = None) -> Done:
        call = _Call("DELETE", _task_path(task_id), {"queue": queue})
        return self._run_quietly(_one(call))

    def bulk_cancel(self, ids: Iterable[str]) -> Doc:
        """A per-id outcome; unknown ids are `not_found`, not an error."""
        return self._call("POST", "/api/tasks/bulk/cancel", {"ids": [*ids]})

    def bulk_retry(self, ids: Iterable[str]) -> Doc:
        return self._call("POST", "/api/tasks/bulk/retry", {"ids": [*ids]})

    def stats(self) -> Doc:
        return self._call("GET", "/api/stats")

    def pause(self, queue: str) -> Done:
        return self._run_quietly(_one(_Call("POST", f"/api/queues/{quote(queue)}/pause")))

    def resume(self, queue: str) -> Done:
        return self._run_quietly(_one(_Call("POST", f"/api/queues/{quote(queue)}/resume")))

    def schedules(self) -> Doc:
        """`{schedules: [...]}`, each with its next fire times (`upcoming`)."""
        return self._call("GET", "/api/schedules")

    def schedule(self, name: str) -> Doc:
        return self._call("GET", _schedule_path(name))

    def create_schedule(self, definition: Mapping[str, Any]) -> Doc:
        """`definition` in the wire's shape: `{name, cron or everyMs, timezone?, task:
        {taskName, payload, ...}, missedPolicy?, catchUpLimit?, overlapPolicy?}`."""
        return self._call("POST", "/api/schedules", dict(definition))

    def update_schedule(self, name: str, definition: Mapping[str, Any]) -> Doc:
        """Replace the definition (no `name`); the schedule's record is kept."""
        return self._call("PUT", _schedule_path(name), dict(definition))

    def pause_schedule(self, name: str) -> Doc:
        return self._call("POST", _schedule_path(name, "pause"))

    def resume_schedule(self, name: str) -> Doc:
        return self._call("POST", _schedule_path(name, "resume"))

    def trigger_schedule(self, name: str) -> Doc:
        """Enqueue the schedule's task now; answers the task."""
        return self._call("POST", _schedule_path(name, "trigger"))

    def delete_schedule(self, name: str) -> Done:
        return self._run_quietly(_one(_Call("DELETE", _schedule_path(name))))


def _schedule_path(name: str, action: str | None = None) -> str:
    path = f"/api/schedules/{quote(name, safe='')}"
    return f"{path}/{action}" if action else path


class ConveyorClient(_Api[dict[str, Any], None]):
    """Blocking client. URL and key default to CONVEYOR_URL and CONVEYOR_API_KEY; network
    failures raise httpx.TransportError, answers outside 2xx a ConveyorError."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, headers = _connection(url, api_key)
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=headers, transport=transport)

    def iterate(self, **filters: Unpack[ListFilters]) -> Iterator[dict[str, Any]]:
        """Every task that matches, page after page, following `nextCursor`."""
        cursor: str | None = None
        while True:
            page = self.list(cursor=cursor, **filters)
            yield from page["items"]
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, plan: _Plan[Any]) -> dict[str, Any]:
        answer: Any = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as finished:
                result: dict[str, Any] = finished.value
                return result
            answer = self._perform(step)

    def _run_quietly(self, plan: _Plan[Any]) -> None:
        self._run(plan)

    def _perform(self, step: _Call | _Pause) -> Any:
        if isinstance(step, _Pause):
            time.sleep(step.seconds)
            return None
        return _parse(self._http.send(_request(self._http, step, self._timeout)))


Awaited = Coroutine[Any, Any, T]


class AsyncConveyorClient(_Api[Awaited[dict[str, Any]], Awaited[None]]):
    """ConveyorClient's methods, awaitable; `iterate` is an async generator."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, headers = _connection(url, api_key)
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, transport=transport)

    async def iterate(self, **filters: Unpack[ListFilters]) -> AsyncIterator[dict[str, Any]]:
        """Every task that matches, page after page, following `nextCursor`."""
        cursor: str | None = None
        while True:
            page = await self.list(cursor=cursor, **filters)
            for item in page["items"]:
                yield item
            cursor = page.get("nextCursor")
            if not cursor:
                return

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, plan: _Plan[Any]) -> dict[str, Any]:
        answer: Any = None
        while True:
            try:
                step = plan.send(answer)
            except StopIteration as finished:
                result: dict[str, Any] = finished.value
                return result
            answer = await self._perform(step)

    async def _run_quietly(self, plan: _Plan[Any]) -> None:
        await self._run(plan)

    async def _perform(self, step: _Call | _Pause) -> Any:
        if isinstance(step, _Pause):
            await asyncio.sleep(step.seconds)
            return None
        return _parse(await self._http.send(_request(self._http, step, self._timeout)))
