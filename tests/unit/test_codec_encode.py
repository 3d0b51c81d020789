"""The hash fields of a task are what pydantic's dump with `exclude_defaults` gives (the
JSON ones compared as values: pydantic writes a float field's 1 as 1.0)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from pydantic import TypeAdapter
from pydantic_core import to_json

from domain.task import Task
from infrastructure.redis import codec
from tests.unit.test_wire import TASKS

PYDANTIC = TypeAdapter(Task)


def dumped_by_pydantic(task: Task) -> dict[str, str]:
    dumped: dict[str, Any] = PYDANTIC.dump_python(
        task, mode="json", exclude_none=True, exclude_defaults=True
    )
    dumped["status"] = task.status.value
    return {
        name: to_json(value).decode() if name in codec.JSON_FIELDS else str(value)
        for name, value in dumped.items()
    }


@given(TASKS)
def test_encode_is_pydantic_s_dump_without_defaults(task: Task) -> None:
    assert as_values(codec.encode(task)) == as_values(dumped_by_pydantic(task))


def as_values(fields: dict[str, str]) -> dict[str, Any]:
    return {
        name: json.loads(text) if name in codec.JSON_FIELDS else text
        for name, text in fields.items()
    }


@given(TASKS)
def test_what_encode_writes_decodes_to_the_same_task(task: Task) -> None:
    assert codec.decode(codec.encode(task)) == task
