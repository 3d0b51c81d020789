"""send_email's header values: no route to a second header or recipient (no I/O)."""

from __future__ import annotations

import base64
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from random import Random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.handlers import NonRetryableError, TaskContext
from application.registry import TaskRegistry
from application.running.execution import Execution
from application.running.process_task import ProcessPolicy, ProcessTask
from domain.errors import InvalidTask
from domain.task import Task, TaskStatus
from infrastructure.tasks.email import SendEmail, SmtpConfig, _compose, _verify_header, email_tasks
from tests.fakes import InMemoryLockService, InMemoryTaskQueue, ManualClock, RecordingLog

# Every character str.splitlines() ends a line on, which the email package also does.
LINE_BREAKS = ["\r", "\n", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
OTHER_CONTROLS = ["\x00", "\x1b", "\x7f", "\x9b", "\ud800"]
INJECTED = "Bcc: evil@example.net"
GOOD = {"to": "user@example.com", "subject": "Hello", "message": "Hi there"}

# Encoded words the email package decodes into a line break, in the forms it accepts.
ENCODED_WORDS = [
    "=?utf-8?q?Hi=0D=0ABcc:_evil@example.net?=",
    "=?UTF-8?Q?Hi=0d=0aBcc:_evil@example.net?=",
    "=?utf-8?b?SGkNCkJjYzogZXZpbEBleGFtcGxlLm5ldA==?=",
    "=?Utf-8?B?SGkKQmNjOiBldmlsQGV4YW1wbGUubmV0?=",
    "=?iso-8859-1?q?Hi=0ABcc:_evil@example.net?=",
    "=?us-ascii?q?Hi=0DBcc:_evil@example.net?=",
    "=?utf-8*en?q?Hi=0D=0ABcc:_evil@example.net?=",  # RFC 2231 language tag
    "=?utf-8?q?Hi=0D=0ABcc: evil@example.net?=",  # whitespace inside: decoded all the same
    "=?utf-8?q?Hi=C2=85Bcc:_evil@example.net?=",  # NEL, a line break to splitlines()
    "=?utf-8?q?Hi=E2=80=A8Bcc:_evil@example.net?=",  # U+2028
    "=?x-unknown?q?Hi=0ABcc:_evil@example.net?=",
]


def registry(port: int = 9) -> TaskRegistry:
    registry = TaskRegistry()
    registry.add(*email_tasks(SmtpConfig(host="127.0.0.1", port=port, timeout_s=1)))
    return registry


def refused_field(**changes: Any) -> str:
    known = registry()
    with pytest.raises(InvalidTask) as caught:
        known.parse(known.get("send_email"), {**GOOD, **changes})
    return caught.value.field


def accepted(**changes: Any) -> bool:
    try:
        SendEmail.model_validate({**GOOD, **changes})
    except ValueError:
        return False
    return True


def decodes_to_a_line_break(header_value: str) -> bool:
    """What the email package reads in a header value: the danger the model stops."""
    message = EmailMessage()
    message["Subject"] = header_value
    return len(str(message["Subject"]).splitlines()) > 1


# --- line breaks and controls -------------------------------------------------------------


@pytest.mark.parametrize("char", LINE_BREAKS + OTHER_CONTROLS)
def test_a_subject_with_a_line_break_or_control_is_refused(char: str) -> None:
    assert refused_field(subject=f"Hi{char}{INJECTED}") == "payload.subject"


@pytest.mark.parametrize("char", LINE_BREAKS + OTHER_CONTROLS)
def test_an_address_with_a_line_break_or_control_is_refused(char: str) -> None:
    assert refused_field(to=f"user@example.com{char}{INJECTED}") == "payload.to"
    assert refused_field(to=f"us{char}er@example.com") == "payload.to"


def test_every_character_that_splitlines_breaks_on_is_refused() -> None:
    # Not a hand-kept list: whatever this interpreter's str.splitlines() breaks on.
    breaks = [
        chr(point)
        for point in range(sys.maxunicode + 1)
        if not 0xD800 <= point <= 0xDFFF and len(f"a{chr(point)}b".splitlines()) > 1
    ]
    assert len(breaks) >= len(LINE_BREAKS) - 1  # CR LF is two of them
    for char in breaks:
        assert not accepted(subject=f"a{char}b"), repr(char)
        assert not accepted(to=f"a{char}b@example.com"), repr(char)


def test_a_tab_and_non_ascii_text_are_fine_in_a_subject() -> None:
    assert accepted(subject="Café ☕ naïve\tTab, 日本語, עברית, 👨\u200d👩\u200d👧")


# --- RFC 2047 encoded words ------------------------------------------------------------------


@pytest.mark.parametrize("word", ENCODED_WORDS)
def test_the_encoded_words_under_test_really_decode_to_a_line_break(word: str) -> None:
    assert decodes_to_a_line_break(word)


@pytest.mark.parametrize("word", ENCODED_WORDS)
@pytest.mark.parametrize("around", ["{}", "Hello {} there", "Hello{}", "Café {}"])
def test_an_encoded_word_in_the_subject_is_refused(word: str, around: str) -> None:
    assert refused_field(subject=around.format(word)) == "payload.subject"


@pytest.mark.parametrize(
    "address",
    [
        "=?utf-8?q?a=0D=0ABcc=3A_evil=40example.net?=@example.com",
        # Parsed as one quoted local part but written bare: `To: a, evil@...` is two.
        "=?utf-8?q?a=2C_evil=40example.net?=@example.com",
        "user@example.com=?utf-8?b?LGV2aWxAZXhhbXBsZS5uZXQ=?=",
        "a=?x?=@example.com",
    ],
)
def test_an_encoded_word_in_the_address_is_refused(address: str) -> None:
    assert refused_field(to=address) == "payload.to"


def _q_encoded(raw: bytes, lower: bool) -> str:
    def char(byte: int) -> str:
        if chr(byte).isascii() and chr(byte).isalnum():
            return chr(byte)
        return f"={byte:02x}" if lower else f"={byte:02X}"

    return "".join(char(byte) for byte in raw)


@st.composite
def encoded_words(draw: st.DrawFn) -> str:
    """An encoded word in any charset, q or b, any case, that decodes to a line break."""
    before = draw(st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=10))
    brk = draw(st.sampled_from(["\r\n", "\n", "\r", "\v", "\f", "\x1c", "\x85", "\u2028"]))
    raw = f"{before}{brk}{INJECTED}".encode()
    charset = draw(st.sampled_from(["utf-8", "UTF-8", "utf8", "latin-1", "iso-8859-15"]))
    if "\x85" in brk or "\u2028" in brk:
        charset = draw(st.sampled_from(["utf-8", "UTF-8", "utf8"]))  # else no line break
    if draw(st.booleans()):
        text, kind = base64.b64encode(raw).decode(), draw(st.sampled_from("bB"))
    else:
        text, kind = _q_encoded(raw, draw(st.booleans())), draw(st.sampled_from("qQ"))
    return f"=?{charset}?{kind}?{text}?="


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    word=encoded_words(),
    prefix=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=8),
)
def test_any_encoded_line_break_is_refused_in_subject_and_address(word: str, prefix: str) -> None:
    assert decodes_to_a_line_break(word)
    assert not accepted(subject=f"{prefix} {word}")
    assert not accepted(to=f"{word}@example.com")


