"""The limits and lifetimes the Lua scripts apply, passed to them as ARGV from here alone
(the in-memory fakes of the tests import them too, so both keep the same bounds)."""

from __future__ import annotations

PROMOTE_LIMIT = 1_000  # due delayed tasks a claim promotes to waiting per call
DURATIONS_KEPT = 1_000  # recent durations kept per task type, for the p50/p95 of stats
FINISHED_COUNTER_TTL_MS = 2 * 3_600_000  # a minute's "finished" and "failed" counters live 2 h
BATCH_TTL_MS = 7 * 24 * 3_600_000  # how long a bulk enqueue's batch can be gathered
