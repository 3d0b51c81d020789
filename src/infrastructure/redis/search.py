"""The words a task is found by: its name's and its string payload values' tokens."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

_WORD = re.compile(r"[^\W_]{2,32}")  # letters and digits; `_` and punctuation split words
_MAX_TOKENS = 24  # per task: the index grows with every token, so a payload gets a budget
_MAX_STRINGS = 64  # string values looked at per payload


def task_tokens(name: str, payload: Any) -> list[str]:
    """Distinct lowercase words of the task name and of its payload's string values."""
    found: dict[str, None] = dict.fromkeys(_name_words(name))
    for text in _strings(payload, _MAX_STRINGS):
        found.update(dict.fromkeys(words(text)))
        if len(found) >= _MAX_TOKENS:
            break
    return list(found)[:_MAX_TOKENS]


def words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


@functools.lru_cache(maxsize=1024)
def _name_words(name: str) -> tuple[str, ...]:
    """A task type's words: the few names of a deployment, worked out once each."""
    return tuple(words(name))


def _strings(value: Any, budget: int) -> Iterator[str]:
    stack = [value]
    while stack and budget > 0:
        item = stack.pop()
        if isinstance(item, str):
            budget -= 1
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
