"""SQLAlchemy 2 typed models of the embedded billing. Only services/embedded/ imports them.

Money columns are integer minor units (`*_minor`) of the billing's base currency unless a
`currency` column beside them says otherwise. The schema is created by Alembic migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, Decimal: Numeric(20, 8)}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    telegram_name: Mapped[str] = mapped_column(String(256), default="")
    telegram_username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    # Running balance in base-currency minor units: a cache of SUM(ledger.amount_minor) kept in
    # the same transaction as every ledger insert; debits use a conditional UPDATE on it.
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)

    # Settings
    newsletter: Mapped[bool] = mapped_column(Boolean, default=False)
    low_balance_threshold_minor: Mapped[int | None] = mapped_column(BigInteger)
    low_balance_alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_renew_default: Mapped[bool] = mapped_column(Boolean, default=True)
    pay_without_auth: Mapped[bool] = mapped_column(Boolean, default=False)
    country: Mapped[str | None] = mapped_column(String(2))
    profile_type: Mapped[str] = mapped_column(String(16), default="individual")
    company_name: Mapped[str | None] = mapped_column(String(256))
    company_tax_id: Mapped[str | None] = mapped_column(String(64))
    company_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    last_name: Mapped[str | None] = mapped_column(String(100))
    first_name: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    email_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(20))
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    email_invoices: Mapped[str | None] = mapped_column(String(254))
    email_support: Mapped[str | None] = mapped_column(String(254))
    email_abuse: Mapped[str | None] = mapped_column(String(254))
    code_word_hash: Mapped[str | None] = mapped_column(String(256))
    ip_allowlist: Mapped[str] = mapped_column(Text, default="")
    show_last_ip: Mapped[bool] = mapped_column(Boolean, default=False)
    last_ip: Mapped[str | None] = mapped_column(String(45))
    last_login_at: Mapped[datetime | None] = mapped_column()  # with last_ip: the web's last login
    password_hash: Mapped[str | None] = mapped_column(String(256))
    # Web sessions name the epoch they began in; logout and a new password move it on.
    web_session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    region: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100))
    postcode: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(300))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # The client this Telegram account is linked to in an external billing (WHMCS); None with
    # the embedded billing, and for a user who has not linked yet.
    billing_client_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)

    __table_args__ = (CheckConstraint("balance_minor >= 0", name="balance_not_negative"),)


class LedgerEntry(Base):
    """Append-only: rows are never updated or deleted."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    balance_after_minor: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))  # topup, order, renewal, refund, adjustment...
    description: Mapped[str] = mapped_column(String(300), default="")
    reference: Mapped[str | None] = mapped_column(String(64))  # e.g. "order:12", "invoice:7"
    idempotency_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    actor: Mapped[str | None] = mapped_column(String(64))  # who made a manual adjustment
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tariff(Base):
    __tablename__ = "tariffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    product_type: Mapped[str] = mapped_column(String(16))  # dedicated, vps
    name: Mapped[str] = mapped_column(String(100))
    specs: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    prices: Mapped[list[TariffPrice]] = relationship(
        back_populates="tariff", order_by="TariffPrice.months", lazy="selectin"
    )


class TariffPrice(Base):
    __tablename__ = "tariff_prices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    months: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    tariff: Mapped[Tariff] = relationship(back_populates="prices")

    __table_args__ = (UniqueConstraint("tariff_id", "months"),)


class Order(Base):
    __tablename__ = "orders"
    # The orders list's default page (newest first) read off the index, without a sort.
    __table_args__ = (Index("ix_orders_account_created", "account_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    ip_address: Mapped[str | None] = mapped_column(String(45), unique=True)
    # The address a cancellation gave back to the pool, still shown in the order's details.
    released_ip: Mapped[str | None] = mapped_column(String(45))
    period_months: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int] = mapped_column(BigInteger)  # per period, base currency
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_until: Mapped[datetime] = mapped_column(index=True)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_at: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]
    tariff: Mapped[Tariff] = relationship(lazy="joined")


class Cart(Base):
    """An order the user could not pay yet; completed in one tap after a top-up."""

    __tablename__ = "carts"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    months: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16), default="topup")  # topup, order
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # in `currency`
    currency: Mapped[str] = mapped_column(String(3))
    credit_minor: Mapped[int] = mapped_column(BigInteger)  # base currency credited when paid
    rate: Mapped[Decimal]  # units of `currency` per 1 base unit, fixed at issue
    stars_amount: Mapped[int | None] = mapped_column(BigInteger)  # XTR price, fixed at issue
    status: Mapped[str] = mapped_column(String(16), default="unpaid")  # unpaid, paid, cancelled
    method: Mapped[str | None] = mapped_column(String(16))  # card, stars, balance
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))  # telegram, stars
    charge_id: Mapped[str] = mapped_column(String(128), unique=True)
    provider_charge_id: Mapped[str | None] = mapped_column(String(128))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    refunded_at: Mapped[datetime | None]
    # A refund is recorded (the credit taken back) before Telegram is asked; until Telegram
    # answers it is pending. Each attempt has its own ledger keys, so a refused attempt that
    # gave the money back never blocks a later one.
    refund_requested_at: Mapped[datetime | None]
    refund_attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ExchangeRate(Base):
    __tablename__ = "exchange_rates"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[Decimal]  # units per 1 base-currency unit
    rate_date: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    department: Mapped[str] = mapped_column(String(16))  # tech, billing, abuse
    subject: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    language: Mapped[str | None] = mapped_column(String(8))  # the customer's locale at creation


