"""The alert jobs: low balance, expiring orders, auto-renewal and overdue orders.

Each job is a plain async function of its dependencies and a clock value (`now`), so the
scheduler binds them once and the tests call them with a fixed time. Jobs only talk to the
billing interface: it finds what is due (the SQL filters), and in one transaction per batch
the job records the alert (an alert mark or a state flag) and writes the message to the outbox
with an idempotency key. The sender (services/outbox.py) delivers it; a crash at any point
neither loses nor repeats an alert.

Messages are grouped per account (one message listing several orders), rendered in the
account's language, and held back during the account's quiet hours unless they are urgent
(an order expiring within a day or already expired, a failed renewal).
"""

from __future__ import annotations

import hashlib
import logging
import time as time_module
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from babel.dates import format_date

from services.billing import Billing, BillingGateway
from services.contracts import alerts as dto
from services.contracts.orders import renewal_key
from services.errors import DomainError, InsufficientFunds
from services.money import format_money

log = logging.getLogger(__name__)

URGENT_WITHIN = timedelta(days=1)
# Renewals run per order (each is a debit); a few accounts share a transaction so the write
# lock is held briefly and a crash or an unexpected error rolls back only these.
RENEWALS_PER_TRANSACTION = 20


class AlertKeyboards(Protocol):
    """Markups of alert messages (keyboards/alerts.py; injected: services never import
    keyboards)."""

    def low_balance_kb(self, topup_minor: int) -> InlineKeyboardMarkup: ...

    def orders_alert_kb(
        self, order_ids: Sequence[int], topup_minor: int
    ) -> InlineKeyboardMarkup: ...


@dataclass(frozen=True)
class AlertPolicy:
    """What the alert jobs need from the settings."""

    stages: tuple[int, ...] = (7, 3, 1)
    grace: timedelta = timedelta(days=3)
    renew_lead: timedelta = timedelta(hours=24)
    quiet_start: time | None = time(22, 0)
    quiet_end: time | None = time(9, 0)
    default_timezone: str = "UTC"
    default_language: str = "en"
    base_currency: str = "EUR"
    batch_size: int = 500

    @classmethod
    def from_settings(cls, settings: Any) -> AlertPolicy:
        start, end = parse_quiet_hours(getattr(settings, "quiet_hours", ""))
        return cls(
            stages=tuple(sorted(set(settings.expiry_alert_stages), reverse=True)),
            grace=timedelta(days=settings.overdue_grace_days),
            renew_lead=timedelta(hours=settings.auto_renew_lead_hours),
            quiet_start=start,
            quiet_end=end,
            default_timezone=settings.default_timezone,
            default_language=settings.default_language,
            base_currency=settings.default_currency,
        )


def policy_of(settings: Any) -> AlertPolicy:
    return settings if isinstance(settings, AlertPolicy) else AlertPolicy.from_settings(settings)


def parse_quiet_hours(text: str) -> tuple[time | None, time | None]:
    """'22:00-09:00' -> (22:00, 09:00); '' -> (None, None)."""
    if not text or not text.strip():
        return None, None
    first, _sep, last = text.strip().partition("-")
    return time.fromisoformat(first.strip()), time.fromisoformat(last.strip())


