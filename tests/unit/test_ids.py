"""New ids are ULIDs: 26 characters of Crockford's base32, a millisecond timestamp first."""

from __future__ import annotations

import time

from infrastructure.ids import new_ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def value_of(ulid: str) -> int:
    value = 0
    for char in ulid:
        value = value << 5 | CROCKFORD.index(char)
    return value


def test_a_new_id_is_a_ulid_of_now() -> None:
    before = time.time_ns() // 1_000_000
    ulid = new_ulid()
    after = time.time_ns() // 1_000_000

    assert len(ulid) == 26
    assert set(ulid) <= set(CROCKFORD)
    assert ulid[0] in "01234567"  # 128 bits: the first character holds 3 of them
    assert before <= value_of(ulid) >> 80 <= after


def test_ids_are_unique_and_sort_by_time() -> None:
    first = [new_ulid() for _ in range(1_000)]
    last_ms = value_of(max(first)) >> 80
    while time.time_ns() // 1_000_000 <= last_ms:  # until the clock reaches the next ms
        pass
    later = new_ulid()

    assert len(set(first)) == 1_000
    assert all(ulid < later for ulid in first)
