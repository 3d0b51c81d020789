"""New task and batch ids: ULIDs (a millisecond timestamp and 80 random bits, in Crockford's
base32), so ids sort by creation time and an id prefix is a time range."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two characters: a ULID is 13 lookups, not 26 shifts.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_SHIFTS = range(120, -1, -10)  # 130 bits (two leading zero bits), 10 at a time


def new_ulid() -> str:
    """A ULID (26 characters). Built here because a bulk enqueue makes thousands of them,
    and the python-ulid package took 9 us for each."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