def _zone(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def deliver_at(
    now: datetime, timezone: str | None, policy: AlertPolicy, *, urgent: bool
) -> datetime:
    """`now`, or the end of the recipient's quiet hours when `now` falls inside them."""
    start, end = policy.quiet_start, policy.quiet_end
    if urgent or start is None or end is None or start == end:
        return now
    zone = _zone(timezone, policy.default_timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return now
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]


def _language(recipient: dto.Recipient, policy: AlertPolicy, i18n: I18n) -> str:
    language = recipient.language or policy.default_language
    return language if language in i18n.available_locales else policy.default_language


class _Render:
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


def _days_left(order: dto.DueOrder, now: datetime) -> int:
    seconds = (order.paid_until - now).total_seconds()
    return max(0, -int(-seconds // 86400))


def _payload(text: str, markup: InlineKeyboardMarkup | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"text": text}
    if markup is not None and markup.inline_keyboard:
        payload["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
    return payload


@dataclass
class ScanReport:
    """What one job run did (for logs and tests)."""

    alerts: int = 0
    orders: int = 0
    renewed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    expired: int = 0
    suspended: list[int] = field(default_factory=list)
    rearmed: int = 0
    seconds: float = 0.0  # wall time of the run (set by run_alert_jobs)


# ---- low balance -----------------------------------------------------------------------------
def low_balance_text(due: dto.LowBalanceDue, r: _Render) -> str:
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


async def scan_low_balance(
    gateway: BillingGateway,
    i18n: I18n,
    settings: Any,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> ScanReport:
    """One alert per crossing of the threshold; re-armed once the balance is back at or above
    it. Re-arming happens first, so a crossing that was repaired and repeated between two
    scans is told once more only if a scan saw the repair."""
    policy = policy_of(settings)
    report = ScanReport()
    async with gateway.transaction() as billing:
        report.rearmed = await billing.rearm_low_balance()
    after = 0
    while True:
        async with gateway.transaction() as billing:
            batch = await billing.low_balance_due(after_account_id=after, limit=policy.batch_size)
            flagged = set(
                await billing.mark_low_balance_alerted([d.recipient.account_id for d in batch])
            )
            messages = []
            for due in batch:
                if due.recipient.account_id not in flagged or due.recipient.chat_id is None:
                    continue  # a concurrent run told it
                upcoming = sum(order.price_minor for order in due.next_charges)
                topup = max(0, upcoming - due.balance_minor)
                with _localized(i18n, due.recipient, policy) as r:
                    payload = _payload(low_balance_text(due, r), keyboards.low_balance_kb(topup))
                account_id = due.recipient.account_id
                messages.append(
                    dto.OutgoingMessage(
                        due.recipient.chat_id,
                        payload,
                        idempotency_key=f"alert:low_balance:{account_id}:{due.crossing}",
                        not_before=deliver_at(now, due.recipient.timezone, policy, urgent=False),
                    )
                )
            await billing.enqueue_messages(messages)
            report.alerts += len(messages)
        if len(batch) < policy.batch_size:
            return report
        after = batch[-1].recipient.account_id


@contextmanager
def _localized(i18n: I18n, recipient: dto.Recipient, policy: AlertPolicy) -> Iterator[_Render]:
    """gettext and formatting in one account's language and time zone."""
    language = _language(recipient, policy, i18n)
    zone = _zone(recipient.timezone, policy.default_timezone)
    with i18n.context(), i18n.use_locale(language):
        yield _Render(language, zone, policy.base_currency)


# ---- expiring orders -------------------------------------------------------------------------
def expiring_text(
    orders: Sequence[dto.DueOrder], now: datetime, policy: AlertPolicy, r: _Render
) -> str:
    soon = [o for o in orders if o.stage > 0]
    expired = [o for o in orders if o.stage == 0]
    parts: list[str] = []
    if soon:
        lines = []
        for order in soon:
            days = _days_left(order, now)
            left = ngettext("{count} day left", "{count} days left", days).format(count=days)
            line = _("• {order}: paid until {date}, {left}").format(
                order=r.order(order), date=r.date(order.paid_until), left=left
            )
            if order.auto_renew:
                line += "\n  " + _("auto-renewal will charge {price}").format(
                    price=r.money(order.price_minor)
                )
            lines.append(line)
        title = ngettext(
            "⏳ <b>Your order expires soon</b>", "⏳ <b>Your orders expire soon</b>", len(soon)
        )
        parts.append(title + "\n" + "\n".join(lines))
    if expired:
        lines = [
            _("• {order}: expired on {date}, will be suspended on {suspend}").format(
                order=r.order(order),
                date=r.date(order.paid_until),
                suspend=r.date(order.paid_until + policy.grace),
            )
            for order in expired
        ]
        title = ngettext(
            "⛔ <b>Your order has expired</b>", "⛔ <b>Your orders have expired</b>", len(expired)
        )
        parts.append(title + "\n" + "\n".join(lines))
    parts.append(_("Renew in time to keep your services running."))
    return "\n\n".join(parts)


async def scan_expiring(
    gateway: BillingGateway,
    i18n: I18n,
    settings: Any,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> ScanReport:
    """Stages before paid-until (e.g. 7, 3, 1 days) and on expiry; each (order, paid-until,
    stage) once. A late scan tells only the current stage, not the ones it missed."""
    policy = policy_of(settings)
    report = ScanReport()
    after = 0
    while True:
        async with gateway.transaction() as billing:
            batch = await billing.expiring_due(
                now, policy.stages, policy.grace, after_account_id=after, limit=policy.batch_size
            )
            new = await billing.add_alert_marks(
                [
                    dto.AlertMarkSpec(
                        dto.MARK_EXPIRY, _expiry_key(o), o.order_id, o.paid_until, o.stage
                    )
                    for due in batch
                    for o in due.orders
                ]
            )
            messages = []
            for due in batch:
                orders = [o for o in due.orders if (dto.MARK_EXPIRY, _expiry_key(o)) in new]
                if not orders:
                    continue  # a concurrent run told them
                urgent = any(order.paid_until - now <= URGENT_WITHIN for order in orders)
                missing = sum(o.price_minor for o in orders) - due.recipient.balance_minor
                with _localized(i18n, due.recipient, policy) as r:
                    payload = _payload(
                        expiring_text(orders, now, policy, r),
                        keyboards.orders_alert_kb([o.order_id for o in orders], max(0, missing)),
                    )
                keys = [_expiry_key(o) for o in orders]
                message = _message(due.recipient, "expiry", keys, payload, now, policy, urgent)
                if message is not None:
                    messages.append(message)
                report.alerts += 1
                report.orders += len(orders)
            await billing.enqueue_messages(messages)
        if len(batch) < policy.batch_size:
            return report
        after = batch[-1].recipient.account_id


def _expiry_key(order: dto.DueOrder) -> str:
    return f"{order.order_id}:{order.paid_until.isoformat()}:{order.stage}"


def _message(
    recipient: dto.Recipient,
    kind: str,
    keys: Sequence[str],
    payload: dict[str, Any],
    now: datetime,
    policy: AlertPolicy,
    urgent: bool,
) -> dto.OutgoingMessage | None:
    if recipient.chat_id is None:
        return None
    return dto.OutgoingMessage(
        recipient.chat_id,
        payload,
        idempotency_key=f"alert:{kind}:{recipient.account_id}:{_digest(keys)}",
        not_before=deliver_at(now, recipient.timezone, policy, urgent=urgent),
    )


async def _enqueue(
    billing: Billing,
    recipient: dto.Recipient,
    kind: str,
    keys: Sequence[str],
    payload: dict[str, Any],
    now: datetime,
    policy: AlertPolicy,
    urgent: bool,
) -> None:
    message = _message(recipient, kind, keys, payload, now, policy, urgent)
    if message is not None:
        await billing.enqueue_messages([message])


# ---- auto-renewal ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Renewed:
    order: dto.DueOrder
    paid_until: datetime
    price_minor: int


@dataclass(frozen=True)
class _Failed:
    order: dto.DueOrder
    missing_minor: int | None  # None: not a money problem (e.g. the period is not sold any more)
    price_minor: int = 0  # what the renewal would have charged


def renewal_text(renewed: Sequence[_Renewed], failed: Sequence[_Failed], r: _Render) -> str:
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
        lines = []
        for item in failed:
            if item.missing_minor is not None:
                reason = _("not enough money on the balance, {missing} is missing").format(
                    missing=r.money(item.missing_minor)
                )
            else:
                reason = _("cannot be renewed automatically, please renew it yourself")
            lines.append(
                _("• {order}, paid until {date}: {reason}").format(
                    order=r.order(item.order), date=r.date(item.order.paid_until), reason=reason
                )
            )
        parts.append(_("❌ <b>Auto-renewal failed</b>") + "\n" + "\n".join(lines))
        if any(item.missing_minor is not None for item in failed):
            parts.append(_("Top up the balance and the order will be renewed automatically."))
    return "\n\n".join(parts)


async def run_auto_renewal(
    gateway: BillingGateway,
    i18n: I18n,
    settings: Any,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> ScanReport:
    """Renew orders with auto-renewal on from the balance `renew_lead` before paid-until.

    A few accounts per transaction: each order is renewed under a renewal mark keyed like the
    ledger entry, renewal_key(order, paid-until) — an overlapping run or another instance
    waits on that mark and skips the order, and the ledger key makes a repeated debit a no-op
    anyway. The result message is written in the same transaction. A failure is told once per
    renewal cycle; the renewal is retried on every run (a top-up renews it)."""
    policy = policy_of(settings)
    report = ScanReport()
    after = 0
    while True:
        async with gateway.transaction() as billing:
            batch = await billing.renewals_due(
                now, policy.renew_lead, after_account_id=after, limit=policy.batch_size
            )
        for first in range(0, len(batch), RENEWALS_PER_TRANSACTION):
            chunk = batch[first : first + RENEWALS_PER_TRANSACTION]
            done = ScanReport()
            try:
                async with gateway.transaction() as billing:
                    for due in chunk:
                        await _renew_and_tell(billing, due, i18n, policy, now, keyboards, done)
            except Exception:  # rolled back as a whole: the next run tries these again
                log.exception(
                    "Auto-renewal of accounts %s failed", [d.recipient.account_id for d in chunk]
                )
                continue
            report.alerts += done.alerts
            report.renewed += done.renewed
            report.failed += done.failed
        if len(batch) < policy.batch_size:
            return report
        after = batch[-1].recipient.account_id


async def _renew_and_tell(
    billing: Billing,
    due: dto.AccountDue,
    i18n: I18n,
    policy: AlertPolicy,
    now: datetime,
    keyboards: AlertKeyboards,
    report: ScanReport,
) -> None:
    renewed, failed = await _renew_account(billing, due)
    if failed:
        told = await billing.add_alert_marks(
            [
                dto.AlertMarkSpec(
                    dto.MARK_RENEWAL_TOLD,
                    _failure_key(item.order),
                    order_id=item.order.order_id,
                    period=item.order.paid_until,
                )
                for item in failed
            ]
        )
        failed = [i for i in failed if (dto.MARK_RENEWAL_TOLD, _failure_key(i.order)) in told]
    report.renewed += [item.order.order_id for item in renewed]
    report.failed += [item.order.order_id for item in failed]
    if not renewed and not failed:
        return
    missing = 0
    short = [item for item in failed if item.missing_minor is not None]
    if short:  # several orders share one balance: the top-up has to cover all of them
        balance = (await billing.get_account(due.recipient.account_id)).balance_minor
        missing = max(0, sum(item.price_minor for item in short) - balance)
        failed = [
            replace(item, missing_minor=max(0, item.price_minor - balance))
            if item.missing_minor is not None
            else item
            for item in failed
        ]
    with _localized(i18n, due.recipient, policy) as r:
        markup = (
            keyboards.orders_alert_kb([item.order.order_id for item in failed], missing)
            if failed
            else None
        )
        payload = _payload(renewal_text(renewed, failed, r), markup)
    keys = [f"ok:{i.order.order_id}:{i.order.paid_until}" for i in renewed] + [
        f"failed:{i.order.order_id}:{i.order.paid_until}" for i in failed
    ]
    await _enqueue(billing, due.recipient, "renewal", keys, payload, now, policy, bool(failed))
    report.alerts += 1


def _failure_key(order: dto.DueOrder) -> str:
    return f"failed:{renewal_key(order.order_id, order.paid_until)}"


async def _renew_account(
    billing: Billing, due: dto.AccountDue
) -> tuple[list[_Renewed], list[_Failed]]:
    renewed: list[_Renewed] = []
    failed: list[_Failed] = []
    for order in due.orders:
        current = await billing.get_order(order.account_id, order.order_id)
        if (
            current.paid_until != order.paid_until
            or current.status != order.status
            or not current.auto_renew
            or current.cancel_at_period_end
        ):
            continue  # changed since the scan (renewed by hand, auto-renewal switched off)
        key = renewal_key(order.order_id, order.paid_until)
        if not await billing.add_alert_mark(
            dto.MARK_RENEWAL, key, order_id=order.order_id, period=order.paid_until
        ):
            continue  # an overlapping run renews this period
        try:
            result = await billing.renew_order(
                order.account_id,
                order.order_id,
                order.period_months,
                idempotency_key=key,
                period_start=order.paid_until,
            )
        except DomainError as exc:
            await billing.remove_alert_mark(dto.MARK_RENEWAL, key)  # retried on the next run
            if isinstance(exc, InsufficientFunds):
                balance = (await billing.get_account(order.account_id)).balance_minor
                failed.append(_Failed(order, exc.missing_minor, exc.missing_minor + balance))
            else:
                log.warning("Auto-renewal of order %s failed: %r", order.order_id, exc)
                failed.append(_Failed(order, None))
            continue
        if result.paid_until != order.paid_until:
            renewed.append(_Renewed(order, result.paid_until, result.price_minor))
    return renewed, failed


# ---- overdue ---------------------------------------------------------------------------------
def suspended_text(orders: Sequence[dto.DueOrder], policy: AlertPolicy, r: _Render) -> str:
    lines = [
        _("• {order}: expired on {date}").format(order=r.order(o), date=r.date(o.paid_until))
        for o in orders
    ]
    title = ngettext(
        "🚫 <b>Your order is suspended</b>", "🚫 <b>Your orders are suspended</b>", len(orders)
    )
    days = policy.grace.days
    note = ngettext(
        "It was not renewed within {count} day after it expired. Renew it to resume the service.",
        "It was not renewed within {count} days after it expired. Renew it to resume the service.",
        days,
    ).format(count=days)
    return title + "\n" + "\n".join(lines) + "\n\n" + note


async def handle_overdue(
    gateway: BillingGateway,
    i18n: I18n,
    settings: Any,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> ScanReport:
    """Active orders past paid-until become expired (the expiry alert of stage 0 tells the
    customer); expired ones are suspended after the grace period and the customer is told —
    the status change and the message in one transaction."""
    policy = policy_of(settings)
    report = ScanReport()
    async with gateway.transaction() as billing:
        report.expired = await billing.expire_overdue_orders(now)
    while True:
        async with gateway.transaction() as billing:
            batch = await billing.suspension_due(now, policy.grace, limit=policy.batch_size)
            suspended = set(
                await billing.suspend_orders(
                    [o.order_id for due in batch for o in due.orders], now, policy.grace
                )
            )
            messages = []
            for due in batch:
                orders = [o for o in due.orders if o.order_id in suspended]
                if not orders:
                    continue
                report.suspended += [o.order_id for o in orders]
                with _localized(i18n, due.recipient, policy) as r:
                    payload = _payload(
                        suspended_text(orders, policy, r),
                        keyboards.orders_alert_kb([o.order_id for o in orders], 0),
                    )
                keys = [f"{o.order_id}:{o.paid_until.isoformat()}" for o in orders]
                message = _message(due.recipient, "suspended", keys, payload, now, policy, False)
                if message is not None:
                    messages.append(message)
                report.alerts += 1
            await billing.enqueue_messages(messages)
        if len(batch) < policy.batch_size:
            return report


async def run_alert_jobs(
    gateway: BillingGateway,
    i18n: I18n,
    settings: Any,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> dict[str, ScanReport]:
    """One scheduler tick: renewals first (a renewed order needs no expiry alert), then the
    overdue statuses, the expiry stages, and the low balance the renewals may have caused."""
    reports = {}
    for name, job in (
        ("renewal", run_auto_renewal),
        ("overdue", handle_overdue),
        ("expiring", scan_expiring),
        ("low_balance", scan_low_balance),
    ):
        started = time_module.perf_counter()
        try:
            reports[name] = await job(gateway, i18n, settings, now, keyboards=keyboards)
        except Exception:  # one broken job must not stop the others
            log.exception("Alert job %s failed", name)
            continue
        reports[name].seconds = time_module.perf_counter() - started
    return reports
