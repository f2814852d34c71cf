"""The alert jobs: low balance, expiring orders, auto-renewal and overdue orders.

Each job is a plain async function of its dependencies and a clock value (`now`), so the
scheduler binds them once and the tests call them with a fixed time. Jobs only talk to the
billing interface: it finds what is due (the SQL filters), and in one transaction per batch
the job records the alert (an alert mark or a state flag) and writes the message to the outbox
with an idempotency key. The sender (services/outbox.py) delivers it; a crash at any point
neither loses nor repeats an alert.

Messages are grouped per account (one message listing several orders), rendered in the
account's language (services/alert_texts.py), and held back during the account's quiet hours
unless they are urgent (an order expiring within a day or already expired, a failed renewal).
"""

from __future__ import annotations

import hashlib
import logging
import time as time_module
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any, TypeVar

from aiogram.utils.i18n import I18n

from services.alert_texts import (
    AlertKeyboards,
    FailedRenewal,
    LocaleDefaults,
    Render,
    RenewedOrder,
    alert_email,
    expiring_payload,
    localized,
    low_balance_payload,
    renewal_payload,
    suspended_payload,
    zone_of,
)
from services.billing import Billing, BillingGateway
from services.contracts import alerts as dto
from services.contracts.orders import renewal_key

log = logging.getLogger(__name__)

URGENT_WITHIN = timedelta(days=1)
# Renewals of a chunk of accounts are one billing call (a few statements, set-based) in one
# transaction: the write lock is held briefly and an unexpected error rolls back only these.
RENEWALS_PER_TRANSACTION = 100


@dataclass(frozen=True)
class AlertPolicy:
    """What the alert jobs need from the settings (bot/scheduler.py builds it from them)."""

    stages: tuple[int, ...] = (7, 3, 1)  # days before paid-until, descending
    grace: timedelta = timedelta(days=3)  # expired orders are suspended this long after it
    renew_lead: timedelta = timedelta(hours=24)  # auto-renewal runs this long before it
    quiet_start: time | None = time(22, 0)  # recipient's local time; None: no quiet hours
    quiet_end: time | None = time(9, 0)
    default_timezone: str = "UTC"
    default_language: str = "en"
    base_currency: str = "EUR"
    batch_size: int = 500  # accounts per page: memory stays bounded however many are due
    # Customers who blocked the bot are told too when they confirmed an e-mail: the sender
    # e-mails what Telegram refuses (services/outbox_email.py). Set when SMTP is configured.
    email_unreachable: bool = False

    @property
    def locale(self) -> LocaleDefaults:
        return LocaleDefaults(self.default_language, self.default_timezone, self.base_currency)


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

    def add(self, other: ScanReport) -> None:
        """Adds the counts of a committed batch (the wall time is the caller's)."""
        self.alerts += other.alerts
        self.orders += other.orders
        self.renewed += other.renewed
        self.failed += other.failed
        self.expired += other.expired
        self.suspended += other.suspended
        self.rearmed += other.rearmed


