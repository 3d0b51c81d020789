"""The built-in send_email task: one message over SMTP, sent with aiosmtplib."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.errors import MessageError
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Annotated, Literal

import aiosmtplib
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from application.tasks import NonRetryableError, TaskContext, TaskType

# RFC 5322 atext, plus any printable non-ASCII character (RFC 6531 addresses). Deliberately
# no display name, comment, quoted string, list or group: one bare address, so nothing in
# it can name a second recipient. The SMTP server has the last word on the address itself.
_ATOM = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])+"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")

# Anything the email package could decode as an RFC 2047 encoded word (`=?utf-8?q?...?=`,
# `?b?` too, any charset or case, even with whitespace inside): decoded, it may hold a
# line break, which CPython before 3.11.10 writes into the header as is.
_ENCODED_WORD = re.compile(r"=\?.*\?=", re.DOTALL)

# Every line break of str.splitlines() (CR, LF, VT, FF, FS, GS, RS, NEL, U+2028, U+2029;
# the email package splits headers the same way), the other C0 and C1 controls, DEL, and
# lone surrogates (they cannot be encoded). A tab is ordinary whitespace in a header.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

_FOLD = re.compile(rb"\r\n(?=[ \t])")  # a folded header line goes on after CRLF + blank


def _address(value: str) -> str:
    # isprintable() also refuses Unicode spaces and invisible format characters.
    if not (_ADDRESS.fullmatch(value) and value.isprintable()):
        raise ValueError("not a single bare email address such as user@example.com")
    return _no_encoded_word(value)


def _header_text(value: str) -> str:
    if found := _CONTROL.search(value):
        raise ValueError(f"must be one line without control characters (U+{ord(found[0]):04X})")
    return _no_encoded_word(value)


def _no_encoded_word(value: str) -> str:
    if _ENCODED_WORD.search(value):
        raise ValueError("must not contain an RFC 2047 encoded word (=?...?=): send the text")
    return value


EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(_address)]
"""A single address such as `user@example.com`; reusable by other payload models."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how send_email delivers; the composition root builds it from Settings."""

    host: str = "localhost"
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # kept out of logs and reprs
    tls: Literal["none", "starttls", "tls"] = "none"
    sender: str = "conveyor@localhost"
    timeout_s: float = 30.0


class SendEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: EmailAddress
    subject: Annotated[str, Field(max_length=998), AfterValidator(_header_text)]
    message: str


def email_tasks(config: SmtpConfig) -> list[TaskType]:
    """`send_email`, delivering through the SMTP server that `config` names."""

    async def send_email(payload: SendEmail, ctx: TaskContext) -> dict[str, str]:
        message = _compose(config.sender, _checked(payload))
        try:
            await _send(config, message, payload.to)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
            if _permanent(exc):
                raise NonRetryableError(f"the SMTP server refused: {_describe(exc)}") from exc
            raise
        message_id = str(message["Message-ID"])
        ctx.log.info("email.sent", to=payload.to, message_id=message_id)
        return {"to": payload.to, "messageId": message_id}

    return [TaskType("send_email", SendEmail, send_email)]


def _compose(sender: str, payload: SendEmail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload.to
    message["Subject"] = payload.subject
    message["Date"] = formatdate(usegmt=True)
    # An explicit domain: make_msgid would otherwise ask DNS for this host's name.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # The body: set_content writes it after the header's blank line, split by its own
    # lines and re-encoded if need be, so nothing in it can become a header.
    message.set_content(payload.message)
    _verify_header(message)
    return message


def _checked(payload: SendEmail) -> SendEmail:
    """The payload's header values, checked again at run time: a task stored before these
    rules (or a payload built without validation) must not reach the SMTP server either."""
    for name, check in (("to", _address), ("subject", _header_text)):
        try:
            check(getattr(payload, name))
        except ValueError as exc:
            raise NonRetryableError(f"payload.{name}: {exc}") from None
    return payload


def _verify_header(message: EmailMessage) -> None:
    """Refuse a message whose written header holds other fields than those set on it.

    The last guard, whatever the interpreter's patch level: this catches a header value
    that the email package would write with a line break in it.
    """
    try:
        written = message.as_bytes(policy=SMTP).partition(b"\r\n\r\n")[0]
    except (MessageError, ValueError) as exc:  # HeaderWriteError on CPython >= 3.11.10
        raise NonRetryableError(f"the message cannot be written safely: {exc}") from None
    lines = _FOLD.sub(b"", written).split(b"\r\n")
    names = sorted(line.partition(b":")[0].lower() for line in lines)
    expected = sorted(name.lower().encode() for name in message)
    if names != expected or any(b"\r" in line or b"\n" in line for line in lines):
        raise NonRetryableError("the message's header would hold fields nobody set on it")


async def _send(config: SmtpConfig, message: EmailMessage, recipient: str) -> None:
    await aiosmtplib.send(
        message,
        # The envelope names the validated address alone, never what a header parses to.
        recipients=[recipient],
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password,
        use_tls=config.tls == "tls",
        # False rather than None: "none" must never upgrade on its own, and "tls" is
        # encrypted from the first byte.
        start_tls=config.tls == "starttls",
        timeout=config.timeout_s,
    )


def _permanent(
    exc: aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused,
) -> bool:
    # RFC 5321: a 5yz reply is a permanent failure; a 4yz reply, a refused connection
    # or a timeout may pass, so those stay retryable.
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(refusal.code >= 500 for refusal in exc.recipients)
    return exc.code >= 500


def _describe(exc: aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
    return f"{exc.code} {exc.message}"
