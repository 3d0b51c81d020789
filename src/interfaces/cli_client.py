"""The client commands (enqueue, tasks, stats, schedules): ConveyorClient calls printed
for people."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from interfaces.client import ConveyorClient, ConveyorError, TooManyRequests, Unauthorized

COUNTS = ("waiting", "active", "delayed", "completed", "failed", "cancelled")
NAME_WIDTH = 32
Command = Callable[[ConveyorClient, argparse.Namespace], int]


class UsageError(Exception):
    """Bad arguments, found before anything is sent."""


def run_client(args: argparse.Namespace, client: ConveyorClient | None = None) -> int:
    """Exit status: 0 done, 1 the server (or the network) said no, 2 bad usage."""
    command = _COMMANDS[_command_name(args)]
    try:
        api = client or ConveyorClient(args.url, args.api_key)
    except httpx.InvalidURL as exc:
        _err(f"invalid URL: {exc}")
        return 2
    try:
        return _run(command, api, args)
    finally:
        if client is None:
            api.close()


def _command_name(args: argparse.Namespace) -> str:
    if args.command == "tasks":
        return str(args.verb)
    if args.command == "schedules":
        return f"schedules {args.verb}"
    return str(args.command)


def _run(command: Command, api: ConveyorClient, args: argparse.Namespace) -> int:
    try:
        return command(api, args)
    except UsageError as exc:
        _err(str(exc))
        return 2
    except ConveyorError as exc:
        _report(exc)
        return 1
    except (httpx.TransportError, TimeoutError, KeyboardInterrupt) as exc:
        return _cut_short(exc, api.url)


def _cut_short(exc: BaseException, url: str) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, httpx.TimeoutException):
        _err(f"Conveyor at {url} did not answer in time")
    elif isinstance(exc, httpx.TransportError):
        _err(f"cannot reach Conveyor at {url} ({exc or type(exc).__name__})")
    else:
        _err(str(exc))
    return 1


def _enqueue(api: ConveyorClient, args: argparse.Namespace) -> int:
    payload, run_at = _payload(args), _run_at(args.run_at)
    task = api.enqueue(
        args.name,
        payload,
        delay_ms=args.delay_ms,
        run_at=run_at,
        priority=args.priority,
        task_id=args.id,
        attempts=args.attempts,
        queue=args.queue,
        group=args.group,
    )
    if args.wait is None or task.get("status") == "removed":
        _show_task(task, args.json)
        return 0
    task = api.wait(task["id"], args.wait, queue=task.get("queue"))
    _show_task(task, args.json)
    return 0 if task["status"] == "completed" else 1


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    if args.payload_file is not None:
        text, source = _read(args.payload_file), f"--payload-file {args.payload_file}"
    else:
        text, source = args.payload or "{}", "--payload"
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"{source} must be a JSON object, not {type(payload).__name__}")
    return payload


def _read(name: str) -> str:
    try:
        return sys.stdin.read() if name == "-" else Path(name).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None


def _run_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--run-at is not an ISO 8601 time: {text!r}") from None


def _list(api: ConveyorClient, args: argparse.Namespace) -> int:
    page = api.list(
        status=args.status,
        task_name=args.name,
        queue=args.queue,
        search=args.search,
        limit=args.limit,
        cursor=args.cursor,
    )
    if args.json:
        _out(_dumps(page))
        return 0
    items = page.get("items", [])
    if items:
        _out(_task_table(items))
    footer = f"{len(items)} of {page.get('total', len(items))} tasks"
    cursor = page.get("nextCursor")
    _out(f"{footer}; next page: --cursor {cursor}" if cursor else footer)
    return 0


def _show(api: ConveyorClient, args: argparse.Namespace) -> int:
    _show_task(api.get(args.id, args.queue), args.json)
    return 0


def _act(api: ConveyorClient, args: argparse.Namespace) -> int:
    """Every id is tried; one that fails is reported and the rest still run."""
    results, failures = [], 0
    for task_id in args.ids:
        try:
            results.append(_apply(api, args.verb, task_id, args.queue))
        except ConveyorError as exc:
            _report(exc, task_id)
            failures += 1
    if args.json:
        _out(_dumps(results))
    elif results:
        _out(_table([], [[str(r.get("id")), str(r.get("status"))] for r in results]))
    return 1 if failures else 0


def _apply(api: ConveyorClient, verb: str, task_id: str, queue: str | None) -> dict[str, Any]:
    if verb == "delete":
        api.delete(task_id, queue=queue)
        return {"id": task_id, "status": "removed"}
    actions = {"retry": api.retry, "cancel": api.cancel, "kill": api.kill}
    return actions[verb](task_id, queue=queue)


def _stats(api: ConveyorClient, args: argparse.Namespace) -> int:
    stats = api.stats()
    _out(_dumps(stats) if args.json else _stats_text(stats))
    return 0


def _schedules(api: ConveyorClient, args: argparse.Namespace) -> int:
    listing = api.schedules()
    if args.json:
        _out(_dumps(listing))
        return 0
    headers = ["NAME", "CADENCE", "TASK", "STATUS", "NEXT RUN", "FIRED"]
    rows = [
        [
            str(s.get("name")),
            _cadence(s),
            _clip(str(s["task"]["taskName"]), NAME_WIDTH),
            str(s.get("status")),
            _when(s.get("nextRunAt")) or "-",
            str(s.get("fired")),
        ]
        for s in listing.get("schedules", [])
    ]
    _out(_table(headers, rows) if rows else "no schedules")
    return 0


def _schedule_action(api: ConveyorClient, args: argparse.Namespace) -> int:
    if args.verb == "delete":
        api.delete_schedule(args.name)
        _out(f"deleted {args.name}")
        return 0
    if args.verb == "trigger":
        task = api.trigger_schedule(args.name)
        _out(_dumps(task) if args.json else f"enqueued {task.get('id')}")
        return 0
    actions = {
        "show": api.schedule,
        "pause": api.pause_schedule,
        "resume": api.resume_schedule,
    }
    _show_schedule(actions[args.verb](args.name), args.json)
    return 0


def _define_schedule(api: ConveyorClient, args: argparse.Namespace) -> int:
    task: dict[str, Any] = {"taskName": args.task_name, "payload": _payload(args)}
    for key, value in (("queue", args.queue), ("priority", args.priority)):
        if value is not None:
            task[key] = value
    definition: dict[str, Any] = {"task": task}
    options = {
        "cron": args.cron,
        "everyMs": args.every_ms,
        "timezone": args.timezone,
        "missedPolicy": args.missed_policy,
        "catchUpLimit": args.catch_up_limit,
        "overlapPolicy": args.overlap_policy,
    }
    definition |= {key: value for key, value in options.items() if value is not None}
    if args.verb == "create":
        shown = api.create_schedule({"name": args.name, **definition})
    else:
        shown = api.update_schedule(args.name, definition)
    _show_schedule(shown, args.json)
    return 0


def _cadence(schedule: dict[str, Any]) -> str:
    if schedule.get("cron"):
        return f"{schedule['cron']} ({schedule.get('timezone')})"
    return f"every {schedule.get('everyMs')} ms"


def _show_schedule(schedule: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _out(_dumps(schedule))
        return
    fields = [
        ("name", schedule.get("name")),
        ("cadence", _cadence(schedule)),
        ("task", _value(schedule.get("task"))),
        ("status", schedule.get("status")),
        ("missed", schedule.get("missedPolicy")),
        ("overlap", schedule.get("overlapPolicy")),
        ("fired", schedule.get("fired")),
        ("skipped", schedule.get("skipped")),
        ("last run", _when(schedule.get("lastRunAt"))),
        ("last task", schedule.get("lastTaskId")),
        ("next runs", ", ".join(_when(at) or "" for at in schedule.get("upcoming", [])) or "-"),
    ]
    _out("\n".join(f"{label + ':':<11}{value}" for label, value in fields if value is not None))


_COMMANDS: dict[str, Command] = {
    "enqueue": _enqueue,
    "list": _list,
    "show": _show,
    "retry": _act,
    "cancel": _act,
    "kill": _act,
    "delete": _act,
    "stats": _stats,
    "schedules list": _schedules,
    "schedules show": _schedule_action,
    "schedules pause": _schedule_action,
    "schedules resume": _schedule_action,
    "schedules trigger": _schedule_action,
    "schedules delete": _schedule_action,
    "schedules create": _define_schedule,
    "schedules update": _define_schedule,
}


def _task_table(tasks: Sequence[dict[str, Any]]) -> str:
    headers = ["ID", "NAME", "STATUS", "ATTEMPTS", "QUEUE", "CREATED"]
    rows = [
        [
            str(task.get("id", "")),
            _clip(str(task.get("taskName", "")), NAME_WIDTH),
            str(task.get("status", "")),
            _attempts(task) or "",
            str(task.get("queue", "")),
            _when(task.get("createdAt")) or "",
        ]
        for task in tasks
    ]
    return _table(headers, rows)


def _show_task(task: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _out(_dumps(task))
        return
    error = task.get("error") or {}
    fields = [
        ("id", task.get("id")),
        ("name", task.get("taskName")),
        ("status", task.get("status")),
        ("queue", task.get("queue")),
        ("priority", task.get("priority")),
        ("attempts", _attempts(task)),
        ("run at", _when(task.get("runAt"))),
        ("created", _when(task.get("createdAt"))),
        ("started", _when(task.get("startedAt"))),
        ("finished", _when(task.get("finishedAt"))),
        ("worker", task.get("workerId")),
        ("payload", _value(task.get("payload"))),
        ("result", _value(task.get("result"))),
        ("progress", _value(task.get("progress"))),
        ("error", f"{error.get('type')}: {error.get('message')}" if error else None),
    ]
    _out("\n".join(f"{label + ':':<10}{value}" for label, value in fields if value is not None))
    if error.get("traceback"):
        _out("traceback:\n  " + "\n  ".join(str(error["traceback"]).splitlines()))


def _stats_text(stats: dict[str, Any]) -> str:
    queues = stats.get("queues") or {}
    rows = [
        [name, *(str(counts.get(status, 0)) for status in COUNTS), _yes(counts.get("paused"))]
        for name, counts in sorted(queues.items())
    ]
    rows.append(["(all)", *(str(stats.get(status, 0)) for status in COUNTS), ""])
    table = _table(["QUEUE", *(status.upper() for status in COUNTS), "PAUSED"], rows)
    done = stats.get("throughput") or {}
    minute, hour = done.get("lastMinute", 0), done.get("lastHour", 0)
    return f"{table}\nthroughput: {minute} last minute, {hour} last hour"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [headers, *rows] if headers else [*rows]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _attempts(task: dict[str, Any]) -> str | None:
    if "attempts" not in task:
        return None
    return f"{task['attempts']}/{task.get('maxAttempts', '?')}"


def _when(moment: Any) -> str | None:
    """ISO 8601 UTC to 'YYYY-MM-DD HH:MM:SS' (still UTC): the column stays narrow."""
    return None if moment is None else str(moment)[:19].replace("T", " ")


def _value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _report(exc: ConveyorError, subject: str = "") -> None:
    _err(f"{subject}: {exc.detail}" if subject else exc.detail)
    for name, message in exc.fields.items():
        sys.stderr.write(f"  {name}: {message}\n")
    if isinstance(exc, Unauthorized):
        sys.stderr.write("  (give an API key with --api-key or CONVEYOR_API_KEY)\n")
    if isinstance(exc, TooManyRequests) and exc.retry_after_s is not None:
        sys.stderr.write(f"  (nothing was stored; try again in {exc.retry_after_s:g} s)\n")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"conveyor: {text}\n")