def test_text_that_merely_holds_a_question_mark_and_equals_is_fine() -> None:
    assert accepted(subject="Is 1+1=? (yes: 2)")
    assert accepted(to="a=b?c@example.com")


# --- the recipient: one bare address ----------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "Bob <bob@example.com>",
        "<bob@example.com>",
        "bob@example.com, eve@example.net",
        "bob@example.com,eve@example.net",
        "bob@example.com;eve@example.net",
        "undisclosed: bob@example.com;",
        '"bob, eve"@example.com',
        "bob@example.com (Bob)",
        "bob@example.com ",
        " bob@example.com",
        "bob\xa0@example.com",  # a no-break space
        "bob\u200b@example.com",  # a zero-width space
        "bob@eve@example.com",
        ".bob@example.com",
        "bob.@example.com",
        "bo..b@example.com",
        "bob@example.com.",
        "bob@[127.0.0.1]",
        "bob\\@example.com",
        "bob",
        "",
    ],
)
def test_anything_but_one_bare_address_is_refused(address: str) -> None:
    assert refused_field(to=address) == "payload.to"


@pytest.mark.parametrize(
    "address",
    [
        "user@example.com",
        "first.last+tag@mail.example.co.uk",
        "o'brien@example.com",
        "#!$%&'*+-/=?^_`{}|~@example.com",
        "josé@example.com",
        "user@localhost",
    ],
)
def test_an_ordinary_address_is_accepted(address: str) -> None:
    assert accepted(to=address)


# --- what an accepted payload writes -------------------------------------------------------------


