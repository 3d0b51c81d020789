"""How an API_KEYS entry reads, without the web stack (`conveyor up` reads it too)."""

from __future__ import annotations


def split_entry(entry: str) -> tuple[str, str, str]:
    """`name:key:role` as (name, key, role), unstripped; the key sits between the first and
    the last colon, so a key may itself hold colons. An entry without two colons has an
    empty key."""
    name, _, rest = entry.partition(":")
    key, _, role = rest.rpartition(":")
    return name, key, role
