"""The redaction processor: credentials masked by name at any depth, and in any text."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from infrastructure.redaction import REDACTED, Redactor, secrets_in
from infrastructure.settings import Settings

KEY = "k3y-Sup3rSecret-0123456789"


def redact(secrets: tuple[str, ...] = (), **event: Any) -> dict[str, Any]:
    return Redactor(secrets)(None, "info", event)


def test_headers_are_masked_by_name_at_any_depth() -> None:
    event = redact(
        request={"scope": {"headers": {"Authorization": f"Bearer {KEY}", "Accept": "*/*"}}}
    )
    assert event == {
        "request": {"scope": {"headers": {"Authorization": REDACTED, "Accept": "*/*"}}}
    }


def test_every_credential_header_is_masked_in_any_case() -> None:
    names = ["authorization", "PROXY-AUTHORIZATION", "X-Api-Key", "Cookie", "set-cookie"]
    event = redact(headers={name: KEY for name in names})
    assert event["headers"] == {name: REDACTED for name in names}


def test_a_header_list_of_bytes_pairs_keeps_its_shape() -> None:
    headers = [(b"X-API-KEY", KEY.encode()), (b"accept", b"*/*"), [b"cookie", b"s=" + KEY.encode()]]
    assert redact(headers=headers)["headers"] == [
        (b"X-API-KEY", REDACTED.encode()),
        (b"accept", b"*/*"),
        [b"cookie", REDACTED.encode()],
    ]


def test_a_header_list_of_str_pairs_in_a_tuple() -> None:
    headers = (("Set-Cookie", f"session={KEY}; HttpOnly"), ("Vary", "Origin"))
    assert redact(scope={"headers": headers})["scope"]["headers"] == (
        ("Set-Cookie", REDACTED),
        ("Vary", "Origin"),
    )


def test_a_field_named_like_a_header_is_masked_whatever_its_value() -> None:
    event = redact(x_api_key=KEY, password=["a", "b"], cookie=None, authorization=b"x")
    assert event == {"x_api_key": REDACTED, "password": REDACTED, "cookie": REDACTED,
                     "authorization": REDACTED.encode()}  # fmt: skip


def test_other_fields_pass_unchanged() -> None:
    event = {"event": "api.auth_enabled", "keys": {"ops": "admin"}, "n": 3, "ok": True}
    assert redact(**event) == event


def test_text_that_quotes_a_credential_is_scrubbed() -> None:
    scrub = Redactor().scrub
    assert scrub(f"refused Authorization: Bearer {KEY}") == f"refused Authorization: {REDACTED}"
    assert scrub(f"token was bearer {KEY}.") == f"token was bearer {REDACTED}"
    assert scrub(f"x-api-key={KEY} from 10.0.0.1") == f"x-api-key={REDACTED}"
    assert scrub(f"Cookie: a=1; s={KEY}") == f"Cookie: {REDACTED}"
    assert scrub(f"redis://:{KEY}@cache:6379/0") == f"redis://:{REDACTED}@cache:6379/0"
    for prose in ["no credentials here: 42", "basic check failed", "http://api:3000/ready"]:
        assert scrub(prose) == prose


def test_reprs_and_json_that_quote_a_header_are_scrubbed() -> None:
    scrub = Redactor().scrub
    headers = {"accept": "*/*", "x-api-key": KEY}
    assert scrub(repr(headers)) == f"{{'accept': '*/*', 'x-api-key': '{REDACTED}'}}"
    assert scrub(json.dumps(headers)) == f'{{"accept": "*/*", "x-api-key": "{REDACTED}"}}'
    pairs = [(b"cookie", f"s={KEY}".encode()), (b"host", b"api")]
    assert scrub(repr(pairs)) == f"[(b'cookie', b'{REDACTED}'), (b'host', b'api')]"


def test_configured_secrets_are_masked_in_any_text_and_bytes() -> None:
    event = redact((KEY, "short"), message=f"saw {KEY} twice: {KEY}", raw=KEY.encode() + b"\xff")
    assert event == {"message": f"saw {REDACTED} twice: {REDACTED}", "raw": b"[REDACTED]\xff"}
    # A secret too short to search for would blank out ordinary words.
    assert redact(("short",), message="a short note") == {"message": "a short note"}


def test_any_other_object_is_logged_as_its_scrubbed_repr() -> None:
    error = PermissionError(f"header Authorization: Bearer {KEY}")
    event = redact(error=error)
    assert event == {"error": f"PermissionError('header Authorization: {REDACTED}"}
    assert KEY not in str(event)


def renderings(key: str) -> list[str]:
    """The usual ways a message, a repr or JSON shows a request's credential headers."""
    headers = {"authorization": f"Bearer {key}", "x-api-key": key, "cookie": f"s={key}"}
    return [
        repr(headers),
        json.dumps(headers),
        repr([(name.encode(), value.encode()) for name, value in headers.items()]),
        "\n".join(f"{name}: {value}" for name, value in headers.items()),
    ]


# Keys of any printable characters but whitespace; quotes and backslashes included.
PRINTABLE = string.ascii_letters + string.digits + string.punctuation
KEYS = st.text(st.sampled_from(PRINTABLE), min_size=8)


@given(KEYS)
def test_no_key_survives_any_usual_rendering_of_its_header(key: str) -> None:
    # A "key" that is a piece of the rendering itself (`x-api-key`) proves nothing.
    assume(key not in REDACTED and all(key not in text for text in renderings("")))
    for text in renderings(key):
        assert key not in Redactor().scrub(text)


def test_secrets_in_settings_are_the_api_keys_and_the_smtp_password() -> None:
    settings = Settings(api_keys=" ops:a:b:c:admin, ci:ci-key:producer", smtp_password="pw")
    assert secrets_in(settings) == ["a:b:c", "ci-key", "pw"]
    assert secrets_in(Settings(api_keys="", smtp_password=None)) == []
