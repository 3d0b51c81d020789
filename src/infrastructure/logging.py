"""structlog configured once per process: JSON lines when not on a TTY, for every logger."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict

from infrastructure.redaction import Redactor

# The running task's fields, in one context variable: a worker sets it once per task
# (bind_task), and each asyncio task has a context of its own.
_TASK_FIELDS: ContextVar[dict[str, Any] | None] = ContextVar("conveyor_task", default=None)


def bind_task(**fields: Any) -> None:
    """Every line logged from now on in this context (an asyncio task, and the threads it
    starts with its context) carries `fields`."""
    _TASK_FIELDS.set(fields)


def _merge_task_fields(_: Any, __: str, event: EventDict) -> EventDict:
    fields = _TASK_FIELDS.get()
    if fields is not None:
        for name, value in fields.items():
            event.setdefault(name, value)
    return event


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    _merge_task_fields,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

# Tracebacks carry their frames but never their locals: a request handler's locals hold the
# request's headers, and with them its API key (structlog shows locals by default).
_JSON_TRACEBACKS = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False)
)


def configure_logging(level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Route structlog, the stdlib (uvicorn, libraries), warnings and uncaught
    exceptions through one pipeline, so every line a process prints has one format;
    `secrets` (see `redaction.secrets_in`) are masked wherever a line quotes them."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_formatter(json_lines, Redactor(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # pottery logs a traceback for every unreachable master; the lock adapter reports
    # the same failure once, as a domain error with the reason.
    logging.getLogger("pottery").setLevel(logging.CRITICAL)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Filtered by level before anything is done: a worker at WARNING pays next to
        # nothing for its per-task INFO line.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_crash


def _formatter(json_lines: bool, redactor: Redactor) -> structlog.stdlib.ProcessorFormatter:
    """The last steps of every line, structlog's and the stdlib's (uvicorn's "Exception in
    ASGI application", asyncio's handler, uncaught exceptions) alike. Tracebacks are turned
    into data before the redactor runs, so what an exception says is scrubbed too."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        # Plain tracebacks on a console too: rich's shows locals, and its colours would
        # split a key's text where the redactor looks for it.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stdout.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            drop_color_message,
            _JSON_TRACEBACKS if json_lines else structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


def drop_color_message(_: Any, __: str, event: EventDict) -> EventDict:
    """uvicorn passes its message again with ANSI colour codes as `color_message`."""
    event.pop("color_message", None)
    return event


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("conveyor").critical("process.crashed", exc_info=(kind, value, tb))


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:  # as the default hook: a thread may end itself so
        return
    thread = args.thread.name if args.thread else None
    logging.getLogger("conveyor").error(
        "thread.crashed", exc_info=args.exc_value, extra={"thread_name": thread}
    )
