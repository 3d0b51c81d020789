"""create_app(container): the litestar application, its routes bridged to the container."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Reference, SecurityScheme
from litestar.plugins.pydantic import PydanticPlugin
from litestar.types import Receive, Scope, Send

from infrastructure.logging import get_logger
from interfaces.container import Container, resolve
from interfaces.dashboard import DASHBOARD_ROUTES
from interfaces.http.actions import ActionController
from interfaces.http.audit import audit_log
from interfaces.http.auth import AUTH_EXCEPTION_HANDLERS, ApiKeys, AuthGuard, provide_principal
from interfaces.http.boundary import Boundary, HostPolicy
from interfaces.http.errors import EXCEPTION_HANDLERS
from interfaces.http.health import health, ready
from interfaces.http.limits import LimitController
from interfaces.http.listing import ExportController
from interfaces.http.live import end_streams_on_exit, events, workers
from interfaces.http.metrics import metrics
from interfaces.http.overview import MAX_AGE_S, SharedAnswer, overview
from interfaces.http.queues import QueueController
from interfaces.http.request_metrics import request_metrics
from interfaces.http.schedules import ScheduleController
from interfaces.http.seeds import SEED_ROUTES
from interfaces.http.shortcut import EnqueueShortcut
from interfaces.http.tasks import TaskController
from interfaces.http.templates import TemplateController

MAX_BODY_BYTES = 1_048_576


def _provide(factory: Callable[[], Any]) -> Provide:
    """A use case or adapter from the container, made once for the app's life: they hold
    no state of a request's, and building one per request was a twentieth of the cost of
    an enqueue."""

    async def provider() -> Any:
        return await resolve(factory)

    return Provide(provider, use_cache=True)


class ConveyorApp(Litestar):
    """The litestar app, with the enqueue route's shortcut in front of it (see `shortcut`)."""

    __slots__ = ("shortcut",)

    def __init__(self, shortcut: EnqueueShortcut | None, **config: Any) -> None:
        super().__init__(**config)
        self.shortcut = shortcut

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        shortcut = self.shortcut
        if shortcut is not None and shortcut.takes(scope):
            await shortcut(scope, receive, send, self._framework)
            return
        await super().__call__(scope, receive, send)

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(container: Container, *, shortcut: bool = True) -> ConveyorApp:
    """The API; `shortcut=False` leaves every request to litestar (to compare the two)."""
    settings = container.settings()
    guard = AuthGuard(ApiKeys.parse(settings.api_keys))  # a bad API_KEYS stops the start
    hosts = HostPolicy(settings.allowed_host_list)
    fast = EnqueueShortcut(hosts, guard, MAX_BODY_BYTES) if shortcut else None
    overview_answer = SharedAnswer(MAX_AGE_S)  # one per app: its pages share it

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await container.init_resources()  # type: ignore[misc]
        registry = await resolve(container.registry)
        end_streams_on_exit((await resolve(container.event_hub)).end_streams)
        if fast is not None:
            fast.start(await resolve(container.enqueue_task))
        schedules = asyncio.create_task((await resolve(container.fire_schedules)).run())
        get_logger("conveyor.http").info("api.started", task_types=registry.names)
        # What start-up allocated lives as long as the process: keep the collector from
        # walking it again and again (its full passes were the API's p99 under load).
        gc.freeze()
        try:
            yield
        finally:
            # A look cut short may be stuck opening a connection: a second, then on.
            schedules.cancel()
            await asyncio.wait({schedules}, timeout=1.0)
            await container.shutdown_resources()  # type: ignore[misc]
            # What was built on the resources just closed must not outlive them: a
            # restarted lifespan (a test client's) builds it afresh on the new ones.
            container.reset_singletons()

    return ConveyorApp(
        fast,
        route_handlers=[
            TaskController,
            ExportController,
            ActionController,
            QueueController,
            TemplateController,
            ScheduleController,
            LimitController,
            health,
            ready,
            metrics,
            workers,
            events,
            audit_log,
            overview,
            *SEED_ROUTES,
            *DASHBOARD_ROUTES,
        ],
        dependencies={
            "enqueue_task": _provide(container.enqueue_task),
            "get_task": _provide(container.get_task),
            "delete_task": _provide(container.delete_task),
            "change_task": _provide(container.change_task),
            "bulk_change": _provide(container.bulk_change),
            "clone_task": _provide(container.clone_task),
            "list_tasks": _provide(container.list_tasks),
            "export_tasks": _provide(container.export_tasks),
            "get_stats": _provide(container.get_stats),
            "pause_queue": _provide(container.pause_queue),
            "get_batch": _provide(container.get_batch),
            "list_workers": _provide(container.list_workers),
            "worker_metrics": _provide(container.worker_metrics),
            "watch_events": _provide(container.watch_events),
            "watch_changes": _provide(container.watch_changes),
            "create_template": _provide(container.create_template),
            "list_templates": _provide(container.list_templates),
            "delete_template": _provide(container.delete_template),
            "use_template": _provide(container.use_template),
            "manage_schedules": _provide(container.manage_schedules),
            "manage_limits": _provide(container.manage_limits),
            "redis": _provide(container.redis),
            "record_audit": _provide(container.record_audit),
            "read_audit": _provide(container.read_audit),
            "principal": Provide(provide_principal, sync_to_thread=False),
            "overview_answer": Provide(lambda: overview_answer, sync_to_thread=False),
        },
        exception_handlers={**EXCEPTION_HANDLERS, **AUTH_EXCEPTION_HANDLERS},
        middleware=[
            request_metrics,
            Boundary(hosts, settings.cors_origin_list),
            guard.middleware,
        ],
        on_startup=[guard.announce],
        lifespan=[lifespan],
        openapi_config=_openapi(),
        request_max_body_size=MAX_BODY_BYTES,
        plugins=[PydanticPlugin(prefer_alias=True)],
        logging_config=None,
        on_app_init=[_quiet],
    )


def _openapi() -> OpenAPIConfig:
    """The schema at /schema, with the two ways to present a key (routes that need none,
    /health and /ready, say so themselves); a key is needed only when API_KEYS is set."""
    schemes: dict[str, SecurityScheme | Reference] = {
        "bearer": SecurityScheme(type="http", scheme="bearer"),
        "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
    }
    return OpenAPIConfig(
        title="Conveyor",
        version="0.1.0",
        path="/schema",
        components=Components(security_schemes=schemes),
        security=[{"bearer": []}, {"apiKey": []}],
    )


def _quiet(config: AppConfig) -> AppConfig:
    config.debug = False
    return config
