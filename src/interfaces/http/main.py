"""The API process's entry point."""

from __future__ import annotations

import uvicorn
from dependency_injector import providers

from infrastructure.logging import configure_logging
from infrastructure.redaction import secrets_in
from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app


def run_api(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format, secrets_in(settings))
    container = Container()
    container.settings.override(providers.Object(settings))
    settings.files_base_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(container)
    uvicorn.run(
        app,
        host=settings.listen_host,
        port=settings.port,
        log_config=None,  # our logging pipeline, not uvicorn's
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0
