"""The audit trail: who did what to which task or queue, and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AuditAction(StrEnum):
    """The operator actions worth a record; a StrEnum, so plain strings compare equal."""

    RETRY = "retry"
    CANCEL = "cancel"
    KILL = "kill"
    DELETE = "delete"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action: `at` in ms since the epoch, `actor` an API key's name, `target` a task id
    or a queue name, `detail` whatever else explains it (queue, outcome, counts)."""

    at: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
