"""The `conveyor` command. Each subcommand imports only what it runs (the worker never
loads the web stack)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from infrastructure.settings import Settings

if TYPE_CHECKING:
    from interfaces.client import ConveyorClient

CLIENT_COMMANDS = ("enqueue", "tasks", "stats", "schedules")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--port", type=int, help="port to listen on (default: PORT or 3000)")
    api.add_argument(
        "--host", help="interface to bind (default: HOST, else 127.0.0.1 without API_KEYS)"
    )

    worker = commands.add_parser("worker", help="run a worker process")
    worker.add_argument("--concurrency", type=int, help="tasks at once (default 10)")
    worker.add_argument(
        "--queues",
        help="queues to serve: a,b in strict order (b only when a has nothing ready); "
        "a=3,b=1 by weight, turn by turn (a queue without a weight weighs 1; 1 to 100)",
    )

    up = commands.add_parser("up", help="API + workers (+ an embedded Redis if none answers)")
    up.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    up.add_argument("--concurrency", type=int, help="tasks at once per worker")
    up.add_argument("--port", type=int, help="API port (default: PORT or 3000)")
    _client_parsers(commands)
    return parser


def _client_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the API (default: CONVEYOR_URL or http://127.0.0.1:3000)")
    common.add_argument("--api-key", help="sent as a Bearer token (default: CONVEYOR_API_KEY)")
    common.add_argument("--json", action="store_true", help="print the raw JSON answer")
    _enqueue_parser(commands.add_parser("enqueue", parents=[common], help="enqueue a task"))
    tasks = commands.add_parser("tasks", help="list, show and manage tasks")
    verbs = tasks.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", parents=[common], help="tasks, newest first")
    for flag in ("--status", "--name", "--queue", "--search", "--cursor"):
        listing.add_argument(flag)
    listing.add_argument("--limit", type=int, default=20, help="tasks per page (default 20)")
    show = verbs.add_parser("show", parents=[common], help="one task in full")
    show.add_argument("id")
    show.add_argument("--queue", help="the queue, where two hold the same id")
    for verb in ("retry", "cancel", "kill", "delete"):
        act = verbs.add_parser(verb, parents=[common], help=f"{verb} tasks by id")
        act.add_argument("ids", nargs="+", metavar="ID")
        act.add_argument("--queue", help="the queue, where two hold the same id")
    commands.add_parser("stats", parents=[common], help="counts per queue and throughput")
    _schedule_parsers(commands.add_parser("schedules", help="recurring tasks"), common)


def _schedule_parsers(schedules: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    verbs = schedules.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", parents=[common], help="every schedule and its next fire time")
    for verb, help_text in [
        ("show", "one schedule and its next fire times"),
        ("pause", "stop firing (slots passed while paused are not fired)"),
        ("resume", "fire again from the next slot"),
        ("trigger", "enqueue the schedule's task now"),
        ("delete", "delete the schedule (tasks it fired stay)"),
    ]:
        verbs.add_parser(verb, parents=[common], help=help_text).add_argument("name")
    for verb, help_text in [
        ("create", "create a schedule"),
        ("update", "replace a schedule's definition"),
    ]:
        define = verbs.add_parser(verb, parents=[common], help=help_text)
        define.add_argument("name")
        define.add_argument("task_name", metavar="TASK", help="the task type, e.g. echo")
        cadence = define.add_mutually_exclusive_group(required=True)
        cadence.add_argument("--cron", help="'m h dom mon dow', or 6 fields with seconds first")
        cadence.add_argument("--every-ms", type=int, help="an interval in milliseconds")
        define.add_argument("--timezone", help="an IANA zone for --cron (default UTC)")
        payload = define.add_mutually_exclusive_group()
        payload.add_argument("--payload", help="the task's payload, a JSON object (default {})")
        payload.add_argument("--payload-file", help="a file holding the payload ('-': stdin)")
        define.add_argument("--queue", help="the queue (default: the task type's)")
        define.add_argument("--priority", type=int, help="lower runs first")
        define.add_argument("--missed-policy", choices=["skip", "once", "all"])
        define.add_argument("--catch-up-limit", type=int, help="slots fired at most by 'all'")
        define.add_argument("--overlap-policy", choices=["allow", "skip", "queue"])


def _enqueue_parser(enqueue: argparse.ArgumentParser) -> None:
    enqueue.add_argument("name", help="the task type, e.g. echo")
    body = enqueue.add_mutually_exclusive_group()
    body.add_argument("--payload", help="a JSON object (default {})")
    body.add_argument("--payload-file", help="a file holding the JSON payload ('-': stdin)")
    due = enqueue.add_mutually_exclusive_group()
    due.add_argument("--delay-ms", type=int, help="run this much later")
    due.add_argument("--run-at", help="run at this ISO 8601 time (no offset: local time)")
    enqueue.add_argument("--priority", type=int, help="lower runs first (default 0)")
    enqueue.add_argument("--id", help="a custom id; enqueueing it again is idempotent")
    enqueue.add_argument("--attempts", type=int, help="tries before the task fails")
    enqueue.add_argument("--queue", help="the queue (default: the task type's)")
    enqueue.add_argument("--group", help="a tenant: the queue serves its groups in turn")
    enqueue.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="wait for the outcome; exit 1 unless completed",
    )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "port": getattr(args, "port", None),
        "host": getattr(args, "host", None),
        "worker_concurrency": getattr(args, "concurrency", None),
        "worker_queues": getattr(args, "queues", None),
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None, client: ConveyorClient | None = None) -> int:
    """`client` replaces the one the client commands would build (tests inject one)."""
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        from interfaces.cli_client import run_client  # noqa: PLC0415 - httpx only when used

        return run_client(args, client)
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
