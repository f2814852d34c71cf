"""Telegram Payments: pre_checkout_query re-validates the invoice and is answered at once;
successful_payment credits the balance exactly once (the billing keys it on the charge id);
/refund <charge id> in the staff group returns a Stars payment (refundStarPayment)."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import InlineKeyboardMarkup, Message, PreCheckoutQuery, SuccessfulPayment
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import answer_or_queue, display_balance, display_rates, money
from handlers.desk import in_staff_chat, is_staff
from handlers.errors import domain_error_text, telegram_unavailable_error
from keyboards.payments import after_payment_kb
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.payments import Payment, PaymentResult, parse_payload
from services.errors import (
    AlreadyDone,
    BillingUnavailable,
    DomainError,
    InsufficientFunds,
    InvalidState,
    NotFound,
    PaymentBlocked,
    ValidationFailed,
)
from services.observers import observer

log = logging.getLogger(__name__)

HELD_NOTICE = "payment_held"  # bot store record: the customer was told the payment is kept
HELD_NOTICE_KEPT = timedelta(days=30)


def pre_checkout_error(error: DomainError) -> str:
    if isinstance(error, NotFound):
        return _("This invoice was not found. Please create a new one: /topup")
    if isinstance(error, InvalidState):
        if error.detail == "paid":
            return _("This invoice has already been paid.")
        return _("This invoice was cancelled. Please create a new one: /topup")
    if isinstance(error, ValidationFailed):
        return _("The payment does not match the invoice. Please open the invoice again: /invoices")
    if isinstance(error, PaymentBlocked):
        return domain_error_text(error)
    return domain_error_text(error)


async def pre_checkout(query: PreCheckoutQuery, billing: Billing, account: Account | None) -> None:
    invoice_id = parse_payload(query.invoice_payload)
    if invoice_id is None or account is None:
        await query.answer(ok=False, error_message=pre_checkout_error(NotFound("invoice")))
        return
    try:
        await billing.check_invoice_payable(
            account.id, invoice_id, query.currency, query.total_amount
        )
    except DomainError as error:
        await query.answer(ok=False, error_message=pre_checkout_error(error))
        return
    await query.answer(ok=True)


async def successful_payment(
    message: Message, billing: Billing, account: Account, bot: Bot
) -> None:
    """Recorded and committed before any answer; the answer that fails goes to the outbox.
    A replayed update (see bot/inbox.py) whose customer was never answered gets the receipt."""
    paid = message.successful_payment
    assert paid is not None
    charge_id = paid.telegram_payment_charge_id
    invoice_id = parse_payload(paid.invoice_payload)
    try:
        if invoice_id is None:
            raise NotFound("invoice")
        result = await billing.record_payment(
            account.id,
            invoice_id,
            currency=paid.currency,
            total_amount=paid.total_amount,
            charge_id=charge_id,
            provider_charge_id=paid.provider_payment_charge_id,
        )
    except BillingUnavailable:
        await _payment_held(bot, billing, message.chat.id, charge_id)
        return
    except (NotFound, ValidationFailed):
        # Money was taken but matches no invoice of this account: never silently dropped.
        log.error(
            "Unmatched payment: payload %r, %s %s, charge %s, provider charge %s, account %s",
            paid.invoice_payload,
            paid.total_amount,
            paid.currency,
            charge_id,
            paid.provider_payment_charge_id,
            account.id,
        )
        text = _(
            "We received your payment but could not match it to an invoice. "
            "Support will sort it out: please write to us with /newticket."
        )
        await _answer_payment(bot, billing, message.chat.id, charge_id, text)
        return
    if result.credited:
        observer().payment_credited(result.payment.provider)  # the metrics (bot/metrics.py)
    answered_before = await billing.payment_update_answered(charge_id)
    text, markup = await _receipt(billing, account, paid, result, repeat=answered_before)
    await _answer_payment(bot, billing, message.chat.id, charge_id, text, markup)


async def _payment_held(bot: Bot, billing: Billing, chat_id: int, charge_id: str) -> None:
    """The external billing cannot take the payment now. The customer has paid: say so
    (once, however often the update is replayed) and leave the update unanswered, so that the
    replay job (bot/scheduler.py) pushes it to the billing later and the receipt follows."""
    log.warning("Payment %s kept: the billing is unavailable; it will be replayed", charge_id)
    if await billing.get_adapter_state(HELD_NOTICE, charge_id[:128]) is not None:
        return
    text = _(
        "Payment received. It will appear on your balance as soon as our billing is "
        "reachable again."
    )
    await answer_or_queue(bot, billing, chat_id, text, key=f"payment-held:{charge_id}")
    forget_at = datetime.now(UTC) + HELD_NOTICE_KEPT
    await billing.put_adapter_state(
        HELD_NOTICE, charge_id[:128], {"noticed": True}, expires_at=forget_at
    )


async def _answer_payment(
    bot: Bot,
    billing: Billing,
    chat_id: int,
    charge_id: str,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    await answer_or_queue(bot, billing, chat_id, text, markup, key=f"payment:{charge_id}")
    await billing.mark_payment_update_answered(charge_id)


async def _receipt(
    billing: Billing,
    account: Account,
    paid: SuccessfulPayment,
    result: PaymentResult,
    *,
    repeat: bool,
) -> tuple[str, InlineKeyboardMarkup | None]:
    fresh = await billing.get_account(account.id)
    rates = await display_rates(billing, fresh)
    balance = display_balance(result.balance_minor, fresh, rates)
    if not result.credited and repeat:
        text = _("This payment has already been credited. Balance: <b>{balance}</b>")
        return text.format(balance=balance), None
    cart_waiting = await billing.get_cart(account.id) is not None
    text = _(
        "✅ <b>Payment received</b>\n\n"
        "Invoice No. {number}: {paid}\n"
        "Credited: {credit}\n"
        "Balance: <b>{balance}</b>"
    ).format(
        number=result.invoice.number,
        paid=money(paid.total_amount, paid.currency),
        credit=money(result.credit_minor, fresh.base_currency),
        balance=balance,
    )
    if cart_waiting:
        text += "\n\n" + _("Your order is waiting: complete it now from the balance.")
    return text, after_payment_kb(cart_waiting)


# ---- staff: Stars refunds ---------------------------------------------------------------------
@dataclass(frozen=True)
class RefundRefused:
    """Telegram said no: nothing was refunded."""

    reason: str


@dataclass(frozen=True)
class RefundUnconfirmed:
    """No answer (network, 5xx, a long 429): the refund may or may not have happened."""

    reason: str


async def ask_telegram_to_refund(
    bot: Bot, user_id: int, charge_id: str
) -> RefundRefused | RefundUnconfirmed | None:
    """None when Telegram refunded the charge now or earlier (a repeat is answered
    CHARGE_ALREADY_REFUNDED, which makes asking again safe)."""
    try:
        await bot.refund_star_payment(user_id=user_id, telegram_payment_charge_id=charge_id)
    except TelegramAPIError as exc:
        if telegram_unavailable_error(exc):
            return RefundUnconfirmed(exc.message)
        if "CHARGE_ALREADY_REFUNDED" in exc.message.upper():
            return None
        return RefundRefused(exc.message)
    return None


async def cmd_refund(
    message: Message,
    command: CommandObject,
    billing: Billing,
    bot: Bot,
    i18n: I18n,
    settings: Settings,
) -> None:
    """/refund <charge id>: the refund is recorded (the money taken back, the payment marked
    pending) and committed before Telegram is asked; then completed, or given back when
    Telegram refuses, or left pending when Telegram does not answer."""
    charge_id = (command.args or "").strip()
    if not charge_id or " " in charge_id:
        await message.reply(
            _("Usage: /refund <code>charge_id</code> (the telegram_payment_charge_id).")
        )
        return
    refundable = await _refundable_customer(message, billing, charge_id)
    if refundable is None:
        return
    customer, telegram_id = refundable
    if not await _begin_refund(message, billing, charge_id):
        return
    outcome = await ask_telegram_to_refund(bot, telegram_id, charge_id)
    if outcome is not None:
        await _refund_not_done(message, billing, charge_id, outcome)
        return
    payment = await billing.complete_refund(charge_id)
    await _report_refund(message, customer, payment)
    await _notify_refunded_customer(bot, billing, i18n, settings, customer, payment, charge_id)


async def _refundable_customer(
    message: Message, billing: Billing, charge_id: str
) -> tuple[Account, int] | None:
    """The customer of the payment and their Telegram id, or None after saying why not."""
    found = await billing.find_payment(charge_id)
    if found is None:
        await message.reply(_("No payment with this charge id."))
        return None
    customer = await billing.get_account(found.account_id)
    if customer.telegram_id is None:
        await message.reply(_("This payment cannot be refunded through Telegram."))
        return None
    return customer, customer.telegram_id


async def _begin_refund(message: Message, billing: Billing, charge_id: str) -> bool:
    """Record the refund intent; False (after saying why) when the billing refuses it."""
    actor = f"tg:{message.from_user.id}" if message.from_user else "staff"
    try:
        # Recorded and committed first: whatever happens to the calls below, the ledger knows.
        await billing.begin_refund(charge_id, actor=actor)
    except InvalidState as exc:
        await message.reply(_refund_refused_text(exc))
        return False
    except AlreadyDone as exc:
        if exc.detail == "refund_pending":
            await message.reply(_("A refund of this payment is already in progress."))
        else:
            await message.reply(_("This payment has already been refunded."))
        return False
    except InsufficientFunds as exc:
        await message.reply(
            _("The customer has already spent this money: {missing} is missing.").format(
                missing=money(exc.missing_minor, exc.currency)
            )
        )
        return False
    return True


def _refund_refused_text(error: InvalidState) -> str:
    if error.detail == "invoice_payment":
        return _("This payment paid an invoice in the billing: refund it there, not from the chat.")
    if error.detail == "payment_pending":
        return _("This payment has not reached the billing yet. Try again later.")
    return _("Only payments in Telegram Stars can be refunded here.")


async def _refund_not_done(
    message: Message,
    billing: Billing,
    charge_id: str,
    outcome: RefundRefused | RefundUnconfirmed,
) -> None:
    """Telegram refused (the money is given back) or did not answer (the refund stays pending
    and the money held: /refund again finishes it)."""
    if isinstance(outcome, RefundRefused):
        await billing.cancel_refund(charge_id)
        await message.reply(
            _("Telegram refused the refund: {reason}. The customer's balance is as it was.").format(
                reason=html.escape(outcome.reason)
            )
        )
        return
    log.warning("Refund of charge %s not confirmed: %s", charge_id, outcome.reason)
    await message.reply(
        _(
            "Telegram did not confirm the refund ({reason}). It is recorded as pending and "
            "the money is held: send /refund <code>{charge}</code> again to finish it."
        ).format(reason=html.escape(outcome.reason), charge=html.escape(charge_id))
    )


async def _report_refund(message: Message, customer: Account, payment: Payment) -> None:
    await message.reply(
        _("↩️ Refunded {stars} to {login}; {amount} was taken off the balance.").format(
            stars=money(payment.amount_minor, payment.currency),
            login=customer.login,
            amount=money(payment.credit_minor, customer.base_currency),
        )
    )


async def _notify_refunded_customer(
    bot: Bot,
    billing: Billing,
    i18n: I18n,
    settings: Settings,
    customer: Account,
    payment: Payment,
    charge_id: str,
) -> None:
    """In the customer's language; through the outbox when Telegram refuses or is down."""
    if customer.chat_id is None:
        return
    with i18n.use_locale(customer.language or settings.default_language):
        text = _(
            "↩️ Your payment of {stars} was refunded; {amount} was taken off the balance."
        ).format(
            stars=money(payment.amount_minor, payment.currency),
            amount=money(payment.credit_minor, customer.base_currency),
        )
    await answer_or_queue(bot, billing, customer.chat_id, text, key=f"refund:{charge_id}")


def create_router() -> Router:
    router = Router(name="payments")
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, F.successful_payment, F.chat.type == "private")
    router.message.register(cmd_refund, in_staff_chat, Command("refund"), is_staff)
    return router
