"""A terminal with a status line: lines above it, the status redrawn under each."""

from __future__ import annotations

import io
import os

import pytest

from interfaces.terminal import CLEAR_LINE, StatusTerminal, follow


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.setenv("COLUMNS", "20")
    return io.StringIO()


def test_a_line_erases_the_status_and_the_status_comes_back_under_it(out: io.StringIO) -> None:
    terminal = StatusTerminal(out)
    terminal.status("waiting 1")
    terminal.line("a log line")
    assert out.getvalue() == f"{CLEAR_LINE}waiting 1{CLEAR_LINE}a log line\nwaiting 1"


def test_the_status_is_cut_to_the_terminal_width(out: io.StringIO) -> None:
    terminal = StatusTerminal(out)
    terminal.status("x" * 50)
    assert out.getvalue() == CLEAR_LINE + "x" * 19


def test_after_close_there_is_no_status(out: io.StringIO) -> None:
    terminal = StatusTerminal(out)
    terminal.status("waiting 1")
    terminal.close()
    terminal.status("waiting 2")
    terminal.line("last words")
    assert out.getvalue().endswith(f"{CLEAR_LINE}{CLEAR_LINE}last words\n")
    assert "waiting 2" not in out.getvalue()


def test_as_a_stream_it_writes_whole_lines_only(out: io.StringIO) -> None:
    terminal = StatusTerminal(out)
    terminal.write("first\nsec")
    terminal.write("ond\n")
    assert out.getvalue() == f"{CLEAR_LINE}first\n{CLEAR_LINE}second\n"


def test_a_pipe_is_followed_line_by_line_to_its_end(out: io.StringIO) -> None:
    terminal = StatusTerminal(out)
    reader, writer = os.pipe()
    with os.fdopen(writer, "wb") as pipe:
        pipe.write(b"one\r\ntwo \xff\nthree")
    follow(os.fdopen(reader, "rb"), terminal, "test").join(timeout=5)
    assert out.getvalue() == f"{CLEAR_LINE}one\n{CLEAR_LINE}two \ufffd\n{CLEAR_LINE}three\n"