def deliver_at(
    now: datetime, timezone: str | None, policy: AlertPolicy, *, urgent: bool
) -> datetime:
    """`now`, or the end of the recipient's quiet hours when `now` falls inside them."""
    start, end = policy.quiet_start, policy.quiet_end
    if urgent or start is None or end is None or start == end:
        return now
    zone = zone_of(timezone, policy.default_timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return now
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


# ---- paging through what is due --------------------------------------------------------------
DueT = TypeVar("DueT", dto.AccountDue, dto.LowBalanceDue)
Messages = list[dto.OutgoingMessage | None]  # None: no chat to tell, the alert is recorded anyway
# (billing, after_account_id) -> the next page of what is due, ordered by account id
FetchPage = Callable[[Billing, int], Awaitable[Sequence[DueT]]]
# records the alerts of a batch (marks, flags, renewals), counts them, returns the messages
HandleBatch = Callable[[Billing, Sequence[DueT], ScanReport], Awaitable[Messages]]


async def _record_and_queue(
    billing: Billing, batch: Sequence[DueT], handle: HandleBatch[DueT]
) -> ScanReport:
    """Inside an open transaction: record the batch's alerts and queue their messages."""
    done = ScanReport()
    messages = [message for message in await handle(billing, batch, done) if message]
    if messages:
        await billing.enqueue_messages(messages)
    return done


async def _in_batches(
    gateway: BillingGateway,
    page_size: int,
    fetch: FetchPage[DueT],
    handle: HandleBatch[DueT],
    *,
    accounts_per_transaction: int | None = None,
    job: str = "Alert job",
) -> ScanReport:
    """Page through what is due, `page_size` accounts at a time (bounded memory). The mark or
    flag `handle` writes makes an alert once per stage (a concurrent run or another instance
    finds it taken); the messages are queued in the same transaction and counted once it has
    committed. A page is read and handled in one transaction and an error ends the job, or,
    with `accounts_per_transaction`, read on its own and handled in chunks: a failed chunk is
    rolled back whole and logged, and the next run tries it again."""
    report = ScanReport()
    after = 0
    while True:
        if accounts_per_transaction is None:
            async with gateway.transaction() as billing:
                page = await fetch(billing, after)
                done = await _record_and_queue(billing, page, handle)
            report.add(done)
        else:
            async with gateway.transaction() as billing:
                page = await fetch(billing, after)
            for first in range(0, len(page), accounts_per_transaction):
                chunk = page[first : first + accounts_per_transaction]
                try:
                    async with gateway.transaction() as billing:
                        done = await _record_and_queue(billing, chunk, handle)
                except Exception:  # rolled back as a whole: the next run tries these again
                    accounts = [due.recipient.account_id for due in chunk]
                    log.exception("%s of accounts %s failed", job, accounts)
                    continue
                report.add(done)
        if len(page) < page_size:
            return report
        after = page[-1].recipient.account_id


# ---- messages --------------------------------------------------------------------------------
RenderPayload = Callable[[Render, AlertKeyboards], dict[str, Any]]
"""One of the *_payload builders of services/alert_texts.py with its data bound."""


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class _JobRun:
    """What one job run renders and schedules its messages with."""

    i18n: I18n
    policy: AlertPolicy
    now: datetime
    keyboards: AlertKeyboards

    def message(
        self,
        recipient: dto.Recipient,
        kind: str,
        told: str,
        payload: RenderPayload,
        *,
        urgent: bool,
    ) -> dto.OutgoingMessage | None:
        """The outbox row of an alert, rendered in the recipient's language, with its e-mail
        copy (sent instead when the customer blocked the bot); None without a chat to send it
        to. `told` names what it tells: the idempotency key queues it once."""
        if recipient.chat_id is None:
            return None
        with localized(self.i18n, recipient, self.policy.locale) as r:
            rendered = payload(r, self.keyboards)
            email = alert_email(kind, rendered["text"])
        return dto.OutgoingMessage(
            recipient.chat_id,
            rendered,
            idempotency_key=f"alert:{kind}:{recipient.account_id}:{told}",
            not_before=deliver_at(self.now, recipient.timezone, self.policy, urgent=urgent),
            account_id=recipient.account_id,
            email=email,
        )


# ---- low balance -----------------------------------------------------------------------------
async def _tell_low_balance(
    run: _JobRun, billing: Billing, batch: Sequence[dto.LowBalanceDue], done: ScanReport
) -> Messages:
    flagged = set(await billing.mark_low_balance_alerted([d.recipient.account_id for d in batch]))
    messages: Messages = []
    for due in batch:
        if due.recipient.account_id not in flagged:
            continue  # a concurrent run told it
        payload = partial(low_balance_payload, due)
        messages.append(
            run.message(due.recipient, "low_balance", str(due.crossing), payload, urgent=False)
        )
    done.alerts += sum(1 for message in messages if message)  # only those that will be sent
    return messages


async def scan_low_balance(
    gateway: BillingGateway,
    i18n: I18n,
    policy: AlertPolicy,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> ScanReport:
    """One alert per crossing of the threshold; re-armed once the balance is back at or above
    it. Re-arming happens first, so a crossing that was repaired and repeated between two
    scans is told once more only if a scan saw the repair."""
    report = ScanReport()
    async with gateway.transaction() as billing:
        report.rearmed = await billing.rearm_low_balance()

    async def fetch(billing: Billing, after: int) -> list[dto.LowBalanceDue]:
        return await billing.low_balance_due(
            after_account_id=after, limit=policy.batch_size, emailable=policy.email_unreachable
        )

    handle = partial(_tell_low_balance, _JobRun(i18n, policy, now, keyboards))
    report.add(await _in_batches(gateway, policy.batch_size, fetch, handle))
    return report


# ---- expiring orders -------------------------------------------------------------------------
def _expiry_key(order: dto.DueOrder) -> str:
    return f"{order.order_id}:{order.paid_until.isoformat()}:{order.stage}"


async def _tell_expiring(
    run: _JobRun, billing: Billing, batch: Sequence[dto.AccountDue], done: ScanReport
) -> Messages:
    new = await billing.add_alert_marks(
        [
            dto.AlertMarkSpec(dto.MARK_EXPIRY, _expiry_key(o), o.order_id, o.paid_until, o.stage)
            for due in batch
            for o in due.orders
        ]
    )
    messages: Messages = []
    for due in batch:
        orders = [o for o in due.orders if (dto.MARK_EXPIRY, _expiry_key(o)) in new]
        if not orders:
            continue  # a concurrent run told them
        urgent = any(order.paid_until - run.now <= URGENT_WITHIN for order in orders)
        told = _digest([_expiry_key(o) for o in orders])
        balance = due.recipient.balance_minor
        payload = partial(expiring_payload, orders, balance, run.now, run.policy.grace)
        messages.append(run.message(due.recipient, "expiry", told, payload, urgent=urgent))
        done.alerts += 1
        done.orders += len(orders)
    return messages


async def scan_expiring(
    gateway: BillingGateway,
    i18n: I18n,
    policy: AlertPolicy,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> ScanReport:
    """Stages before paid-until (e.g. 7, 3, 1 days) and on expiry; each (order, paid-until,
    stage) once. A late scan tells only the current stage, not the ones it missed."""

    async def fetch(billing: Billing, after: int) -> list[dto.AccountDue]:
        return await billing.expiring_due(
            now,
            policy.stages,
            policy.grace,
            after_account_id=after,
            limit=policy.batch_size,
            emailable=policy.email_unreachable,
        )

    handle = partial(_tell_expiring, _JobRun(i18n, policy, now, keyboards))
    return await _in_batches(gateway, policy.batch_size, fetch, handle)


# ---- auto-renewal ----------------------------------------------------------------------------
def _failure_key(order: dto.DueOrder) -> str:
    return f"failed:{renewal_key(order.order_id, order.paid_until)}"


def _renewal_mark(order: dto.DueOrder) -> dto.AlertMarkSpec:
    key = renewal_key(order.order_id, order.paid_until)
    return dto.AlertMarkSpec(dto.MARK_RENEWAL, key, order.order_id, order.paid_until)


async def _renew_orders(
    billing: Billing, orders: list[dto.DueOrder]
) -> dict[int, dto.RenewalResult]:
    """Renew the batch's orders in one call under their renewal marks; by order id. An order
    whose mark is taken is left out (an overlapping run renews this period); the mark of one
    that was not renewed is given back, so the next run tries it again."""
    marks = {order.order_id: _renewal_mark(order) for order in orders}
    taken = await billing.add_alert_marks(list(marks.values()))
    mine = [o for o in orders if (dto.MARK_RENEWAL, marks[o.order_id].key) in taken]
    results = {result.order_id: result for result in await billing.renew_due_orders(mine)}
    for order_id, result in results.items():
        if result.outcome != dto.RENEWAL_DONE:
            await billing.remove_alert_mark(dto.MARK_RENEWAL, marks[order_id].key)
        if result.outcome == dto.RENEWAL_FAILED:
            log.warning("Auto-renewal of order %s failed: %s", order_id, result.error)
    return results


def _outcomes(
    due: dto.AccountDue, results: dict[int, dto.RenewalResult]
) -> tuple[list[RenewedOrder], list[FailedRenewal]]:
    renewed: list[RenewedOrder] = []
    failed: list[FailedRenewal] = []
    for order in due.orders:
        result = results.get(order.order_id)
        if result is None or result.outcome == dto.RENEWAL_SKIPPED:
            continue  # changed since the scan, or an overlapping run renews it
        if result.outcome == dto.RENEWAL_DONE:
            assert result.paid_until is not None
            renewed.append(RenewedOrder(order, result.paid_until, result.price_minor))
        elif result.outcome == dto.RENEWAL_SHORT:
            failed.append(FailedRenewal(order, result.missing_minor, result.price_minor))
        else:
            failed.append(FailedRenewal(order, None))
    return renewed, failed


async def _not_told_yet(billing: Billing, failed: list[FailedRenewal]) -> set[str]:
    """The failure keys of `failed` not told yet: a failure is told once per renewal cycle
    (the renewal itself is retried every run). One statement for the whole batch."""
    if not failed:
        return set()
    told = await billing.add_alert_marks(
        [
            dto.AlertMarkSpec(
                dto.MARK_RENEWAL_TOLD, _failure_key(i.order), i.order.order_id, i.order.paid_until
            )
            for i in failed
        ]
    )
    return {key for kind, key in told if kind == dto.MARK_RENEWAL_TOLD}


async def _renew_and_tell(
    run: _JobRun, billing: Billing, batch: Sequence[dto.AccountDue], done: ScanReport
) -> Messages:
    results = await _renew_orders(billing, [o for due in batch for o in due.orders])
    outcomes = {due.recipient.account_id: _outcomes(due, results) for due in batch}
    told = await _not_told_yet(billing, [f for _, failed in outcomes.values() for f in failed])
    messages: Messages = []
    for due in batch:
        renewed, failed = outcomes[due.recipient.account_id]
        failed = [item for item in failed if _failure_key(item.order) in told]
        done.renewed += [item.order.order_id for item in renewed]
        done.failed += [item.order.order_id for item in failed]
        if not renewed and not failed:
            continue
        balance = None  # given only when the message has to say how much is missing
        short = [results[i.order.order_id] for i in failed if i.missing_minor is not None]
        if short:
            balance = short[0].balance_minor
        told_key = _digest(
            [f"ok:{i.order.order_id}:{i.order.paid_until}" for i in renewed]
            + [f"failed:{i.order.order_id}:{i.order.paid_until}" for i in failed]
        )
        payload = partial(renewal_payload, renewed, failed, balance)
        messages.append(
            run.message(due.recipient, "renewal", told_key, payload, urgent=bool(failed))
        )
        done.alerts += 1
    return messages


async def run_auto_renewal(
    gateway: BillingGateway,
    i18n: I18n,
    policy: AlertPolicy,
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

    async def fetch(billing: Billing, after: int) -> list[dto.AccountDue]:
        return await billing.renewals_due(
            now, policy.renew_lead, after_account_id=after, limit=policy.batch_size
        )

    handle = partial(_renew_and_tell, _JobRun(i18n, policy, now, keyboards))
    chunk = RENEWALS_PER_TRANSACTION
    return await _in_batches(
        gateway,
        policy.batch_size,
        fetch,
        handle,
        accounts_per_transaction=chunk,
        job="Auto-renewal",
    )


# ---- overdue ---------------------------------------------------------------------------------
async def _suspend_and_tell(
    run: _JobRun, billing: Billing, batch: Sequence[dto.AccountDue], done: ScanReport
) -> Messages:
    order_ids = [o.order_id for due in batch for o in due.orders]
    suspended = set(await billing.suspend_orders(order_ids, run.now, run.policy.grace))
    messages: Messages = []
    for due in batch:
        orders = [o for o in due.orders if o.order_id in suspended]
        if not orders:
            continue
        done.suspended += [o.order_id for o in orders]
        told = _digest([f"{o.order_id}:{o.paid_until.isoformat()}" for o in orders])
        payload = partial(suspended_payload, orders, run.policy.grace)
        messages.append(run.message(due.recipient, "suspended", told, payload, urgent=False))
        done.alerts += 1
    return messages


async def handle_overdue(
    gateway: BillingGateway,
    i18n: I18n,
    policy: AlertPolicy,
    now: datetime,
    *,
    keyboards: AlertKeyboards,
) -> ScanReport:
    """Active orders past paid-until become expired (the expiry alert of stage 0 tells the
    customer); expired ones are suspended after the grace period and the customer is told —
    the status change and the message in one transaction."""
    report = ScanReport()
    async with gateway.transaction() as billing:
        report.expired = await billing.expire_overdue_orders(now)

    async def fetch(billing: Billing, _after: int) -> list[dto.AccountDue]:
        # Suspended orders leave the due set, so every page is read from the start.
        return await billing.suspension_due(now, policy.grace, limit=policy.batch_size)

    handle = partial(_suspend_and_tell, _JobRun(i18n, policy, now, keyboards))
    report.add(await _in_batches(gateway, policy.batch_size, fetch, handle))
    return report


# ---- one tick --------------------------------------------------------------------------------
async def run_alert_jobs(
    gateway: BillingGateway,
    i18n: I18n,
    policy: AlertPolicy,
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
            reports[name] = await job(gateway, i18n, policy, now, keyboards=keyboards)
        except Exception:  # one broken job must not stop the others
            log.exception("Alert job %s failed", name)
            continue
        reports[name].seconds = time_module.perf_counter() - started
    return reports
