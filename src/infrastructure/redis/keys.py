"""Every Redis key Conveyor uses, built in one place; a queue's keys share one hash tag.

A queue's tag is its name, `{<queue>}`. Keys that belong to no queue carry a tag that no
queue name can be (queue names are `[A-Za-z0-9._:-]`, so `#` never occurs in one): a queue
named `templates` must not share the templates' counter.

`LAYOUT` names the parts of a queue's keys once: `QueueKeys` builds them from it, and the
Lua scripts get the same table (`K`) above their code, for the keys they find themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from domain.task import TaskStatus

ROOT = "conveyor"
LOCK_PREFIX = "lock"  # a task's lock is `lock:task:<id>` (pottery joins prefix and key)

# A queue's key = its prefix `conveyor:{<queue>}:` + one of these (+ an id or a name).
LAYOUT: dict[str, str] = {
    "task": "task:",  # + id: the task's hash
    "removed": "removed:",  # + id: a removed task's fingerprint, reserving its id
    "index": "idx:",  # + status:name: tasks of one status and name, by creation order
    "ids": "ids",  # every task id, for prefix search (all scores 0)
    "token": "tok:",  # + word: tasks whose name or payload has the word
    "names": "names",  # every task name the queue has seen
    "finished": "finished:",  # + minute: how many tasks finished in that minute
    "failures": "failures:",  # + minute: how many of those failed
    "durations": "durations:",  # + name: recent durations of completed tasks
    "effect": "fx:",  # + name: a key that handlers write with fenced writes
    "marker": "marker",  # what idle workers block on
    "meta": "meta",  # paused = 1 while paused; limited = 1 with limits, grouped = 1 with groups
    "limits": "limits",  # the queue's flow limits (rate, concurrency; per task type too)
    "starts": "starts:",  # + queue or type:name: recent starts, the rate's sliding window
    "parked": "parked:",  # + name: waiting tasks of a type at its limit, by wait score
    "parked_names": "parked_names",  # the task types that have parked tasks
    "group": "grp:",  # + group: its waiting tasks behind its head, by wait score
    "group_heads": "gheads",  # group -> the id of its task in the wait set (its head)
    "group_active": "gact:",  # + group: its running tasks, by start time
    "group_blocked": "gblocked",  # groups held by their rate, by when its window opens
    "grouped": "grouped",  # how many waiting tasks are behind their groups' heads
    "fence": "fence",  # one strictly increasing token per claim
    "seq": "seq",  # FIFO order among equal priorities
    "last_ix": "last_ix",  # the last creation order given in the queue
    "events": "events:",  # + db: pub/sub channel of every transition
    "control": "control:",  # + db: pub/sub channel of operators' stop requests
    TaskStatus.WAITING: "wait",  # the state sets: waiting by priority and FIFO order,
    TaskStatus.DELAYED: "delayed",  # delayed by due time, active by lease deadline,
    TaskStatus.ACTIVE: "active",  # the finished ones by finish time
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}


def task_owner(task_id: str) -> str:
    """The id index: which queue holds task `task_id` (or held it, for as long as its id
    stays reserved). No hash tag: on a Cluster the entries spread over every slot."""
    return f"{ROOT}:id:{task_id}"


def task_lock(task_id: str) -> str:
    """`lock:task:<id>`, the task's Redlock key."""
    return f"{LOCK_PREFIX}:task:{task_id}"


