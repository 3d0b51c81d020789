"""GC pauses of a process, for bench_listing.py --gc-log (not loaded otherwise).

bench_listing.py puts this folder on the API process's PYTHONPATH, so Python imports this
module at start-up. It times every garbage-collector pass and writes one JSON line to
stderr for each generation-2 pass and for any pass over 2 ms:
{"event": "bench.gc", "generation": 2, "ms": 31.4, "t": <time.time() at the end>}.

With BENCH_GC_FREEZE_AFTER_S=<s> (bench_listing.py --gc-freeze) it also calls gc.freeze()
that long after start-up, from a thread: an experiment, what gen-2 passes cost once the
objects of start-up (modules, the app, its models) are out of the collector's way.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from typing import Any

_started = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _started[0]) * 1000
    if info["generation"] == 2 or ms > 2:
        line = {"event": "bench.gc", "generation": info["generation"], "ms": round(ms, 3)}
        line["t"] = time.time()
        sys.stderr.write(json.dumps(line) + "\n")


gc.callbacks.append(_on_gc)


def _freeze_later(after_s: float) -> None:
    time.sleep(after_s)
    gc.collect()
    gc.freeze()
    line = {"event": "bench.gc_frozen", "objects": gc.get_freeze_count(), "t": time.time()}
    sys.stderr.write(json.dumps(line) + "\n")


if os.environ.get("BENCH_GC_FREEZE_AFTER_S"):
    delay = float(os.environ["BENCH_GC_FREEZE_AFTER_S"])
    threading.Thread(target=_freeze_later, args=(delay,), daemon=True).start()
