"""WHMCS tickets turned into the cabinet's: statuses, plain message text, the bot's local
records about tickets (adapter_state kinds) and the checks of what a customer or staff write.

Message text: WHMCS keeps what was typed HTML-escaped (its input sanitising turns `<` into
`&lt;`), and replies written in the admin area may carry markup (markdown rendered, `<br>`).
The API reference says nothing about the format of `message` (getticket.md: "message"), so we
read it as HTML: the tags of formatting are dropped (`<br>`/`<p>` become line breaks), then the
entities are unescaped. What we return is plain text; the handlers escape it for Telegram.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import UTC, datetime

from services.contracts.tickets import Attachment

# WHMCS status -> ours. "In Progress" means the support took the ticket but has not answered:
# it still waits for the support (open, so the reminder sees it). "On Hold" is parked by the
# support, usually waiting for the customer or a third party: answered (no reminders, the
# customer may write). Custom statuses of an install are read as open (the safe side: staff get
# reminded rather than forget a ticket).
STATUS_FROM_WHMCS = {
    "Open": "open",
    "Answered": "answered",
    "Customer-Reply": "customer_replied",
    "Closed": "closed",
    "In Progress": "open",
    "On Hold": "answered",
}
WHMCS_CLOSED, WHMCS_OPEN = "Closed", "Open"
AWAITING_REPLY = "Awaiting Reply"  # gettickets.md: a status filter beside the configured ones
ALL_ACTIVE = "All Active Tickets"  # gettickets.md: every status but Closed

# adapter_state kinds (key: see each)
META_KIND = "whmcs_ticket"  # str(ticket id): {"language", "closed_at"}
FILES_KIND = "whmcs_ticket_files"  # "<ticket>:<fingerprint>": {"files": [[kind, file_id]]}
ECHO_KIND = "whmcs_bot_reply"  # "<ticket>:<fingerprint>": {"count"}: staff replies the bot posted
CUSTOMER_ECHO_KIND = "whmcs_bot_customer_reply"  # the same for customers' replies in Telegram
CURSOR_KIND = "whmcs_ticket_sync"  # str(ticket id): {"reply_id", "lastreply"}
RATE_KIND = "whmcs_ticket_rate"  # str(account id): {"created": [iso times]}

_FILES_NOTE_RE = re.compile(r"\n*\[(\d+) files? attached in Telegram\]\s*$")
_BREAK_RE = re.compile(r"<\s*(br|/p|/div|/li)\s*/?\s*>", re.IGNORECASE)
# Only the markup WHMCS's editor and markdown rendering produce is dropped: a customer's "<now>"
# stored unescaped (an install without the input sanitising) stays text.
_TAG_RE = re.compile(
    r"</?\s*(?:a|b|i|u|s|em|strong|p|div|span|br|hr|ul|ol|li|code|pre|blockquote|h[1-6]|img"
    r"|table|thead|tbody|tr|td|th)\b[^>]*>",
    re.IGNORECASE,
)
MAX_TICKET_ID = 2**31 - 1


def status_of(whmcs_status: str) -> str:
    return STATUS_FROM_WHMCS.get(whmcs_status, "open")


def plain_text(message: str) -> str:
    """WHMCS's stored message as plain text (see the module docstring)."""
    text = _BREAK_RE.sub("\n", message)
    text = _TAG_RE.sub("", text)
    text = html.unescape(text).replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def files_note(count: int) -> str:
    """What WHMCS is told instead of the files (its API takes base64 files; the bot has only
    Telegram file ids). Read by WHMCS's staff and the client area, not by Telegram users, so
    it is not translated; `split_files_note` takes it off again."""
    return f"[{count} file{'s' if count != 1 else ''} attached in Telegram]"


def with_files_note(text: str, attachments: list[Attachment]) -> str:
    if not attachments:
        return text
    note = files_note(len(attachments))
    return f"{text}\n\n{note}" if text else note


def split_files_note(text: str) -> tuple[str, int]:
    """(the text without the note, how many files it announced)."""
    match = _FILES_NOTE_RE.search(text)
    if match is None:
        return text, 0
    return text[: match.start()].rstrip(), int(match.group(1))


def fingerprint(text: str) -> str:
    """Of plain text: the same for a message as we sent it and as `plain_text` reads it back
    from WHMCS (whitespace aside)."""
    normal = " ".join(text.split())
    return hashlib.sha256(normal.encode()).hexdigest()[:32]


def utc(moment: datetime | None) -> datetime | None:
    """WHMCS answers times without a zone (the install's); we read them as UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_ticket_id(ticket_id: int) -> bool:
    return 0 < ticket_id <= MAX_TICKET_ID


def files_value(attachments: list[Attachment]) -> dict[str, list[list[str]]]:
    return {"files": [[a.kind, a.file_id] for a in attachments]}


def files_from(value: dict[str, object] | None) -> list[Attachment]:
    rows = value.get("files") if value else None
    if not isinstance(rows, list):
        return []
    return [
        Attachment(str(row[0]), str(row[1]))
        for row in rows
        if isinstance(row, list) and len(row) == 2
    ]
