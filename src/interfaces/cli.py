"""The `conveyor` command. Each subcommand imports only what it runs (the worker never
loads the web stack)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from infrastructure.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--port", type=int, help="port to listen on (default: PORT or 3000)")
    api.add_argument("--host", help="interface to bind (default: HOST or 0.0.0.0)")

    worker = commands.add_parser("worker", help="run a worker process")
    worker.add_argument("--concurrency", type=int, help="tasks at once (default 10)")
    worker.add_argument("--queues", help="comma-separated queues, first served first")

    up = commands.add_parser("up", help="API + workers (+ an embedded Redis if none answers)")
    up.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    up.add_argument("--concurrency", type=int, help="tasks at once per worker")
    up.add_argument("--port", type=int, help="API port (default: PORT or 3000)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "port": getattr(args, "port", None),
        "host": getattr(args, "host", None),
        "worker_concurrency": getattr(args, "concurrency", None),
        "worker_queues": getattr(args, "queues", None),
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            print(f"conveyor: invalid setting {name}: {error['msg']}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "api":
        from interfaces.http.main import run_api  # noqa: PLC0415 - keeps litestar out of workers

        return run_api(settings)
    if args.command == "worker":
        from interfaces.workers.main import run_worker  # noqa: PLC0415

        return run_worker(settings)
    from interfaces.supervisor import run_up  # noqa: PLC0415

    if args.workers < 1:
        print("conveyor: --workers must be at least 1", file=sys.stderr)  # noqa: T201
        return 2
    return run_up(settings, args.workers, args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
