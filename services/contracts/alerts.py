"""What is due for the alert jobs (a BillingCore half), and the records of alerts, the delivery
queue (outbox) and broadcasts (their Protocols are BotStore's: services/contracts/store.py).

The alert jobs (services/alerts.py) ask the billing what is due — the query does the
filtering, jobs never scan tables themselves — and, in one transaction of the bot store, record
that an alert was produced (an alert mark) and write the message to the outbox. The sender
(services/outbox.py) drains the outbox within Telegram's limits. Payloads are the Bot API
parameters of `method` without `chat_id` (that is a column).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.contracts.common import scan

# Outbox row statuses.
PENDING, SENT, FAILED, UNREACHABLE, CANCELLED = (
    "pending",
    "sent",
    "failed",
    "unreachable",
    "cancelled",
)
# An alert whose chat is unreachable goes by e-mail instead (services/outbox_email.py).
EMAIL_PENDING, EMAILED = "email_pending", "emailed"
# Broadcast statuses.
DRAFT, SENDING, DONE = "draft", "sending", "done"

# Alert-mark kinds.
MARK_EXPIRY = "expiry"
MARK_RENEWAL = "renewal"  # taken while a period is being renewed (overlapping runs skip it)
MARK_RENEWAL_TOLD = "renewal_told"  # the customer was told about this renewal cycle
MARK_SUSPENDED = "suspended"
MARK_LOW_BALANCE = "low_balance"

# Outcomes of the renewal of one due order (DueScansApi.renew_due_orders).
RENEWAL_DONE = "renewed"  # charged and extended
RENEWAL_SKIPPED = "skipped"  # changed since the scan, or this period is paid already
RENEWAL_SHORT = "short"  # the balance does not cover the price
RENEWAL_FAILED = "failed"  # refused for another reason (e.g. the period is not sold any more)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where and how to tell an account something."""

    account_id: int
    chat_id: int | None  # None: no private chat (renewals still run, nothing is sent)
    language: str | None
    timezone: str | None
    currency: str  # the account's display currency
    balance_minor: int = 0  # base currency


@dataclass(frozen=True, slots=True)
class DueOrder:
    order_id: int
    account_id: int
    tariff_name: str
    ip_address: str | None
    status: str
    paid_until: datetime
    period_months: int
    price_minor: int  # per period, base currency
    auto_renew: bool
    stage: int = 0  # expiry alerts: days before paid-until this alert is for (0: expired)


@dataclass(frozen=True, slots=True)
class AccountDue:
    """Everything due for one account, so it gets one message instead of one per order."""

    recipient: Recipient
    orders: list[DueOrder] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LowBalanceDue:
    recipient: Recipient
    balance_minor: int
    threshold_minor: int
    crossing: int  # id of the newest ledger entry: names this crossing of the threshold
    next_charges: list[DueOrder] = field(default_factory=list)  # upcoming auto-renewals


@dataclass(frozen=True, slots=True)
class AlertMarkSpec:
    kind: str
    key: str
    order_id: int | None = None
    period: datetime | None = None
    stage: int | None = None


@dataclass(frozen=True, slots=True)
class RenewalResult:
    """What `renew_due_orders` did with one due order."""

    order_id: int
    outcome: str  # RENEWAL_DONE, RENEWAL_SKIPPED, RENEWAL_SHORT or RENEWAL_FAILED
    paid_until: datetime | None = None  # done: the new paid-until
    price_minor: int = 0  # done: what was charged; short: what the renewal would charge
    missing_minor: int = 0  # short: what the balance lacked for this order
    balance_minor: int | None = None  # short: the account's balance once the batch is done
    error: str | None = None  # failed: what refused it (the DomainError's detail or code)


