"""RecordAudit and ReadAudit: write an operator's action to the audit log, read it back."""

from __future__ import annotations

from typing import Any

from application.clock import Clock
from domain.audit import AuditEntry
from domain.ports import IAuditLog


class RecordAudit:
    """Record that `actor` did `action` to `target` (a task id or a queue name), now.

    Call it once the action has succeeded, so the log never claims what did not happen:
    `await record_audit.execute(principal.name, "retry", task_id, {"queue": queue})`.
    """

    def __init__(self, log: IAuditLog, clock: Clock) -> None:
        self._log = log
        self._clock = clock

    async def execute(
        self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        entry = AuditEntry(self._clock(), actor, action, target, dict(detail or {}))
        await self._log.record(entry)
        return entry


class ReadAudit:
    """A page of the audit log, newest first, and the cursor of the next (older) page;
    with a `target`, of that task's (or queue's, or schedule's) entries only."""

    def __init__(self, log: IAuditLog) -> None:
        self._log = log

    async def execute(
        self, limit: int, before: str | None = None, target: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        return await self._log.read(limit, before, target)
