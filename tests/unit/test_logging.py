"""Every path to the log (structlog, stdlib, uncaught exceptions, asyncio) keeps keys out."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from infrastructure.logging import configure_logging, get_logger

KEY = "k3y-Sup3rSecret-0123456789"

Configure = Callable[..., Callable[[], list[dict[str, Any]]]]


@pytest.fixture
def configure(capsys: pytest.CaptureFixture[str]) -> Iterator[Configure]:
    """`configure(**options)` sets the process's logging up; it returns a reader of the
    JSON lines written since. The process's logging is put back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)

    def setup(**options: Any) -> Callable[[], list[dict[str, Any]]]:
        configure_logging(**{"fmt": "json", **options})
        return lambda: [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    try:
        yield setup
    finally:
        root.handlers[:], level, sys.excepthook, threading.excepthook = saved
        root.setLevel(level)
        logging.captureWarnings(False)
        logging.getLogger("pottery").setLevel(logging.NOTSET)
        structlog.reset_defaults()


def _handle(headers: list[tuple[bytes, bytes]]) -> None:
    raise RuntimeError("unexpected")


def failure() -> RuntimeError:
    """An exception whose frames' locals hold a request's key, as a request handler's do."""
    headers = [(b"authorization", f"Bearer {KEY}".encode())]
    api_key = KEY
    try:
        _handle(headers)
    except RuntimeError as exc:
        assert api_key
        return exc
    raise AssertionError("unreachable")


def assert_traceback_without_locals(line: dict[str, Any]) -> None:
    [stack] = line["exception"]
    assert stack["exc_type"] == "RuntimeError"
    assert [frame["name"] for frame in stack["frames"]] == ["failure", "_handle"]
    assert all("locals" not in frame for frame in stack["frames"])
    assert KEY not in json.dumps(line)


def test_a_structlog_exception_logs_its_frames_but_not_their_locals(configure: Configure) -> None:
    read = configure()
    exc = failure()
    get_logger("conveyor.http").error("http.unexpected_error", exc_info=exc)
    [line] = read()
    assert line["event"] == "http.unexpected_error"
    assert_traceback_without_locals(line)


def test_uvicorns_exception_in_asgi_application_shows_no_locals(configure: Configure) -> None:
    read = configure()
    logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=failure())
    [line] = read()
    assert line["logger"] == "uvicorn.error"
    assert_traceback_without_locals(line)


def test_an_uncaught_exception_is_one_line_without_locals(configure: Configure) -> None:
    read = configure()
    exc = failure()
    sys.excepthook(type(exc), exc, exc.__traceback__)
    [line] = read()
    assert (line["event"], line["level"]) == ("process.crashed", "critical")
    assert_traceback_without_locals(line)


def test_a_crashed_thread_is_one_line_without_locals(configure: Configure) -> None:
    read = configure()

    def crash() -> None:
        raise failure()

    thread = threading.Thread(target=crash, name="crasher")
    thread.start()
    thread.join(timeout=10)
    [line] = read()
    assert (line["event"], line["thread_name"]) == ("thread.crashed", "crasher")
    [stack] = line["exception"]
    assert all("locals" not in frame for frame in stack["frames"])
    assert KEY not in json.dumps(line)


async def test_asyncios_exception_handler_shows_no_locals(configure: Configure) -> None:
    read = configure()
    asyncio.get_running_loop().call_exception_handler(
        {"message": "Task exception was never retrieved", "exception": failure()}
    )
    [line] = read()
    assert line["logger"] == "asyncio"
    assert_traceback_without_locals(line)


def test_the_console_shows_a_plain_traceback_without_locals_or_keys(
    configure: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(fmt="console")
    try:
        raise RuntimeError(f"refused Authorization: Bearer {KEY}") from failure()
    except RuntimeError:
        get_logger("conveyor.http").exception("http.unexpected_error")
    out = capsys.readouterr().out
    assert "Traceback (most recent call last)" in out
    assert 'in _handle\n    raise RuntimeError("unexpected")' in out
    assert "RuntimeError: refused Authorization: [REDACTED]" in out
    assert KEY not in out


def test_request_headers_are_redacted_from_structlog_and_stdlib_lines(configure: Configure) -> None:
    read = configure()
    headers = {"Authorization": f"Bearer {KEY}", "X-API-Key": KEY, "Accept": "*/*"}
    get_logger("conveyor.http").info("http.request", request={"headers": headers})
    logging.getLogger("uvicorn.error").warning(
        "request", extra={"headers": [(b"cookie", f"s={KEY}".encode()), (b"accept", b"*/*")]}
    )
    first, second = read()
    assert first["request"]["headers"] == {
        "Authorization": "[REDACTED]",
        "X-API-Key": "[REDACTED]",
        "Accept": "*/*",
    }
    assert KEY not in json.dumps(second)
    assert "accept" in json.dumps(second)


def test_configured_secrets_are_masked_in_any_field(configure: Configure) -> None:
    read = configure(secrets=[KEY])
    get_logger("conveyor.http").warning("odd", note=f"someone sent {KEY} in a body")
    logging.getLogger("litestar").warning("validation failed for %s", KEY)
    lines = read()
    assert [line.get("note", line["event"]) for line in lines] == [
        "someone sent [REDACTED] in a body",
        "validation failed for [REDACTED]",
    ]


def test_uvicorns_color_message_is_dropped(configure: Configure) -> None:
    read = configure()
    coloured = "Started server process [\x1b[36m%d\x1b[0m]"
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": coloured}
    )
    [line] = read()
    assert line["event"] == "Started server process [42]"
    assert "color_message" not in line
