"""A terminal whose last line is a status, and the pipes whose lines are written above it."""

from __future__ import annotations

import shutil
import threading
from typing import IO, TextIO

CLEAR_LINE = "\r\x1b[K"  # back to the line's start, then erase to its end


class StatusTerminal:
    """The one writer of a terminal that keeps a status line at its bottom: a line written
    above it erases the status, and the status is drawn again under the line.

    The lock is reentrant: a signal handler runs on the main thread, and its log line may
    come while that thread is already in the middle of writing one."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.RLock()
        self._status = ""
        self._closed = False
        self._partial = ""

    def line(self, text: str) -> None:
        with self._lock:
            self._out.write(f"{CLEAR_LINE}{text}\n{self._fitted()}")
            self._out.flush()

    def status(self, text: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._status = text
            self._out.write(CLEAR_LINE + self._fitted())
            self._out.flush()

    def close(self) -> None:
        """Erase the status for good: from now on the terminal gets plain lines."""
        with self._lock:
            self._closed = True
            self._status = ""
            self._out.write(CLEAR_LINE)
            self._out.flush()

    def write(self, text: str) -> int:
        """A text stream's write, so that a logging handler's lines go through `line`."""
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            for each in lines:
                self.line(each)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._out.flush()

    def _fitted(self) -> str:
        # A status that wrapped would leave its first row behind at the next redraw.
        width = shutil.get_terminal_size().columns
        return self._status[: max(width - 1, 0)]


def follow(stream: IO[bytes], terminal: StatusTerminal, name: str) -> threading.Thread:
    """A thread writing each line of `stream` above the status line, until the stream ends."""

    def pump() -> None:
        with stream:
            for raw in stream:
                terminal.line(raw.decode(errors="replace").rstrip("\r\n"))

    thread = threading.Thread(target=pump, name=name, daemon=True)
    thread.start()
    return thread
