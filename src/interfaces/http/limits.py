"""Flow limit routes: a queue's rate and concurrency limits, its own and per task type."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import Field

from application.limits import ManageLimits
from domain.limits import MAX_LIMIT, MAX_WINDOW_MS, Limit, LimitsView, QueueLimits, Rate
from interfaces.http.auth import Principal
from interfaces.http.errors import BODY, QUERY, documented
from interfaces.http.schemas import WireModel
from interfaces.http.values import WireInt


class RateBody(WireModel):
    max: WireInt = Field(ge=1, le=MAX_LIMIT, description="starts at most ...")
    window_ms: WireInt = Field(ge=1, le=MAX_WINDOW_MS, description="... in any such window")


class LimitBody(WireModel):
    rate: RateBody | None = None
    concurrency: WireInt | None = Field(default=None, ge=1, le=MAX_LIMIT)

    def to_domain(self) -> Limit:
        rate = None if self.rate is None else Rate(self.rate.max, self.rate.window_ms)
        return Limit(rate, self.concurrency)


class LimitsBody(LimitBody):
    """The queue's own limit, one per task type, and its groups'; what is left out is not
    limited."""

    task_types: dict[str, LimitBody] = Field(default_factory=dict, max_length=100)
    groups: dict[str, LimitBody] = Field(
        default_factory=dict,
        max_length=100,
        description="per group (a task's `group`): `*` for every group, a group's name for "
        "that one; each kind of limit a named group gives replaces the default's",
    )

    def to_limits(self) -> QueueLimits:
        types = {name: limit.to_domain() for name, limit in self.task_types.items()}
        groups = {name: limit.to_domain() for name, limit in self.groups.items()}
        return QueueLimits(self.to_domain(), types, groups)


class UsageOut(WireModel):
    running: int
    started_in_window: int


class LimitOut(WireModel):
    rate: RateBody | None
    concurrency: int | None
    usage: UsageOut


class LimitsOut(WireModel):
    """Limits with their usage now; `parked`: ready tasks held back at their type's limit."""

    queue: str
    rate: RateBody | None
    concurrency: int | None
    usage: UsageOut
    task_types: dict[str, LimitOut]
    parked: dict[str, int]
    groups: dict[str, LimitBody]

    @classmethod
    def of(cls, queue: str, view: LimitsView) -> LimitsOut:
        def rate(limit: Limit) -> RateBody | None:
            r = limit.rate
            return None if r is None else RateBody(max=r.max, window_ms=r.window_ms)

        def usage(running: int, started: int) -> UsageOut:
            return UsageOut(running=running, started_in_window=started)

        own = view.limits.queue
        return cls(
            queue=queue,
            rate=rate(own),
            concurrency=own.concurrency,
            usage=usage(view.queue.running, view.queue.started_in_window),
            task_types={
                name: LimitOut(
                    rate=rate(limit),
                    concurrency=limit.concurrency,
                    usage=usage(
                        view.task_types[name].running, view.task_types[name].started_in_window
                    ),
                )
                for name, limit in view.limits.task_types.items()
            },
            parked=view.parked,
            groups={
                name: LimitBody(rate=rate(limit), concurrency=limit.concurrency)
                for name, limit in view.limits.groups.items()
            },
        )


class LimitController(Controller):
    path = "/api/queues/{queue:str}/limits"
    tags = ["queues"]  # noqa: RUF012 - litestar reads it as a class attribute

    @get("/", summary="A queue's flow limits and usage", responses=documented(*QUERY))
    async def show(
        self, queue: FromPath[str], manage_limits: NamedDependency[ManageLimits]
    ) -> LimitsOut:
        return LimitsOut.of(queue, await manage_limits.get(queue))

    @put("/", summary="Replace a queue's flow limits", responses=documented(*BODY))
    async def replace(
        self,
        queue: FromPath[str],
        data: JSONBody[LimitsBody],
        manage_limits: NamedDependency[ManageLimits],
        principal: NamedDependency[Principal],
    ) -> LimitsOut:
        view = await manage_limits.set(queue, data.to_limits(), principal.name)
        return LimitsOut.of(queue, view)
