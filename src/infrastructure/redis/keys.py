"""Every Redis key Conveyor uses, built in one place; a queue's keys share one hash tag.

A queue's tag is its name, `{<queue>}`. Keys that belong to no queue carry a tag that no
queue name can be (queue names are `[A-Za-z0-9._:-]`, so `#` never occurs in one): a queue
named `templates` must not share the templates' counter."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from domain.task import TaskStatus

ROOT = "conveyor"


def task_owner(task_id: str) -> str:
    """The id index: which queue holds task `task_id` (or held it, for as long as its id
    stays reserved). No hash tag: on a Cluster the entries spread over every slot."""
    return f"{ROOT}:id:{task_id}"


@dataclass(frozen=True)
class QueueKeys:
    """Keys of one queue, all in the hash slot of `{<queue>}` so one script can touch them."""

    queue: str

    @cached_property
    def prefix(self) -> str:
        return f"{ROOT}:{{{self.queue}}}:"

    @cached_property
    def task_prefix(self) -> str:
        return f"{self.prefix}task:"

    def task(self, task_id: str) -> str:
        return f"{self.task_prefix}{task_id}"

    def removed(self, task_id: str) -> str:
        return f"{self.prefix}removed:{task_id}"

    def state(self, status: TaskStatus) -> str:
        """The sorted set that indexes tasks in `status`."""
        return f"{self.prefix}{_STATE_SETS[status]}"

    @cached_property
    def wait(self) -> str:
        return self.state(TaskStatus.WAITING)

    @cached_property
    def delayed(self) -> str:
        return self.state(TaskStatus.DELAYED)

    @cached_property
    def active(self) -> str:
        return self.state(TaskStatus.ACTIVE)

    @cached_property
    def marker(self) -> str:
        return f"{self.prefix}marker"

    @cached_property
    def meta(self) -> str:
        return f"{self.prefix}meta"

    @cached_property
    def fence(self) -> str:
        return f"{self.prefix}fence"

    @cached_property
    def seq(self) -> str:
        return f"{self.prefix}seq"

    @cached_property
    def last_ix(self) -> str:
        """The last creation order (`ix`) given in the queue: the next is above it."""
        return f"{self.prefix}last_ix"

    @cached_property
    def state_sets(self) -> list[str]:
        return [self.state(status) for status in TaskStatus if status is not TaskStatus.ACTIVE]

    # The keys below are also built inside the Lua scripts (lua/_lib.lua) from `prefix`,
    # for tasks a script finds itself; keep both in step.

    def index(self, status: TaskStatus, name: str) -> str:
        """Tasks of one status and name, scored by creation order (the `ix` field)."""
        return f"{self.prefix}idx:{status.value}:{name}"

    @cached_property
    def ids(self) -> str:
        return f"{self.prefix}ids"

    def token(self, token: str) -> str:
        return f"{self.prefix}tok:{token}"

    @cached_property
    def names(self) -> str:
        return f"{self.prefix}names"

    def finished(self, minute: int) -> str:
        """How many tasks finished in that minute (ms // 60000); kept two hours."""
        return f"{self.prefix}finished:{minute}"

    def durations(self, name: str) -> str:
        return f"{self.prefix}durations:{name}"

    # Pub/sub channels are server-wide, not per database: each carries the database number,
    # so deployments on two databases of one Redis server never hear each other.

    def events(self, db: int) -> str:
        """Pub/sub channel: every transition of the queue's tasks."""
        return f"{self.prefix}events:{db}"

    def control(self, db: int) -> str:
        """Pub/sub channel: operators' stop requests for running handlers."""
        return f"{self.prefix}control:{db}"


@lru_cache(maxsize=1024)
def keys_of(queue: str) -> QueueKeys:
    return QueueKeys(queue)


def events_pattern(db: int) -> str:
    """Every queue's events channel on database `db`."""
    return f"{ROOT}:*:events:{db}"


def batch(batch_id: str) -> str:
    return f"{ROOT}:batch:{batch_id}"


_STATE_SETS = {
    TaskStatus.WAITING: "wait",
    TaskStatus.DELAYED: "delayed",
    TaskStatus.ACTIVE: "active",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}

# Task templates live outside any queue, in a slot of their own (one MULTI writes them):
# a hash id -> JSON, the id counter, and an index sorted by creation time.
TEMPLATES = f"{ROOT}:{{#templates}}:all"
TEMPLATES_SEQ = f"{ROOT}:{{#templates}}:seq"
TEMPLATES_BY_CREATED = f"{ROOT}:{{#templates}}:by_created"

# The audit log: one capped stream, in a slot of its own.
AUDIT_LOG = f"{ROOT}:{{#audit}}:log"


class _WorkerKeys:
    """Live workers: one slot of their own."""

    info = f"{ROOT}:{{#workers}}:info"
    expiry = f"{ROOT}:{{#workers}}:expiry"


WORKERS = _WorkerKeys()
