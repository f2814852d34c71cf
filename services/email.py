"""Outgoing e-mail behind a small interface: SMTP through aiosmtplib in production, a
"not configured" sender when SMTP_HOST is empty. Message bodies may carry one-time codes, so
nothing here ever logs a body; recipients are logged masked (a***@example.com)."""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html.parser import HTMLParser
from typing import Protocol

import aiosmtplib

from services.privacy import mask_email

log = logging.getLogger(__name__)

TLS_MODES = ("none", "starttls", "ssl")


class EmailError(Exception):
    """The e-mail could not be handed to the mail server."""


class EmailNotConfigured(EmailError):
    """No SMTP server is configured."""


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Deliver a plain-text e-mail or raise EmailError."""


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: str = "starttls",
        timeout: float = 20.0,
    ) -> None:
        if tls not in TLS_MODES:
            raise ValueError(f"SMTP_TLS must be one of {', '.join(TLS_MODES)}")
        self.host, self.port, self.sender = host, port, sender
        self.username, self._password = username or None, password or None
        self.tls, self.timeout = tls, timeout

    def build(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(body)
        return message

    async def send(self, to: str, subject: str, body: str) -> None:
        try:
            await aiosmtplib.send(
                self.build(to, subject, body),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                use_tls=self.tls == "ssl",
                start_tls=self.tls == "starttls",
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.warning("e-mail to %s not sent: %s", mask_email(to), type(exc).__name__)
            raise EmailError(type(exc).__name__) from None
        log.info("e-mail sent to %s: %s", mask_email(to), subject)


class UnconfiguredMailer:
    async def send(self, to: str, subject: str, body: str) -> None:
        log.warning("e-mail to %s not sent: SMTP_HOST is not configured", mask_email(to))
        raise EmailNotConfigured("SMTP_HOST is not set")


def create_mailer(
    host: str | None,
    port: int,
    sender: str,
    username: str | None = None,
    password: str | None = None,
    tls: str = "starttls",
) -> Mailer:
    if not host:
        return UnconfiguredMailer()
    return SmtpMailer(host, port, sender, username=username, password=password, tls=tls)


def mailer_configured(mailer: Mailer | None) -> bool:
    """Whether `mailer` can send at all (SMTP_HOST is set)."""
    return mailer is not None and not isinstance(mailer, UnconfiguredMailer)


class _PlainText(HTMLParser):
    """Telegram's HTML (b, i, u, s, a, code, pre, blockquote, tg-spoiler...) as plain text: the
    tags go, entities are decoded, a link keeps its address after its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._links: list[tuple[str | None, int]] = []  # (href, where its text starts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links:
            href, start = self._links.pop()
            text = "".join(self.parts[start:])
            if href and href != text and not href.startswith("tg://"):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(telegram_html: str) -> str:
    """A message in Telegram's HTML parse mode as the plain text of an e-mail body."""
    parser = _PlainText()
    parser.feed(telegram_html)
    parser.close()
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.parts)).strip()
