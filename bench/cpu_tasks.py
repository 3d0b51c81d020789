"""Task types for bench_cpu_tasks.py: one CPU-bound body in two variants, on queue "bench".

- cpu_thread   executor "inline": a sync handler, so it runs in one of the worker's threads
               and takes turns with the worker's event loop (and the other threads) at the GIL
- cpu_process  executor "process": the same handler in one of the worker's child processes

The body counts the primes below `limit` by trial division in pure Python (no C helper
releases the GIL): a stand-in for parsing, hashing or image work written in Python.

Loaded by the `conveyor worker` that bench_cpu_tasks.py starts (CONVEYOR_TASK_MODULES=
cpu_tasks, bench/ on PYTHONPATH) and by its enqueue client.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from application.handlers import TaskContext
from application.registry import TaskType

QUEUE = "bench"


class Primes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(ge=0, le=10_000_000)


def count_primes(limit: int) -> int:
    found = 0
    for candidate in range(2, limit):
        divisor = 2
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                break
            divisor += 1
        else:
            found += 1
    return found


def primes(payload: Primes, ctx: TaskContext) -> int:
    return count_primes(payload.limit)


TASKS = [
    TaskType("cpu_thread", Primes, primes, queue=QUEUE),
    TaskType("cpu_process", Primes, primes, queue=QUEUE, executor="process"),
]
