"""The alert messages: texts and buttons, in one account's language, time zone and currency.

Pure formatting: the jobs (services/alerts.py) decide what is due and when it is sent; these
functions only turn what they found into the message a customer reads. Call them inside
`localized(...)`: the keyboards translate their buttons too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from babel.dates import format_date

from services.contracts import alerts as dto
from services.email import plain_text
from services.money import format_money


class AlertKeyboards(Protocol):
    """Markups of alert messages (keyboards/alerts.py; injected: services never import
    keyboards)."""

    def low_balance_kb(self, topup_minor: int) -> InlineKeyboardMarkup: ...

    def orders_alert_kb(
        self, order_ids: Sequence[int], topup_minor: int
    ) -> InlineKeyboardMarkup: ...


@dataclass(frozen=True)
class LocaleDefaults:
    """What a recipient without (valid) settings of their own is written in."""

    language: str = "en"
    timezone: str = "UTC"
    currency: str = "EUR"  # the billing's base currency: alert amounts are ledger amounts


@dataclass(frozen=True)
class RenewedOrder:
    order: dto.DueOrder
    paid_until: datetime
    price_minor: int


@dataclass(frozen=True)
class FailedRenewal:
    order: dto.DueOrder
    missing_minor: int | None  # None: not a money problem (e.g. the period is not sold any more)
    price_minor: int = 0  # what the renewal would have charged


def zone_of(name: str | None, default: str) -> ZoneInfo:
    """The named time zone, else the default, else UTC (a stored name may have gone stale)."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


class Render:
    """Formatting in the locale and time zone of one recipient."""

    def __init__(self, locale: str, zone: ZoneInfo, currency: str) -> None:
        self.locale, self.zone, self.currency = locale, zone, currency

    def money(self, minor: int) -> str:
        return format_money(minor, self.currency, self.locale)

    def date(self, value: datetime) -> str:
        return format_date(value.astimezone(self.zone), format="medium", locale=self.locale)

    def order(self, order: dto.DueOrder) -> str:
        name = f"#{order.order_id} {order.tariff_name}"
        return f"{name} ({order.ip_address})" if order.ip_address else name


def _language(recipient: dto.Recipient, defaults: LocaleDefaults, i18n: I18n) -> str:
    language = recipient.language or defaults.language
    return language if language in i18n.available_locales else defaults.language


@contextmanager
def localized(i18n: I18n, recipient: dto.Recipient, defaults: LocaleDefaults) -> Iterator[Render]:
    """gettext and formatting in one account's language and time zone."""
    language = _language(recipient, defaults, i18n)
    zone = zone_of(recipient.timezone, defaults.timezone)
    with i18n.context(), i18n.use_locale(language):
        yield Render(language, zone, defaults.currency)