class TicketPlace(Base):
    """Bot store: where a ticket lives in the staff group, and when staff were last reminded
    of it. No foreign key: the ticket may be an external billing's."""

    __tablename__ = "ticket_places"

    ticket_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)  # None: no place yet
    thread_id: Mapped[int | None] = mapped_column(BigInteger)  # None: not a forum group
    reminded_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_ticket_places_thread", "chat_id", "thread_id"),)


class TicketMessage(Base):
    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    author: Mapped[str] = mapped_column(String(16))  # customer, staff, note, system
    author_name: Mapped[str] = mapped_column(String(128), default="")
    staff_user_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffMessageLink(Base):
    """Maps a message in the staff group to its ticket, so a reply to it reaches the ticket."""

    __tablename__ = "staff_message_links"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, index=True)  # no FK: see TicketPlace


class CustomerMessageLink(Base):
    """Bot store: a message the bot sent to a customer's private chat for a ticket (a relayed
    answer, a close or reopen notice), so that a reply to it reaches that ticket; for a relayed
    staff answer also the staff-group message it copies, so that an edit of it is relayed."""

    __tablename__ = "customer_message_links"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, index=True)  # no FK: see TicketPlace
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_message_id: Mapped[int | None] = mapped_column(BigInteger)
    content: Mapped[str] = mapped_column(String(8), default="text")  # text, caption

    __table_args__ = (
        Index("ix_customer_message_links_staff", "staff_chat_id", "staff_message_id"),
    )


class TicketDesk(Base):
    """Bot store: how a ticket's forum topic looks now (its title with the status mark, closed
    or not) and who of the staff took the ticket. No FK: see TicketPlace."""

    __tablename__ = "ticket_desk"

    ticket_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    topic_title: Mapped[str | None] = mapped_column(String(128))
    topic_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    assignee_name: Mapped[str | None] = mapped_column(String(128))


class CannedAnswer(Base):
    """Bot store: a prepared answer staff insert with /canned <name>; admins manage them."""

    __tablename__ = "canned_answers"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketRating(Base):
    """Bot store: the customer's satisfaction rating (1-5) of a closed ticket; the first one
    stays (a ticket is rated once). No FK: see TicketPlace."""

    __tablename__ = "ticket_ratings"

    ticket_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(BigInteger)
    rating: Mapped[int] = mapped_column(Integer)
    rated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)


class Verification(Base):
    """One-time codes: e-mail confirmation, phone call-password."""

    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # email, phone_call
    target: Mapped[str] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(256))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class WebLoginAttempt(Base):
    """One attempt at the web login (issue 17) that has not succeeded (yet): the limits per
    login and per client address count these, across restarts and bot instances. A success
    removes its login's rows; rows older than the window are pruned."""

    __tablename__ = "web_login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64))  # as typed, lowercased
    ip: Mapped[str] = mapped_column(String(45))
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_web_login_attempts_login", "login", "attempted_at"),
        Index("ix_web_login_attempts_ip", "ip", "attempted_at"),
    )


class CodeWordCheck(Base):
    """One staff /verify of a customer's code word (`refused`: turned down by the limit), kept so
    the limit holds across restarts and bot instances. Rows older than the window are pruned."""

    __tablename__ = "code_word_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    staff_user_id: Mapped[int] = mapped_column(BigInteger)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    refused: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_code_word_checks_account", "account_id", "checked_at"),)


class AlertMark(Base):
    """A persisted 'this alert was already produced' fact, e.g. ('expiry', '12:2026-12-01:3')."""

    __tablename__ = "alert_marks"

    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Structured copy of the key for order alerts, so due scans filter with NOT EXISTS in SQL.
    order_id: Mapped[int | None] = mapped_column(Integer)
    period: Mapped[datetime | None]  # the order's paid_until the alert was about
    stage: Mapped[int | None] = mapped_column(Integer)  # days before paid_until (0: expired)

    __table_args__ = (Index("ix_alert_marks_order", "order_id", "period", "kind"),)


class OutboxMessage(Base):
    """Durable delivery queue; written in the transaction of the state change that caused it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    method: Mapped[str] = mapped_column(String(32))  # sendMessage, sendPhoto, copyMessage...
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending/sent/failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(300))
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    # A sender claims rows before sending: no other sender takes them until the lease expires
    # (a crashed sender's rows come back after `locked_until`).
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    # An alert also carries its e-mail copy (no foreign key: the account may be an external
    # billing's); when the chat is unreachable (403) the row becomes `email_pending` and goes by
    # e-mail to the account's confirmed address instead (services/outbox_email.py).
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    email_subject: Mapped[str | None] = mapped_column(String(200))
    email_body: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_outbox_due", "status", "not_before"),)


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    photo_file_id: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft/sending/done/cancelled
    total: Mapped[int] = mapped_column(Integer, default=0)
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    language: Mapped[str | None] = mapped_column(String(8))  # of the admin's progress reports
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobLease(Base):
    """Lets several bot instances run each scheduled job once: a job runs only under its lease."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


class AdapterState(Base):
    """Bot store: small records an external billing adapter keeps next to the billing (a cart,
    a one-time link token, how far the ticket replies were read). `kind` names the record type,
    `key` the record within it."""

    __tablename__ = "adapter_state"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)  # None: kept until deleted


class PaymentUpdate(Base):
    """A `successful_payment` update kept before it is handled (in polling mode: before the
    next getUpdates acknowledges it), so a killed process finds and replays it on start.
    `answered_at` is set once the money is recorded and the customer was answered."""

    __tablename__ = "payment_updates"

    charge_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(index=True)