@dataclass(frozen=True, slots=True)
class EmailCopy:
    """How an alert reads as an e-mail (plain text), rendered with its Telegram text."""

    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One API call to queue: `payload` is the method's parameters without chat_id. With
    `email` (and the `account_id` it is for) the message goes by e-mail to the account's
    confirmed address when its chat is unreachable (the customer blocked the bot)."""

    chat_id: int
    payload: dict[str, Any]
    method: str = "sendMessage"
    idempotency_key: str | None = None
    not_before: datetime | None = None
    broadcast_id: int | None = None
    account_id: int | None = None
    email: EmailCopy | None = None


@dataclass(frozen=True, slots=True)
class OutboxEmail:
    """An outbox row claimed to go by e-mail (status EMAIL_PENDING)."""

    id: int
    account_id: int
    subject: str
    body: str
    attempts: int  # e-mail attempts so far


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    chat_id: int
    method: str
    payload: dict[str, Any]
    attempts: int
    broadcast_id: int | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class BroadcastInfo:
    id: int
    created_by: int
    text: str
    photo_file_id: str | None
    status: str
    total: int
    sent: int
    failed: int  # failed or unreachable
    pending: int
    cancelled: int
    language: str | None
    progress_chat_id: int | None
    progress_message_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def left(self) -> int:
        return self.pending


class DueScansApi(Protocol):
    """What is due, for the alert jobs. A scan may leave out what the bot store has marked as
    told when the two share a database (the embedded billing does, in SQL); the jobs never rely
    on it: the mark taken in the job's transaction decides what is told."""

    async def rearm_low_balance(self) -> int:
        """Re-arm the low-balance alert of accounts whose balance is at or above their threshold
        again (or that have no threshold any more). Returns how many were re-armed."""

    @scan
    async def low_balance_due(
        self, *, after_account_id: int = 0, limit: int = 500, emailable: bool = False
    ) -> list[LowBalanceDue]:
        """Reachable accounts below their threshold and not alerted yet, by id. With
        `emailable`, also those that blocked the bot but have a confirmed e-mail (their alerts
        are then e-mailed instead)."""

    async def mark_low_balance_alerted(self, account_ids: Sequence[int]) -> list[int]:
        """Flag the crossings as told (one statement); returns the ids this call flagged (a
        concurrent run may have flagged the others)."""

    @scan
    async def expiring_due(
        self,
        now: datetime,
        stages: Sequence[int],
        grace: timedelta,
        *,
        after_account_id: int = 0,
        limit: int = 500,
        emailable: bool = False,
    ) -> list[AccountDue]:
        """Orders whose current expiry stage was not alerted yet, grouped per account (at most
        `limit` accounts, ids above `after_account_id`). The current stage of an order is the
        smallest of `stages` (days) with now >= paid_until - stage, or 0 once paid-until has
        passed (for expired orders still within `grace`). Orders set to be cancelled at period
        end and unreachable chats are left out (with `emailable`, not those with a confirmed
        e-mail, as in `low_balance_due`)."""

    @scan
    async def renewals_due(
        self, now: datetime, lead: timedelta, *, after_account_id: int = 0, limit: int = 500
    ) -> list[AccountDue]:
        """Active or expired orders with auto-renew on (and no cancellation at period end) whose
        paid-until is within `lead` from now, grouped per account. An order whose failed
        renewal was already told for this period is left out until the balance covers its
        price (nothing would change)."""

    async def renew_due_orders(self, orders: Sequence[DueOrder]) -> list[RenewalResult]:
        """Renew due orders (as `renewals_due` returned them) by their period from the
        balance, in the caller's transaction; one result per order, in the order given, which
        is also the order an account's balance is spent in (each order while it covers the
        price; one it does not cover is RENEWAL_SHORT and the next may still fit). An order
        changed since the scan (paid-until, status, period, auto-renew off, cancellation at
        period end) is RENEWAL_SKIPPED, and so is one whose period is paid already: each
        renewal is posted under renewal_key(order, paid-until), so a period is charged once,
        whoever renews it and however many instances run. The new paid-until is counted like
        `renew_order`'s (from paid-until while it is ahead, else from now)."""

    async def expire_overdue_orders(self, now: datetime) -> int:
        """Active orders past paid-until become expired (cancelled when set to be cancelled at
        the period end). Returns how many changed."""

    @scan
    async def suspension_due(
        self, now: datetime, grace: timedelta, *, limit: int = 500
    ) -> list[AccountDue]:
        """Expired orders whose paid-until is more than `grace` ago, grouped per account."""

    async def suspend_orders(
        self, order_ids: Sequence[int], now: datetime, grace: timedelta
    ) -> list[int]:
        """Suspend those of the orders still expired for longer than `grace`; returns them."""
