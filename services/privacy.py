"""Personal data and secrets in log lines: helpers that mask an e-mail address or a phone
number where code logs one on purpose, and `RedactingFilter`, the safety net on the log
handlers that masks any e-mail address or phone number a line still carries (a library's
message, an exception text) and replaces known secrets (the bot token, passwords) by ***."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"
EMAIL_PATTERN = re.compile(r"([A-Za-z0-9._%+\-]+)@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")
# "+" then 7 to 15 digits, maybe grouped by spaces, dots, dashes or brackets: E.164 as people
# type it. Bare digit runs are ids (users, chats, updates) and are left alone.
PHONE_PATTERN = re.compile(r"\+\d(?:[\s.\-()]{0,2}\d){6,14}")


def mask_email(email: str | None) -> str:
    """'anna@example.com' -> 'a***@example.com': the domain tells which mail server is meant,
    the address itself is not in the log."""
    if not email:
        return ""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local:
        return MASK
    return f"{local[0]}{MASK}@{domain}"


def mask_phone(phone: str | None) -> str:
    """'+447911123456' -> '+44********56': the country, never the number."""
    if not phone:
        return ""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 6:
        return MASK
    return "+" + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret replaced by ***, e-mail addresses and phone numbers masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = EMAIL_PATTERN.sub(lambda found: mask_email(found.group(0)), text)
    return PHONE_PATTERN.sub(lambda found: mask_phone(found.group(0)), text)


class RedactingFilter(logging.Filter):
    """For a log handler: the record's message (its arguments merged in), exception and stack
    text go out redacted. Longer secrets are replaced first (a token contains its own tail)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True
