"""Secrets out of log lines: credential fields by name, and credential text wherever it hides."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from infrastructure.settings import Settings

REDACTED = "[REDACTED]"

# Field and header names whose values are credentials, compared lower-case with `_` as `-`
# (a keyword argument cannot hold a dash: `x_api_key=` is the header `X-API-Key`).
SENSITIVE_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "password",
    }
)

# A shorter configured secret is not searched for in text: it would blank out ordinary
# words. Its header and field are still redacted by name.
MIN_SECRET_LENGTH = 8
_MAX_DEPTH = 32  # an event nested deeper than any real one is cut, not walked forever
_PRIMITIVES = (int, float, bool, type(None))

_HEADER_NAMES = (
    r"proxy[-_]authorization|authorization|x[-_]api[-_]key|api[-_]key|set[-_]cookie|cookie"
)
_QUOTED = r"'(?:[^'\\\r\n]|\\.)*'|\"(?:[^\"\\\r\n]|\\.)*\""
# A header name, what joins it to its value in a message (`: `, `=`), a repr of a dict or of
# a header list (`': '`, `', b'`) or JSON (`": "`), then the value: quoted where the quote
# closes the item (a quote inside the value does not end it early), else the rest of the
# line (a Cookie holds `;` and spaces, an Authorization value a space).
_HEADER = re.compile(
    rf"(?<![\w-])(?P<name>{_HEADER_NAMES})"
    rf"(?P<join>(?:['\"]\s*[:,]|\s*[:=])\s*(?:b(?=['\"]))?)"
    rf"(?P<value>(?:{_QUOTED})(?=\s*[,)\]}}]|\s*$)|[^\r\n]*)",
    re.IGNORECASE | re.MULTILINE,
)
# Bearer, not Basic: "basic" is an everyday word, and Conveyor's keys travel as Bearer tokens.
_BEARER = re.compile(r"(?<![\w-])(?P<scheme>bearer)\s+\S+", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE)
# A word every pattern above needs: the text of nearly every line quotes none of them, and
# looking for plain words in its lower case costs a fraction of running the patterns.
_HINTS = ("authorization", "api-key", "api_key", "cookie", "bearer", "://")


class Redactor:
    """A structlog processor that masks credentials at any depth of an event.

    By name: the value of any field or header in `SENSITIVE_NAMES`, in a dict, a mapping or
    a list of (name, value) pairs, names and values as str or bytes, in any case. In text
    (every other string, and the repr of any other object): the configured `secrets`,
    Bearer tokens, `Authorization: ...`-shaped headers and URL passwords, so an exception
    message or a repr that quotes a header does not carry it out either.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found = {secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(found, key=len, reverse=True)

    def __call__(self, _: Any, __: str, event: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self._field(name, value, 0) for name, value in event.items()}

    def scrub(self, text: str) -> str:
        """`text` with every credential it quotes masked."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        lowered = text.lower()
        if not any(hint in lowered for hint in _HINTS):
            return text
        # Headers first: their pattern keeps a repr's quotes, which a bare token would eat.
        text = _HEADER.sub(_mask_header, text)
        text = _BEARER.sub(rf"\g<scheme> {REDACTED}", text)
        return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)

    def _field(self, name: object, value: Any, depth: int) -> Any:
        return _masked(value) if is_sensitive(name) else self._value(value, depth)

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):  # the common case first: most fields are text
            return self.scrub(value)
        if isinstance(value, _PRIMITIVES):
            return value
        if depth > _MAX_DEPTH:
            return REDACTED
        if isinstance(value, Mapping):
            return {name: self._field(name, item, depth + 1) for name, item in value.items()}
        if isinstance(value, list | tuple):
            return self._sequence(value, depth)
        return self._text(value)

    def _text(self, value: object) -> str | bytes:
        if isinstance(value, bytes):
            text = value.decode(errors="surrogateescape")
            return self.scrub(text).encode(errors="surrogateescape")
        # What a renderer would print for any other object is its repr: scrub that instead.
        return self.scrub(repr(value))

    def _sequence(self, items: list[Any] | tuple[Any, ...], depth: int) -> Any:
        if len(items) == 2 and is_sensitive(items[0]):  # a (name, value) header pair
            pair = [items[0], _masked(items[1])]
            return pair if isinstance(items, list) else tuple(pair)
        scrubbed = [self._value(item, depth + 1) for item in items]
        return scrubbed if isinstance(items, list) else tuple(scrubbed)


def is_sensitive(name: object) -> bool:
    return isinstance(name, str | bytes) and _sensitive_name(name)


@lru_cache(maxsize=4096)  # a process logs the same few field names over and over
def _sensitive_name(name: str | bytes) -> bool:
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return text.strip().lower().replace("_", "-") in SENSITIVE_NAMES


def secrets_in(settings: Settings) -> list[str]:
    """The credentials a process's configuration holds, for `Redactor` to search log text for:
    the keys of API_KEYS (each sits between its entry's first and last colon, as
    `ApiKeys.parse` reads it) and the SMTP password."""
    keys = [entry.partition(":")[2].rpartition(":")[0] for entry in settings.api_keys.split(",")]
    return [secret for secret in [*keys, settings.smtp_password or ""] if secret]


def _masked(value: Any) -> Any:
    return REDACTED.encode() if isinstance(value, bytes) else REDACTED


def _mask_header(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['name']}{match['join']}{quote}{REDACTED}{quote}"
