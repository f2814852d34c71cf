"""Support tickets: the customer's side (own tickets only) and the staff desk's side.

Statuses: `open` (new, no staff answer yet), `answered` (staff answered, waiting for the
customer), `customer_replied` (the customer wrote after an answer), `closed`.
Files are kept as Telegram file ids (`Attachment`), never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from services.contracts.common import Page, read_only, scan
from services.errors import ValidationFailed

DEPARTMENTS = ("tech", "billing", "abuse")
STATUSES = ("open", "answered", "customer_replied", "closed")
# Statuses in which the ticket waits for the support (the reminder job looks at these).
AWAITING_STAFF = ("open", "customer_replied")

SUBJECT_MIN = 3
SUBJECT_MAX = 100  # the topic name "#<id> <subject>" must stay under Telegram's 128
TEXT_MAX = 3000  # leaves room for the header around it in a 4096-character message
ATTACHMENTS_MAX = 10


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: str  # photo, document
    file_id: str


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    account_id: int
    department: str
    subject: str
    status: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class TicketMessage:
    id: int
    ticket_id: int
    author: str  # customer, staff, note, system
    author_name: str
    text: str
    created_at: datetime
    attachments: list[Attachment] = field(default_factory=list)
    staff_user_id: int | None = None


@dataclass(frozen=True, slots=True)
class OrderLine:
    id: int
    tariff_name: str
    status: str
    paid_until: datetime


@dataclass(frozen=True, slots=True)
class LastPayment:
    """The customer's last paid invoice, for the ticket header."""

    amount_minor: int
    currency: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """What staff see about a customer (never the code word or password)."""

    account_id: int
    login: str
    telegram_id: int | None
    telegram_name: str
    telegram_username: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    email_confirmed: bool
    phone: str | None
    phone_verified: bool
    country: str | None
    profile_type: str
    company_name: str | None
    company_verified: bool
    balance_minor: int
    currency: str  # base currency of the balance
    unreachable: bool
    active_orders: int
    orders: list[OrderLine] = field(default_factory=list)
    unpaid_invoices: int = 0
    unpaid_minor: int = 0  # what they still ask for, in `currency`
    last_payment: LastPayment | None = None


def checked_subject(subject: str) -> str:
    """A subject as every billing stores it: whitespace collapsed, SUBJECT_MIN..SUBJECT_MAX."""
    subject = " ".join(subject.split())
    if not SUBJECT_MIN <= len(subject) <= SUBJECT_MAX:
        raise ValidationFailed("subject_length", min=SUBJECT_MIN, max=SUBJECT_MAX)
    return subject


def checked_message(text: str, attachments: list[Attachment]) -> str:
    """A message as every billing accepts it: text or files, within the limits."""
    text = text.strip()
    if not text and not attachments:
        raise ValidationFailed("empty")
    if len(text) > TEXT_MAX:
        raise ValidationFailed("text_length", max=TEXT_MAX)
    if len(attachments) > ATTACHMENTS_MAX:
        raise ValidationFailed("attachments", max=ATTACHMENTS_MAX)
    for item in attachments:
        if item.kind not in ("photo", "document") or not item.file_id:
            raise ValidationFailed("attachments", max=ATTACHMENTS_MAX)
    return text


class TicketsApi(Protocol):
    # ---- the customer's side: every call checks ownership (NotFound otherwise) --------------
    async def create_ticket(
        self,
        account_id: int,
        department: str,
        subject: str,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        language: str | None = None,
    ) -> Ticket:
        """ValidationFailed: bad department ('department'), subject length ('subject_length'),
        empty message ('empty'), text too long ('text_length'), too many files ('attachments').
        LimitReached: the customer has the configured number of tickets not closed
        ('open_tickets') or has created that many within the last hour ('tickets_per_hour',
        with retry_after). The limits hold under concurrent calls (several bot instances)."""

    @read_only
    async def check_new_ticket(self, account_id: int) -> None:
        """Raise the LimitReached that create_ticket would raise now (asked before the
        new-ticket dialog, so nobody writes a ticket that cannot be created)."""

    @read_only
    async def list_tickets(self, account_id: int, offset: int = 0, limit: int = 5) -> Page[Ticket]:
        """Open ones first (open, customer_replied, answered), then closed; newest activity
        first within each group."""

    @read_only
    async def get_ticket(self, account_id: int, ticket_id: int) -> Ticket: ...

    @read_only
    async def ticket_messages(self, account_id: int, ticket_id: int) -> list[TicketMessage]:
        """The conversation as the customer sees it: internal notes left out."""

    async def add_customer_message(
        self,
        account_id: int,
        ticket_id: int,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        reopen_window: timedelta,
    ) -> Ticket:
        """A reply; reopens a ticket closed less than `reopen_window` ago, InvalidState
        ('reopen_window') otherwise."""

    async def close_ticket(self, account_id: int, ticket_id: int) -> Ticket:
        """AlreadyDone when already closed."""

    async def reopen_ticket(
        self, account_id: int, ticket_id: int, *, reopen_window: timedelta
    ) -> Ticket:
        """InvalidState ('reopen_window') after the window, AlreadyDone when not closed."""

    # ---- the staff desk's side (the caller has checked that the user is staff) --------------
    @read_only
    async def staff_get_ticket(self, ticket_id: int) -> Ticket: ...

    @read_only
    async def staff_ticket_messages(self, ticket_id: int) -> list[TicketMessage]:
        """Everything, internal notes included."""

    async def add_staff_message(
        self,
        ticket_id: int,
        staff_user_id: int,
        author_name: str,
        text: str,
        attachments: list[Attachment] | None = None,
    ) -> Ticket:
        """The support's answer: stored, status `answered` (a closed ticket is reopened)."""

    async def add_staff_note(
        self, ticket_id: int, staff_user_id: int, author_name: str, text: str
    ) -> TicketMessage:
        """An internal note: never shown to the customer."""

    async def staff_close_ticket(self, ticket_id: int) -> Ticket:
        """AlreadyDone when already closed."""

    async def staff_reopen_ticket(self, ticket_id: int) -> Ticket:
        """AlreadyDone when not closed."""

    @scan
    async def tickets_awaiting_reminder(self, waiting_since: datetime) -> list[Ticket]:
        """Tickets waiting for the support since before `waiting_since`. Those the bot store
        has reminded about since the customer last wrote may be left out (the embedded billing
        does); `mark_ticket_reminded` decides."""

    @read_only
    async def staff_queue(self, limit: int = 50) -> list[Ticket]:
        """Tickets not closed (waiting for the support or for the customer), the longest
        untouched first (`updated_at`, then id); at most `limit`."""

    @read_only
    async def account_summary(self, account_id: int) -> AccountSummary: ...

    @read_only
    async def staff_find_account(self, reference: str) -> int | None:
        """An account id from '#12', '12' or a login ('tg501'); None when there is none."""