def written(payload: SendEmail) -> tuple[EmailMessage, EmailMessage]:
    """The composed message, and what a reader parses back from its bytes."""
    composed = _compose("conveyor@example.com", payload)
    smtp = policy.SMTP if payload.to.isascii() else policy.SMTPUTF8  # as aiosmtplib picks
    parsed = message_from_bytes(composed.as_bytes(policy=smtp), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return composed, parsed


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.text(max_size=300), body=st.text(max_size=300))
def test_an_accepted_subject_or_body_never_adds_a_header(subject: str, body: str) -> None:
    try:
        payload = SendEmail(to="user@example.com", subject=subject, message=body)
    except ValueError:
        return
    composed, parsed = written(payload)
    assert parsed.keys() == composed.keys()
    # A header never keeps leading blanks; the rest reads back as sent.
    assert str(parsed["Subject"]) == subject.lstrip(" \t")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    address=st.one_of(
        st.emails(),
        st.text(max_size=40).map(lambda local: f"{local}@example.com"),
        st.from_regex(r"[^@]{1,20}@[a-z.-]{1,20}", fullmatch=True),
    )
)
def test_an_accepted_address_is_one_recipient_and_nothing_else(address: str) -> None:
    try:
        payload = SendEmail(to=address, subject="Hi", message="Hi")
    except ValueError:
        return
    composed, parsed = written(payload)
    assert parsed.keys() == composed.keys()
    assert len(parsed["To"].addresses) == 1
    assert str(parsed["To"]) == address


def test_a_body_shaped_like_headers_stays_in_the_body() -> None:
    body = f"{INJECTED}\r\nSubject: forged\r\n\r\nMAIL FROM:<x@example.net>\r\n.\r\nend"
    composed, parsed = written(SendEmail(to="user@example.com", subject="Hi", message=body))
    assert parsed.keys() == composed.keys()
    assert "Bcc" not in parsed
    assert parsed["Subject"] == "Hi"
    content = parsed.get_body()
    assert content is not None
    assert INJECTED in content.get_content()


# --- run time: the handler refuses again -------------------------------------------------------


def context() -> TaskContext:
    return TaskContext(
        task_id="t1", queue="default", attempt=1, fence=1, log=RecordingLog(), on_progress=print
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", ENCODED_WORDS[0]),
        ("subject", "Hi\u2028Bcc: evil@example.net"),
        ("subject", "Hi\r\nBcc: evil@example.net"),
        ("to", "=?utf-8?q?a=2C_evil=40example.net?=@example.com"),
        ("to", "user@example.com, evil@example.net"),
    ],
)
async def test_the_handler_refuses_a_payload_that_skipped_validation(
    field: str, value: str
) -> None:
    # model_construct validates nothing, as a payload stored before these rules was not.
    payload = SendEmail.model_construct(**{**GOOD, field: value})
    handler = registry().get("send_email").handler
    # Port 9 (discard) is closed here: reaching the network would be a retryable error.
    with pytest.raises(NonRetryableError, match=f"payload.{field}"):
        await handler(payload, context())


def test_a_header_written_with_a_line_break_is_caught_at_the_last_step() -> None:
    message = EmailMessage()
    message["To"] = "user@example.com"
    message["Subject"] = ENCODED_WORDS[0]  # bypasses the model: the email package's view
    message.set_content("Hi")
    with pytest.raises(NonRetryableError):
        _verify_header(message)


def test_a_well_formed_message_passes_the_last_step() -> None:
    message, _ = written(SendEmail(to="user@example.com", subject="x" * 300, message="Hi"))
    _verify_header(message)  # a long subject is folded: still one field


async def test_a_task_stored_before_these_rules_fails_for_good_without_sending() -> None:
    clock = ManualClock()
    queue = InMemoryTaskQueue(60_000, clock)
    stored = Task(
        id="old", name="send_email", created_at=clock(), run_at=clock(),
        payload={**GOOD, "subject": ENCODED_WORDS[0]},
    )  # fmt: skip
    await queue.enqueue([stored])
    batch = await queue.claim("default", "w1", 1, 30_000, clock())
    process = ProcessTask(
        queue=queue, locks=InMemoryLockService(clock), registry=registry(),
        policy=ProcessPolicy(lock_ttl_ms=30_000), clock=clock, log=RecordingLog(),
        rng=Random(1),
    )  # fmt: skip
    await process.execute(Execution(batch.tasks[0]))
    outcome = await queue.get("old")
    assert outcome.status is TaskStatus.FAILED
    assert outcome.max_attempts == 3  # failed at once, not retried
    assert outcome.error is not None
    assert "payload.subject" in outcome.error.message
