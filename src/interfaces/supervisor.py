"""`conveyor up`: the API, N workers and, when needed, an embedded Redis, as one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from infrastructure.embedded_redis import EmbeddedRedis, redis_answers
from infrastructure.logging import configure_logging, get_logger
from infrastructure.redaction import secrets_in
from infrastructure.settings import Settings

RESTART_DELAY_S = 1.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, env=env)  # noqa: S603 - our own argv

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


class Supervisor:
    """Starts the children, restarts one that dies, and stops them all on a signal."""

    def __init__(self, settings: Settings, workers: int, concurrency: int | None) -> None:
        self._settings = settings
        self._log = get_logger("conveyor.up")
        self._redis: EmbeddedRedis | None = None
        self._stopping = False
        cli = [sys.executable, "-m", "interfaces.cli"]
        worker_argv = [*cli, "worker"]
        if concurrency:
            worker_argv += ["--concurrency", str(concurrency)]
        self._children = [Child("api", [*cli, "api", "--port", str(settings.port)])]
        self._children += [Child(f"worker-{n}", worker_argv) for n in range(1, workers + 1)]

    def run(self) -> int:
        env = dict(os.environ, REDIS_URL=self._redis_url())
        for child in self._children:
            child.start(env)
            self._log.info("up.started", child=child.name, pid=child.process and child.process.pid)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            while not self._stopping:
                self._restart_dead(env)
                time.sleep(0.2)
        finally:
            self._stop_children()
            if self._redis is not None:
                self._redis.stop()
                self._log.info("up.redis_stopped")
        return 0

    def _redis_url(self) -> str:
        if self._settings.redis_url:
            return self._settings.redis_url
        local = self._settings.local_redis_url
        if redis_answers(local):
            self._log.info("up.redis_found", url=local)
            return local
        self._redis = EmbeddedRedis(
            self._settings.redis_data_dir, port=self._settings.embedded_redis_port
        )
        self._redis.start()
        self._log.info("up.redis_embedded", url=self._redis.url, binary=self._redis.binary)
        return self._redis.url

    def _restart_dead(self, env: dict[str, str]) -> None:
        for child in self._children:
            code = child.exited()
            if code is None or self._stopping:
                continue
            child.restarts += 1
            self._log.error("up.child_exited", child=child.name, code=code, restart=child.restarts)
            time.sleep(min(RESTART_DELAY_S * child.restarts, 10.0))
            child.start(env)

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        if self._stopping:
            # A second Ctrl-C: children leave at once; their tasks are recovered later.
            for child in self._children:
                if child.process is not None and child.process.poll() is None:
                    child.process.send_signal(signal.SIGINT)
            return
        self._log.info("up.stopping", signal=signal.Signals(signum).name)
        self._stopping = True

    def _stop_children(self) -> None:
        running = [c.process for c in self._children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._settings.shutdown_grace_ms / 1000 + 10
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._log.info("up.child_stopped", pid=process.pid, code=process.returncode)


def run_up(settings: Settings, workers: int, concurrency: int | None) -> int:
    configure_logging(settings.log_level, settings.log_format, secrets_in(settings))
    return Supervisor(settings, workers, concurrency).run()
