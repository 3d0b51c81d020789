"""Tasks to and from Redis hashes, through pydantic (never pickle)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_json

from domain.task import Attempt, Backoff, Task, TaskError, TaskStatus

_TASK = TypeAdapter(Task)
_ANY = TypeAdapter(Any)
_ERROR = TypeAdapter(TaskError)

_TASK_FIELDS = frozenset(field.name for field in dataclasses.fields(Task))
_REQUIRED = object()
# The structured fields whose own fields have defaults too: left out within them as well.
_NESTED: dict[str, TypeAdapter[Any]] = {
    "backoff": TypeAdapter(Backoff),
    "error": _ERROR,
    "history": TypeAdapter(tuple[Attempt, ...]),
}
# Each field with its default, in the order of the dataclass; _REQUIRED where there is none.
_DEFAULTS = tuple(
    (
        field.name,
        field.default
        if field.default is not dataclasses.MISSING
        else field.default_factory()
        if field.default_factory is not dataclasses.MISSING
        else _REQUIRED,
    )
    for field in dataclasses.fields(Task)
)
JSON_FIELDS = frozenset({"payload", "backoff", "result", "error", "progress", "history"})
# What a settle may change; the rest is written once, at enqueue (history is appended).
MUTABLE_FIELDS = (
    "status",
    "attempts",
    "stalls",
    "run_at",
    "finished_at",
    "result",
    "error",
    "worker_id",
    "history",
)


# An encoder of our own: json.dumps builds one per call once a library has wrapped it (pottery
# does, at import), and a bulk enqueue fingerprints thousands of payloads.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def fingerprint(task: Task) -> str:
    """What makes two enqueues of one id "the same request": name, payload and creator.

    The creator belongs to it so that another key's identical request is a conflict like
    any other: whether a guessed payload was right must not show in the answer."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (task.name, canonical_json(task.payload), task.created_by or ""):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def encode(task: Task) -> dict[str, str]:
    """The fields that differ from the Task's defaults, as hash values (JSON for the
    structured ones); `decode` fills the rest in. The status is always there: the scripts
    read it. What pydantic's dump with `exclude_defaults` gives, a third of its cost (a
    bulk enqueue encodes thousands of tasks)."""
    fields: dict[str, str] = {}
    for name, default in _DEFAULTS:
        value = getattr(task, name)
        if default is _REQUIRED or (value is not default and value != default):
            if name in _NESTED:
                fields[name] = (
                    _NESTED[name]
                    .dump_json(value, exclude_defaults=True, exclude_none=True)
                    .decode()
                )
            elif name in JSON_FIELDS:
                fields[name] = to_json(value).decode()
            else:
                fields[name] = str(value)
    fields["status"] = task.status.value
    return fields


def encode_changes(task: Task) -> tuple[dict[str, str], list[str]]:
    """The mutable fields of a settled task: those to set, and those now empty."""
    present: dict[str, str] = {}
    absent: list[str] = []
    for name in MUTABLE_FIELDS:
        value = getattr(task, name)
        if value is None:
            absent.append(name)
        elif name == "error":
            present[name] = _ERROR.dump_json(value).decode()
        elif name in ("result", "history"):
            present[name] = _ANY.dump_json(value).decode()
        else:
            present[name] = str(value)
    return present, absent


def encode_outcome(task: Task, previous: Task | None = None, lock: str | None = None) -> str:
    """A task's new state for the settle, recover and change scripts (settle_task.lua):
    `previous` is the task as the caller read it (its status and token are checked);
    without it, the task's own token is (a worker's outcome of its active task)."""
    present, absent = encode_changes(task)
    last = task.history[-1] if task.history else None
    document: dict[str, Any] = {
        "id": task.id,
        "fence": str((previous or task).fence),
        "status": task.status.value,
        "score": task.run_at if task.status is TaskStatus.DELAYED else task.finished_at or 0,
        "duration": last.finished_at - last.started_at if last else -1,
        "set": present,
        "unset": [*absent, "cancel_requested"],  # an answered cancel request is spent
    }
    if previous is not None:
        document["from"] = previous.status.value
    if lock is not None:
        document["lock"] = lock
    return encode_json(document)


def encode_json(value: Any) -> str:
    return to_json(value).decode()


def decode(fields: Mapping[str, str] | list[str]) -> Task:
    """A task from HGETALL's reply (a mapping, or the flat list a script returns)."""
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    data: dict[str, Any] = {
        name: json.loads(value) if name in JSON_FIELDS else value
        for name, value in fields.items()
        if name in _TASK_FIELDS  # the hash also keeps index bookkeeping (ix, tokens, ...)
    }
    return _TASK.validate_python(data)
