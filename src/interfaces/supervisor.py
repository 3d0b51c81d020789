"""`conveyor up`: the API, N workers and, when needed, an embedded Redis, as one command."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from infrastructure.embedded_redis import EmbeddedRedis, redis_answers
from infrastructure.logging import configure_logging, get_logger
from infrastructure.redaction import secrets_in
from infrastructure.settings import Settings
from interfaces.terminal import StatusTerminal, follow
from interfaces.up_places import Places, RedisOrigin
from interfaces.up_status import ApiProbe, Watch, admin_key

RESTART_DELAY_S = 1.0
PIPES_DRAIN_S = 2.0  # a grandchild may hold a pipe open after its parent has gone


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self, env: dict[str, str], stdout: int | None, stderr: int | None) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own argv
            self.argv, env=env, stdout=stdout, stderr=stderr
        )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


class Supervisor:
    """Starts the children, restarts one that dies, and stops them all on a signal. With a
    `terminal`, the children write into pipes and their lines go above its status line."""

    def __init__(
        self,
        settings: Settings,
        workers: int,
        concurrency: int | None,
        terminal: StatusTerminal | None = None,
    ) -> None:
        self._settings = settings
        self._terminal = terminal
        self._log = get_logger("conveyor.up")
        self._redis: EmbeddedRedis | None = None
        self._redis_origin = RedisOrigin.GIVEN
        self._stopping = False
        self._pipes: list[threading.Thread] = []
        cli = [sys.executable, "-m", "interfaces.cli"]
        worker_argv = [*cli, "worker"]
        if concurrency:
            worker_argv += ["--concurrency", str(concurrency)]
        self._children = [Child("api", [*cli, "api", "--port", str(settings.port)])]
        self._children += [Child(f"worker-{n}", worker_argv) for n in range(1, workers + 1)]

    def run(self) -> int:
        redis_url = self._redis_url()
        env = self._child_env(redis_url)
        for child in self._children:
            self._start(child, env)
            self._log.info("up.started", child=child.name, pid=child.process and child.process.pid)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        watch = self._watch(Places.of(self._settings, redis_url, self._redis_origin))
        watch.start()
        try:
            while not self._stopping:
                self._restart_dead(env)
                time.sleep(0.2)
        finally:
            watch.stop()
            if self._terminal is not None:
                self._terminal.close()
            self._stop_children()
            self._drain_pipes()
            if self._redis is not None:
                self._redis.stop()
                self._log.info("up.redis_stopped")
        return 0

    def _redis_url(self) -> str:
        """The Redis the children use: named by the settings, or the local one."""
        if self._settings.cluster is not None:
            self._redis_origin = RedisOrigin.CLUSTER
            return self._settings.redis_cluster_urls
        if self._settings.sentinels is not None:
            self._redis_origin = RedisOrigin.SENTINELS
            sentinels = self._settings.sentinels.addresses
            return ",".join(f"sentinel://{host}:{port}" for host, port in sentinels)
        if self._settings.redis_url:
            return self._settings.queue_redis_url
        local = self._settings.local_redis_url
        if redis_answers(local):
            self._redis_origin = RedisOrigin.FOUND
            self._log.info("up.redis_found", url=local)
            return local
        self._redis = EmbeddedRedis(
            self._settings.redis_data_dir, port=self._settings.embedded_redis_port
        )
        self._redis.start()
        self._redis_origin = RedisOrigin.EMBEDDED
        self._log.info("up.redis_embedded", url=self._redis.url, binary=self._redis.binary)
        return self._redis.url

    def _child_env(self, redis_url: str) -> dict[str, str]:
        env = dict(os.environ)
        if self._redis_origin in (RedisOrigin.FOUND, RedisOrigin.EMBEDDED):
            env["REDIS_URL"] = redis_url  # the Cluster's, the sentinels' come from os.environ
        if self._terminal is not None:
            # The children write into pipes now, where they would pick JSON lines and
            # block buffering; the person at the terminal expects what they would print.
            env["PYTHONUNBUFFERED"] = "1"
            if self._settings.log_format == "auto":
                env["LOG_FORMAT"] = "console"
        return env

    def _start(self, child: Child, env: dict[str, str]) -> None:
        if self._terminal is None:
            child.start(env, None, None)
            return
        # A redirected stderr is left to the child, as it is without a terminal.
        stderr = subprocess.PIPE if sys.stderr.isatty() else None
        child.start(env, subprocess.PIPE, stderr)
        assert child.process is not None
        streams = [child.process.stdout, child.process.stderr]
        self._pipes = [pipe for pipe in self._pipes if pipe.is_alive()]
        self._pipes += [
            follow(stream, self._terminal, f"{child.name}-output") for stream in streams if stream
        ]

    def _watch(self, places: Places) -> Watch:
        key = admin_key(self._settings.api_keys)
        probe = ApiProbe(places.api, key)
        return Watch(probe, lambda ready: self._announce(places, ready), self._terminal)

    def _announce(self, places: Places, ready: bool) -> None:
        if not ready:
            self._log.warning("up.api_not_ready", detail="the API does not answer /ready yet")
        if _json_lines(self._settings):
            self._log.info("up.addresses", **places.fields())
        elif self._terminal is not None:
            for line in places.lines():
                self._terminal.line(line)
        else:
            sys.stdout.write("".join(f"{line}\n" for line in places.lines()))
            sys.stdout.flush()

    def _restart_dead(self, env: dict[str, str]) -> None:
        for child in self._children:
            code = child.exited()
            if code is None or self._stopping:
                continue
            child.restarts += 1
            self._log.error("up.child_exited", child=child.name, code=code, restart=child.restarts)
            time.sleep(min(RESTART_DELAY_S * child.restarts, 10.0))
            self._start(child, env)

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

    def _drain_pipes(self) -> None:
        deadline = time.monotonic() + PIPES_DRAIN_S
        for pipe in self._pipes:
            pipe.join(timeout=max(deadline - time.monotonic(), 0))


def _json_lines(settings: Settings) -> bool:
    """As `configure_logging` decides: the places go out as one log line where lines are
    JSON, since every line is JSON there."""
    return settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stdout.isatty()
    )


def _log_through(terminal: StatusTerminal) -> None:
    """This process's own log lines go above the status line too."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(terminal)


def run_up(settings: Settings, workers: int, concurrency: int | None) -> int:
    configure_logging(settings.log_level, settings.log_format, secrets_in(settings))
    # The status is read once a second: a line per request would bury the children's lines.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    terminal = StatusTerminal(sys.stdout) if sys.stdout.isatty() else None
    if terminal is not None:
        _log_through(terminal)
    return Supervisor(settings, workers, concurrency, terminal).run()