def _payload(text: str, markup: InlineKeyboardMarkup | None) -> dict[str, Any]:
    """The sendMessage parameters the outbox stores (a markup without buttons is left out)."""
    payload: dict[str, Any] = {"text": text}
    if markup is not None and markup.inline_keyboard:
        payload["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
    return payload


def _email_subject(kind: str) -> str:
    subjects = {
        "low_balance": _("Your balance is running low"),
        "expiry": _("Order expiry notice"),
        "renewal": _("Auto-renewal of your orders"),
        "suspended": _("Services suspended for non-payment"),
    }
    return subjects.get(kind) or _("A notice about your account")


def alert_email(kind: str, text: str) -> dto.EmailCopy:
    """The e-mail an alert of `kind` goes as when the customer blocked the bot: its text as
    plain text and a note on why it came by e-mail (its buttons work only in Telegram)."""
    note = _(
        "This came by e-mail because the bot cannot write to you in Telegram: it is blocked, "
        "or the Telegram account is deleted. Unblock the bot to get notices there again and "
        "to use its buttons."
    )
    return dto.EmailCopy(_email_subject(kind), plain_text(text) + "\n\n—\n" + note)


def _days_left(order: dto.DueOrder, now: datetime) -> int:
    """Whole days until paid-until, rounded up (a day and an hour left reads "2 days")."""
    seconds = (order.paid_until - now).total_seconds()
    return max(0, -int(-seconds // 86400))


# ---- low balance -----------------------------------------------------------------------------
def low_balance_text(due: dto.LowBalanceDue, r: Render) -> str:
    text = _(
        "⚠️ <b>Low balance</b>\n"
        "Your balance is <b>{balance}</b>, below the {threshold} you asked to be warned about."
    ).format(balance=r.money(due.balance_minor), threshold=r.money(due.threshold_minor))
    if due.next_charges:
        lines = [
            _("• {date}: {order} — {price}").format(
                date=r.date(order.paid_until),
                order=r.order(order),
                price=r.money(order.price_minor),
            )
            for order in due.next_charges
        ]
        text += "\n\n" + _("Next charges:") + "\n" + "\n".join(lines)
    return text + "\n\n" + _("Top up the balance to keep your services running.")


def low_balance_payload(
    due: dto.LowBalanceDue, r: Render, keyboards: AlertKeyboards
) -> dict[str, Any]:
    upcoming = sum(order.price_minor for order in due.next_charges)
    topup = max(0, upcoming - due.balance_minor)  # what the next charges lack
    return _payload(low_balance_text(due, r), keyboards.low_balance_kb(topup))


# ---- expiring orders -------------------------------------------------------------------------
def _renewal_line(order: dto.DueOrder, covered: bool, missing: int, r: Render) -> str:
    """What auto-renewal will do: charge the price, or (the balance does not cover it, so the
    renewal would fail) how much to top up and by when — never "will charge" for a charge the
    balance cannot pay."""
    if covered:
        return _("auto-renewal will charge {price}").format(price=r.money(order.price_minor))
    return _("auto-renewal needs {price}: top up {missing} by {date}, or it will not renew").format(
        price=r.money(order.price_minor), missing=r.money(missing), date=r.date(order.paid_until)
    )


def _expiring_soon_part(
    orders: Sequence[dto.DueOrder], balance_minor: int, now: datetime, r: Render
) -> str:
    lines = []
    left_over = balance_minor  # spent on the renewals in their order, as the renewal job does
    for order in orders:
        days = _days_left(order, now)
        left = ngettext("{count} day left", "{count} days left", days).format(count=days)
        line = _("• {order}: paid until {date}, {left}").format(
            order=r.order(order), date=r.date(order.paid_until), left=left
        )
        if order.auto_renew:
            covered = left_over >= order.price_minor
            missing = order.price_minor - max(0, left_over)
            left_over -= order.price_minor if covered else 0
            line += "\n  " + _renewal_line(order, covered, missing, r)
        lines.append(line)
    title = ngettext(
        "⏳ <b>Your order expires soon</b>", "⏳ <b>Your orders expire soon</b>", len(orders)
    )
    return title + "\n" + "\n".join(lines)


def _expired_part(orders: Sequence[dto.DueOrder], grace: timedelta, r: Render) -> str:
    lines = [
        _("• {order}: expired on {date}, will be suspended on {suspend}").format(
            order=r.order(order),
            date=r.date(order.paid_until),
            suspend=r.date(order.paid_until + grace),
        )
        for order in orders
    ]
    title = ngettext(
        "⛔ <b>Your order has expired</b>", "⛔ <b>Your orders have expired</b>", len(orders)
    )
    return title + "\n" + "\n".join(lines)


def expiring_text(
    orders: Sequence[dto.DueOrder],
    balance_minor: int,
    now: datetime,
    grace: timedelta,
    r: Render,
) -> str:
    """Orders of stage > 0 expire soon; stage 0 has expired and is suspended after `grace`."""
    soon = sorted((o for o in orders if o.stage > 0), key=lambda o: (o.paid_until, o.order_id))
    expired = [o for o in orders if o.stage == 0]
    parts: list[str] = []
    if soon:
        parts.append(_expiring_soon_part(soon, balance_minor, now, r))
    if expired:
        parts.append(_expired_part(expired, grace, r))
    parts.append(_("Renew in time to keep your services running."))
    return "\n\n".join(parts)


def expiring_payload(
    orders: Sequence[dto.DueOrder],
    balance_minor: int,
    now: datetime,
    grace: timedelta,
    r: Render,
    keyboards: AlertKeyboards,
) -> dict[str, Any]:
    missing = sum(o.price_minor for o in orders) - balance_minor
    return _payload(
        expiring_text(orders, balance_minor, now, grace, r),
        keyboards.orders_alert_kb([o.order_id for o in orders], max(0, missing)),
    )


# ---- auto-renewal ----------------------------------------------------------------------------
def _failure_reason(item: FailedRenewal, r: Render) -> str:
    if item.missing_minor is not None:
        return _("not enough money on the balance, {missing} is missing").format(
            missing=r.money(item.missing_minor)
        )
    return _("cannot be renewed automatically, please renew it yourself")


def renewal_text(
    renewed: Sequence[RenewedOrder], failed: Sequence[FailedRenewal], r: Render
) -> str:
    parts: list[str] = []
    if renewed:
        lines = [
            _("• {order}: renewed until {date}, {price} charged").format(
                order=r.order(item.order),
                date=r.date(item.paid_until),
                price=r.money(item.price_minor),
            )
            for item in renewed
        ]
        parts.append(_("✅ <b>Auto-renewal</b>") + "\n" + "\n".join(lines))
    if failed:
        lines = [
            _("• {order}, paid until {date}: {reason}").format(
                order=r.order(item.order),
                date=r.date(item.order.paid_until),
                reason=_failure_reason(item, r),
            )
            for item in failed
        ]
        parts.append(_("❌ <b>Auto-renewal failed</b>") + "\n" + "\n".join(lines))
        if any(item.missing_minor is not None for item in failed):
            parts.append(_("Top up the balance and the order will be renewed automatically."))
    return "\n\n".join(parts)


def renewal_payload(
    renewed: Sequence[RenewedOrder],
    failed: Sequence[FailedRenewal],
    balance_minor: int | None,
    r: Render,
    keyboards: AlertKeyboards,
) -> dict[str, Any]:
    """Buttons only when something failed. `balance_minor` (None: no renewal failed for lack
    of money) is shared by the orders: each shows what it lacks alone, the top-up covers all."""
    missing = 0
    if balance_minor is not None:
        short = [item for item in failed if item.missing_minor is not None]
        missing = max(0, sum(item.price_minor for item in short) - balance_minor)
        failed = [
            replace(item, missing_minor=max(0, item.price_minor - balance_minor))
            if item.missing_minor is not None
            else item
            for item in failed
        ]
    markup = (
        keyboards.orders_alert_kb([item.order.order_id for item in failed], missing)
        if failed
        else None
    )
    return _payload(renewal_text(renewed, failed, r), markup)


# ---- overdue ---------------------------------------------------------------------------------
def suspended_text(orders: Sequence[dto.DueOrder], grace: timedelta, r: Render) -> str:
    lines = [
        _("• {order}: expired on {date}").format(order=r.order(o), date=r.date(o.paid_until))
        for o in orders
    ]
    title = ngettext(
        "🚫 <b>Your order is suspended</b>", "🚫 <b>Your orders are suspended</b>", len(orders)
    )
    days = grace.days
    note = ngettext(
        "It was not renewed within {count} day after it expired. Renew it to resume the service.",
        "It was not renewed within {count} days after it expired. Renew it to resume the service.",
        days,
    ).format(count=days)
    return title + "\n" + "\n".join(lines) + "\n\n" + note


def suspended_payload(
    orders: Sequence[dto.DueOrder], grace: timedelta, r: Render, keyboards: AlertKeyboards
) -> dict[str, Any]:
    return _payload(
        suspended_text(orders, grace, r),
        keyboards.orders_alert_kb([o.order_id for o in orders], 0),
    )
