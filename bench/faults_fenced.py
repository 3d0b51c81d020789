"""The fault harness (../shared/bench/faults/run.py) with Conveyor's body guarded by a fenced
write (fault_body.py), and each task completed more than once attributed to its cause.

    ../shared/bench/.venv/bin/python bench/faults_fenced.py --systems conveyor,bullmq,celery

Arguments go to the harness unchanged. Conveyor runs from bench/faults_bin/conveyor, which
loads bench/fault_body.py instead of the harness's body; the other systems run as in the
harness. Added to each result, `attribution`: for every key whose body ran to the end more
than once, who finished it first: a worker SIGKILLed later (at-least-once: it died between
its body's last write and its outcome), the frozen worker (frozen between the two), or
another; and how many a thawed worker finished after the thaw. The same for the keys started
more than once (`attribution_starts`): who started them first. For Conveyor also the fenced
record (`conveyor:{fault}:fx:done`): how many keys have more than one entry, the same way.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "..", "..", "shared", "bench", "faults", "run.py")
FENCED_DONE = "conveyor:{fault}:fx:done"

os.environ.setdefault("FAULT_CONVEYOR_BIN", os.path.join(HERE, "faults_bin"))
_spec = importlib.util.spec_from_file_location("fault_run", HARNESS)
assert _spec is not None
assert _spec.loader is not None
run: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)

seen: dict[str, Any] = {}  # the last lists read, as the harness read them for its counts
killed: set[int] = set()  # pids of the workers SIGKILLed during the current run
_tags, _kill, _stop, _run_one = run.tags, run.Worker.kill, run.Worker.stop, run.run_one


def tags(r: Any, key: str) -> list[tuple[str, ...]]:
    seen[key] = _tags(r, key)
    if key == run.DONE:
        seen["fenced"] = [tuple(x.decode().split()) for x in r.lrange(FENCED_DONE, 0, -1)]
    return seen[key]  # type: ignore[no-any-return]


def kill(self: Any) -> None:
    if not getattr(self, "stopping", False):
        killed.update(self.pids())
    _kill(self)


def stop(self: Any) -> None:
    self.stopping = True
    _stop(self)


def attribute(records: list[tuple[str, ...]], frozen: set[int]) -> dict[str, int]:
    """Keys recorded more than once, by who recorded them first (and whether the frozen
    worker recorded them again after that)."""
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for key, pid in records:
        by_key[key].append(int(pid))
    causes: collections.Counter[str] = collections.Counter()
    for pids in by_key.values():
        if len(pids) < 2:
            continue
        causes[_first(pids[0], frozen)] += 1
        causes["then_by_frozen_worker"] += any(p in frozen for p in pids[1:])
    return {"keys": len(by_key), "keys_gt1": sum(len(p) > 1 for p in by_key.values()),
            **causes}  # fmt: skip


def _first(pid: int, frozen: set[int]) -> str:
    if pid in killed:
        return "first_by_killed_worker"
    return "first_by_frozen_worker" if pid in frozen else "first_by_other"


def run_one(name: str, r: Any, *args: Any) -> dict[str, Any]:
    killed.clear()
    seen.clear()
    res: dict[str, Any] = _run_one(name, r, *args)
    frozen = set(res["frozen"]["pids"])
    res["attribution"] = attribute(seen.get(run.DONE, []), frozen)
    res["attribution_starts"] = attribute(seen.get(run.STARTS, []), frozen)
    if name == "conveyor":
        res["attribution_fenced"] = attribute(seen.get("fenced", []), frozen)
    for part in ("attribution", "attribution_starts", "attribution_fenced"):
        print(name, part, res.get(part), flush=True)
    return res


run.tags, run.Worker.kill, run.Worker.stop, run.run_one = tags, kill, stop, run_one

if __name__ == "__main__":
    sys.exit(run.main())
