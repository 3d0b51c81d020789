"""Task templates: saved task definitions that can be turned into tasks later."""

from __future__ import annotations

from dataclasses import dataclass

from domain.task import JSONObject


@dataclass(frozen=True, slots=True)
class Template:
    """A named task type and payload; `created_at` in milliseconds since the epoch."""

    id: str
    name: str
    task_type: str
    data: JSONObject
    created_at: int
