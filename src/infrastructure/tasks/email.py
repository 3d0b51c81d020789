"""The built-in send_email task: one message over SMTP, sent with aiosmtplib."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Annotated, Literal

import aiosmtplib
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from application.handlers import NonRetryableError, TaskContext
from application.registry import TaskType

# Deliberately loose: the SMTP server has the last word on an address. This only stops
# typos, lists and header injection before the task is stored.
_ADDRESS = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError("not an email address")
    return value


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must be a single line")
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
    subject: Annotated[str, Field(max_length=998), AfterValidator(_one_line)]
    message: str


def email_tasks(config: SmtpConfig) -> list[TaskType]:
    """`send_email`, delivering through the SMTP server that `config` names."""

    async def send_email(payload: SendEmail, ctx: TaskContext) -> dict[str, str]:
        message = _compose(config.sender, payload)
        try:
            await _send(config, message)
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
    message.set_content(payload.message)
    return message


async def _send(config: SmtpConfig, message: EmailMessage) -> None:
    await aiosmtplib.send(
        message,
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