@dataclass(frozen=True)
class QueueKeys:
    """Keys of one queue, all in the hash slot of `{<queue>}` so one script can touch them."""

    queue: str

    @cached_property
    def prefix(self) -> str:
        return f"{ROOT}:{{{self.queue}}}:"

    def _key(self, part: str, suffix: str = "") -> str:
        return f"{self.prefix}{LAYOUT[part]}{suffix}"

    def task(self, task_id: str) -> str:
        return self._key("task", task_id)

    def removed(self, task_id: str) -> str:
        return self._key("removed", task_id)

    def state(self, status: TaskStatus) -> str:
        """The sorted set that indexes tasks in `status`."""
        return self._key(status)

    def index(self, status: TaskStatus, name: str) -> str:
        """Tasks of one status and name, scored by creation order (the `ix` field)."""
        return self._key("index", f"{status.value}:{name}")

    def token(self, token: str) -> str:
        return self._key("token", token)

    def finished(self, minute: int) -> str:
        """How many tasks finished in that minute (ms // 60000); kept two hours."""
        return self._key("finished", str(minute))

    def failures(self, minute: int) -> str:
        """How many tasks failed in that minute (a part of `finished`); kept two hours."""
        return self._key("failures", str(minute))

    def durations(self, name: str) -> str:
        return self._key("durations", name)

    def effect(self, name: str) -> str:
        """A key of the handlers' own, written by `ctx.fenced`: in the queue's slot, so one
        script checks the task's token and writes it, on a Cluster too."""
        return self._key("effect", name)

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
        return self._key("marker")

    @cached_property
    def meta(self) -> str:
        return self._key("meta")

    @cached_property
    def limits(self) -> str:
        return self._key("limits")

    def starts(self, scope: str) -> str:
        """Recent starts of the queue (`queue`), a task type (`type:<name>`) or a group
        (`group:<name>`)."""
        return self._key("starts", scope)

    def parked(self, name: str) -> str:
        return self._key("parked", name)

    @cached_property
    def parked_names(self) -> str:
        return self._key("parked_names")

    def group(self, group: str) -> str:
        """A group's waiting tasks behind its head (see _lib.lua, groups)."""
        return self._key("group", group)

    def group_active(self, group: str) -> str:
        return self._key("group_active", group)

    @cached_property
    def group_heads(self) -> str:
        return self._key("group_heads")

    @cached_property
    def group_blocked(self) -> str:
        return self._key("group_blocked")

    @cached_property
    def grouped(self) -> str:
        return self._key("grouped")

    @cached_property
    def fence(self) -> str:
        return self._key("fence")

    @cached_property
    def seq(self) -> str:
        return self._key("seq")

    @cached_property
    def last_ix(self) -> str:
        """The last creation order (`ix`) given in the queue: the next is above it."""
        return self._key("last_ix")

    @cached_property
    def ids(self) -> str:
        return self._key("ids")

    @cached_property
    def names(self) -> str:
        return self._key("names")

    @cached_property
    def state_sets(self) -> list[str]:
        return [self.state(status) for status in TaskStatus if status is not TaskStatus.ACTIVE]

    # Pub/sub channels are server-wide, not per database: each carries the database number,
    # so deployments on two databases of one Redis server never hear each other.

    def events(self, db: int) -> str:
        """Pub/sub channel: every transition of the queue's tasks."""
        return self._key("events", str(db))

    def control(self, db: int) -> str:
        """Pub/sub channel: operators' stop requests for running handlers."""
        return self._key("control", str(db))


@lru_cache(maxsize=1024)
def keys_of(queue: str) -> QueueKeys:
    return QueueKeys(queue)


def effect_key(queue: str, name: str) -> str:
    return keys_of(queue).effect(name)


def events_pattern(db: int) -> str:
    """Every queue's events channel on database `db`."""
    return f"{ROOT}:*:{LAYOUT['events']}{db}"


def batch(batch_id: str) -> str:
    return f"{ROOT}:batch:{batch_id}"


def lua_layout() -> str:
    """`LAYOUT` as a Lua table literal, for the scripts' header."""
    entries = ", ".join(f"['{part!s}'] = '{value}'" for part, value in LAYOUT.items())
    return f"local K = {{{entries}}}\n"


# Task templates live outside any queue, in a slot of their own (one MULTI writes them):
# a hash id -> JSON, the id counter, and an index sorted by creation time.
TEMPLATES = f"{ROOT}:{{#templates}}:all"
TEMPLATES_SEQ = f"{ROOT}:{{#templates}}:seq"
TEMPLATES_BY_CREATED = f"{ROOT}:{{#templates}}:by_created"

# The audit log: one capped stream, in a slot of its own, and beside it a small capped
# stream per target (a task id, queue or schedule name), so one MULTI writes both.
AUDIT_LOG = f"{ROOT}:{{#audit}}:log"


def audit_of(target: str) -> str:
    """The latest audit entries of one target."""
    return f"{ROOT}:{{#audit}}:target:{target}"


class _WorkerKeys:
    """Live workers: one slot of their own."""

    info = f"{ROOT}:{{#workers}}:info"
    expiry = f"{ROOT}:{{#workers}}:expiry"
    metrics = f"{ROOT}:{{#workers}}:metrics"  # field -> the workers' summed increments


WORKERS = _WorkerKeys()


class _ScheduleKeys:
    """Schedules: one slot of their own, so one script checks and moves a schedule."""

    prefix = f"{ROOT}:{{#schedules}}:"
    due = f"{prefix}due"  # name -> next slot (ms), active schedules only
    names = f"{prefix}names"  # name -> creation time, every schedule

    def of(self, name: str) -> str:
        """A schedule's hash: its definition (JSON) and its firing record."""
        return f"{self.prefix}s:{name}"


SCHEDULES = _ScheduleKeys()
