"""send_email against a real SMTP server (aiosmtpd) on localhost."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller

from application.handlers import NonRetryableError, TaskContext
from application.registry import TaskRegistry
from domain.errors import InvalidTask
from infrastructure.tasks.email import SmtpConfig, email_tasks

SENDER = "conveyor@example.com"


class Inbox:
    """An aiosmtpd handler that keeps what it accepts and refuses chosen recipients."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.raw: list[bytes] = []
        self.refusals: dict[str, str] = {}

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refusals:
            return self.refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.raw.append(envelope.original_content)
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    debug = info = warning = error = exception = _record


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp_port(inbox: Inbox) -> Iterator[int]:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def ctx(log: RecordingLog) -> TaskContext:
    return TaskContext(
        task_id="t1", queue="default", attempt=1, fence=1, log=log, on_progress=print
    )


async def send(port: int, payload: dict[str, Any], ctx: TaskContext) -> Any:
    config = SmtpConfig(host="127.0.0.1", port=port, sender=SENDER, timeout_s=5)
    registry = TaskRegistry()
    registry.add(*email_tasks(config))
    task_type = registry.get("send_email")
    return await task_type.handler(registry.parse(task_type, payload), ctx)


async def test_the_message_arrives_with_its_subject_and_body(
    inbox: Inbox, smtp_port: int, ctx: TaskContext, log: RecordingLog
) -> None:
    payload = {"to": "user@example.com", "subject": "Héllo", "message": "Line one\nLine two"}
    result = await send(smtp_port, payload, ctx)

    [message] = inbox.messages
    assert inbox.envelopes == [(SENDER, ["user@example.com"])]
    assert message["Subject"] == "Héllo"
    assert message["From"] == SENDER
    assert message["To"] == "user@example.com"
    assert message.get_content().splitlines() == ["Line one", "Line two"]
    assert result == {"to": "user@example.com", "messageId": message["Message-ID"]}
    assert result["messageId"].endswith("@example.com>")
    assert [event for event, _ in log.events] == ["email.sent"]


async def test_a_permanently_refused_recipient_fails_for_good(
    inbox: Inbox, smtp_port: int, ctx: TaskContext
) -> None:
    inbox.refusals["nobody@example.com"] = "550 5.1.1 No such user"
    payload = {"to": "nobody@example.com", "subject": "Hi", "message": "?"}
    with pytest.raises(NonRetryableError, match="550"):
        await send(smtp_port, payload, ctx)
    assert inbox.messages == []


async def test_a_temporarily_refused_recipient_stays_retryable(
    inbox: Inbox, smtp_port: int, ctx: TaskContext
) -> None:
    inbox.refusals["busy@example.com"] = "451 4.3.0 Try again later"
    payload = {"to": "busy@example.com", "subject": "Hi", "message": "?"}
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
        await send(smtp_port, payload, ctx)
    assert not isinstance(caught.value, NonRetryableError)


async def test_a_refused_connection_stays_retryable(ctx: TaskContext) -> None:
    payload = {"to": "user@example.com", "subject": "Hi", "message": "?"}
    with pytest.raises(aiosmtplib.SMTPConnectError) as caught:
        await send(free_port(), payload, ctx)
    assert not isinstance(caught.value, NonRetryableError)


async def test_a_non_ascii_subject_goes_out_encoded_and_reads_back_the_same(
    inbox: Inbox, smtp_port: int, ctx: TaskContext
) -> None:
    payload = {"to": "user@example.com", "subject": "Café ☕ naïve", "message": "Grüße"}
    await send(smtp_port, payload, ctx)

    [message], [raw] = inbox.messages, inbox.raw
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.isascii()  # RFC 2047 encoded words, not raw UTF-8, in the header
    [subject_line] = [line for line in head.split(b"\r\n") if line.startswith(b"Subject:")]
    assert b"=?utf-8?" in subject_line
    assert message["Subject"] == "Café ☕ naïve"
    assert message.get_content().splitlines() == ["Grüße"]


async def test_a_body_shaped_like_headers_and_smtp_commands_stays_one_body(
    inbox: Inbox, smtp_port: int, ctx: TaskContext
) -> None:
    body = (
        "Bcc: evil@example.net\r\nSubject: forged\r\n\r\n"
        "\r\n.\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<evil@example.net>\r\n"
        "DATA\r\nSubject: smuggled\r\n\r\nsecond message\r\n.\r\n"
        "\n.\n"  # bare-LF variants of the end of DATA (SMTP smuggling)
    )
    payload = {"to": "user@example.com", "subject": "Hi", "message": body}
    await send(smtp_port, payload, ctx)

    [message] = inbox.messages
    assert inbox.envelopes == [(SENDER, ["user@example.com"])]
    assert sorted(message.keys()) == sorted(
        ["From", "To", "Subject", "Date", "Message-ID", "Content-Type",
         "Content-Transfer-Encoding", "MIME-Version"]
    )  # fmt: skip
    assert message["Subject"] == "Hi"
    text = message.get_content()
    assert "Bcc: evil@example.net" in text
    assert "second message" in text


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"subject": "Hi", "message": "?"}, "payload.to"),
        ({"to": "a@b.com, c@d.com", "subject": "Hi", "message": "?"}, "payload.to"),
        ({"to": "a@b.com", "subject": "Hi\r\nBcc: c@d.com", "message": "?"}, "payload.subject"),
        (
            {"to": "a@b.com", "subject": "=?utf-8?q?Hi=0D=0ABcc:_c@d.com?=", "message": "?"},
            "payload.subject",
        ),
        ({"to": "=?utf-8?q?a=2C_c=40d.com?=@b.com", "subject": "Hi", "message": "?"}, "payload.to"),
        ({"to": "a@b.com", "subject": "Hi"}, "payload.message"),
        ({"to": "a@b.com", "subject": "Hi", "message": "?", "cc": "c@d.com"}, "payload.cc"),
    ],
)
def test_invalid_payloads_are_refused_before_anything_is_sent(
    payload: dict[str, Any], field: str
) -> None:
    registry = TaskRegistry()
    registry.add(*email_tasks(SmtpConfig()))
    with pytest.raises(InvalidTask) as caught:
        registry.parse(registry.get("send_email"), payload)
    assert caught.value.field == field


def test_the_config_keeps_the_password_out_of_its_repr() -> None:
    assert "hunter2" not in repr(SmtpConfig(username="me", password="hunter2"))
