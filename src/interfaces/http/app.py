"""create_app(container): the litestar application, its routes bridged to the container."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.pydantic import PydanticPlugin

from infrastructure.logging import get_logger
from interfaces.container import Container, resolve
from interfaces.http.errors import EXCEPTION_HANDLERS
from interfaces.http.health import health, ready
from interfaces.http.tasks import TaskController
from interfaces.http.templates import TemplateController

MAX_BODY_BYTES = 1_048_576


def _provide(factory: Callable[[], Any]) -> Provide:
    async def provider() -> Any:
        return await resolve(factory)

    return Provide(provider)


def create_app(container: Container) -> Litestar:
    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await container.init_resources()  # type: ignore[misc]
        registry = await resolve(container.registry)
        get_logger("conveyor.http").info("api.started", task_types=registry.names)
        try:
            yield
        finally:
            await container.shutdown_resources()  # type: ignore[misc]

    return Litestar(
        route_handlers=[TaskController, TemplateController, health, ready],
        dependencies={
            "enqueue_task": _provide(container.enqueue_task),
            "get_task": _provide(container.get_task),
            "delete_task": _provide(container.delete_task),
            "create_template": _provide(container.create_template),
            "list_templates": _provide(container.list_templates),
            "delete_template": _provide(container.delete_template),
            "use_template": _provide(container.use_template),
            "redis": _provide(container.redis),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="Conveyor", version="0.1.0", path="/schema"),
        request_max_body_size=MAX_BODY_BYTES,
        plugins=[PydanticPlugin(prefer_alias=True)],
        logging_config=None,
        on_app_init=[_quiet],
    )


def _quiet(config: AppConfig) -> AppConfig:
    config.debug = False
    return config
