"""A `conveyor` process on a pseudo-terminal, and what its screen shows."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading

# What moves the cursor or erases: a CSI sequence, a carriage return, a line feed; else text.
_TOKENS = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+|\x1b")


class PtyProc:
    """A process whose stdin, stdout and stderr are one pseudo-terminal of `columns`."""

    def __init__(self, argv: list[str], env: dict[str, str], columns: int = 240) -> None:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            start_new_session=True,
        )
        os.close(follower)
        self._leader = leader
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def raw(self) -> str:
        with self._lock:
            return self._raw.decode(errors="replace")

    def screen(self) -> list[str]:
        """The lines as a terminal shows them, the last one the line the cursor is on."""
        return render(self.raw())

    def bottom(self) -> str:
        return self.screen()[-1]

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout_s: float = 30.0) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            # The whole session it leads: the children of a `conveyor up` cut short too.
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        os.close(self._leader)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._leader, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                return
            if not chunk:
                return
            with self._lock:
                self._raw += chunk


def render(raw: str) -> list[str]:
    """A screen's lines from what was written to it: `\\r` goes back to the line's start,
    `ESC[K` erases to its end, text overwrites, other escape sequences show nothing."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for token in _TOKENS.findall(raw):
        if token == "\n":
            lines.append("".join(line))
            line, column = [], 0
        elif token == "\r":
            column = 0
        elif token == "\x1b[K":
            del line[column:]
        elif not token.startswith("\x1b"):
            line[column : column + len(token)] = token
            column += len(token)
    return [*lines, "".join(line)]
