"""Invoices (/invoices): the list, details, paying (Telegram invoice by card or in Stars, or
from the balance), cancelling; and the payment history (the ledger)."""

from __future__ import annotations

import logging
from decimal import Decimal

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, LabeledPrice, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from babel.numbers import format_decimal

from bot.config import Settings
from handlers.common import date, display_balance, display_rates, locale, money, show
from handlers.errors import domain_error_text
from handlers.web_links import pay_url
from keyboards.callbacks import MenuCb
from keyboards.payments import (
    HistoryCb,
    InvoiceAction,
    InvoiceCb,
    InvoicesCb,
    history_kb,
    invoice_kb,
    invoices_kb,
    payment_blocked_kb,
)
from services.billing import Billing
from services.contracts.common import Account, LedgerLine
from services.contracts.payments import STARS, Invoice
from services.errors import PaymentBlocked

log = logging.getLogger(__name__)

INVOICES_PER_PAGE = 5
HISTORY_PER_PAGE = 10
STATUS_ICONS = {"unpaid": "⏳", "paid": "✅", "cancelled": "✖️", "refunded": "↩️"}


def status_text(status: str) -> str:
    return {
        "unpaid": _("unpaid"),
        "paid": _("paid"),
        "cancelled": _("cancelled"),
        "refunded": _("refunded"),
    }.get(status, status)


def method_text(method: str | None) -> str:
    return {
        "card": _("by card"),
        "stars": _("with Telegram Stars"),
        "balance": _("from the balance"),
    }.get(method or "", method or "")


def reason_text(kind: str) -> str:
    return {
        "topup": _("top-up"),
        "order": _("order"),
        "renewal": _("renewal"),
        "refund": _("refund"),
        "refund_cancelled": _("refund cancelled"),
        "adjustment": _("manual adjustment"),
    }.get(kind, _("other operation"))


def rate_text(base: str, currency: str, rate: Decimal) -> str:
    value = format_decimal(rate, format="#,##0.########", locale=locale())
    return f"1 {base} = {value} {currency}"


def invoice_title(invoice: Invoice) -> str:
    """At most 32 characters: Telegram's limit for an invoice title."""
    if invoice.purpose == "topup":
        return _("Balance top-up")
    return _("Invoice {number}").format(number=invoice.number)


def invoice_description(invoice: Invoice) -> str:
    """The Telegram invoice's description (the chat's and the web's pay buttons)."""
    if invoice.purpose == "topup":
        return _("Invoice No. {number}: {amount} to the balance.").format(
            number=invoice.number, amount=money(invoice.credit_minor, invoice.base_currency)
        )
    return _("Invoice No. {number}: {amount}.").format(
        number=invoice.number, amount=money(invoice.amount_minor, invoice.currency)
    )


def invoice_text(invoice: Invoice) -> str:
    lines = [
        _("🧾 <b>Invoice No. {number}</b>").format(number=invoice.number),
        _("Date: {date}").format(date=date(invoice.created_at)),
        _("Purpose: {purpose}").format(
            purpose=_("balance top-up") if invoice.purpose == "topup" else _("order payment")
        ),
        _("Amount: <b>{amount}</b>").format(amount=money(invoice.amount_minor, invoice.currency)),
    ]
    if invoice.currency != invoice.base_currency:
        lines.append(
            _("Rate: {rate}").format(
                rate=rate_text(invoice.base_currency, invoice.currency, invoice.rate.normalize())
            )
        )
    if invoice.purpose == "topup":
        lines.append(
            _("To the balance: {amount}").format(
                amount=money(invoice.credit_minor, invoice.base_currency)
            )
        )
    lines.append(_("Status: <b>{status}</b>").format(status=status_text(invoice.status)))
    if invoice.paid_at is not None and invoice.method:
        lines.append(
            _("Paid on {date} {method}").format(
                date=date(invoice.paid_at), method=method_text(invoice.method)
            )
        )
    elif invoice.paid_at is not None:  # an external billing may not say how
        lines.append(_("Paid on {date}").format(date=date(invoice.paid_at)))
    if invoice.status == "unpaid":
        lines.append("")
        lines.append(_("Choose how to pay:"))
    return "\n".join(lines)


def stars_payable(invoice: Invoice, settings: Settings) -> bool:
    return bool(invoice.stars_amount) and invoice.stars_amount <= settings.stars_max_per_invoice  # type: ignore[operator]


async def render_invoice(
    event: Message | CallbackQuery,
    billing: Billing,
    account: Account,
    settings: Settings,
    invoice: Invoice,
    page: int = 0,
    notice: str | None = None,
    header: str | None = None,
) -> None:
    unpaid = invoice.status == "unpaid"
    card_label = stars_label = None
    if unpaid and settings.payment_provider_token and invoice.currency != STARS:
        card_label = _("💳 Go to payment: {amount} by card").format(
            amount=money(invoice.amount_minor, invoice.currency)
        )
    if unpaid and stars_payable(invoice, settings):
        count = invoice.stars_amount or 0
        stars_label = ngettext(
            "⭐ Go to payment: {count} Telegram Star",
            "⭐ Go to payment: {count} Telegram Stars",
            count,
        ).format(count=format_decimal(count, locale=locale()))
    from_balance = False
    if unpaid and invoice.purpose != "topup":
        balance = (await billing.get_account(account.id)).balance_minor
        from_balance = balance >= invoice.credit_minor
    markup = invoice_kb(
        invoice.id,
        page,
        card_label=card_label,
        stars_label=stars_label,
        from_balance=from_balance,
        cancellable=unpaid,
        pay_url=pay_url(settings, invoice.id, account.id) if unpaid else None,
    )
    text = invoice_text(invoice)
    await show(event, f"{header}\n\n{text}" if header else text, markup, notice)


async def show_payment_blocked(
    event: Message | CallbackQuery, error: PaymentBlocked, resume: str = ""
) -> None:
    """The payment gate. `resume` (see handlers.balance.resume_payment) is where the guided
    fill-in it leads to brings the customer back: the top-up or the invoice being paid."""
    text = _("⛔ <b>Payment is not possible yet</b>\n\n{reason}").format(
        reason=domain_error_text(error)
    )
    await show(event, text, payment_blocked_kb(error.company_unverified, resume))


def invoice_resume(invoice_id: int) -> str:
    """The payment gate's way back to paying an invoice (see handlers.balance)."""
    return f"{RESUME_INVOICE}{invoice_id}"


RESUME_INVOICE = "iv-"


# ---- the list -------------------------------------------------------------------------------
async def show_invoices(
    event: Message | CallbackQuery, billing: Billing, account: Account, page: int = 0
) -> None:
    page = max(0, page)
    result = await billing.list_invoices(account.id, page * INVOICES_PER_PAGE, INVOICES_PER_PAGE)
    if not result.items and page > 0:  # a stale page button: show the last page
        page = result.page_count - 1
        result = await billing.list_invoices(
            account.id, page * INVOICES_PER_PAGE, INVOICES_PER_PAGE
        )
    if not result.items:
        text = _("🧾 <b>Invoices</b>\n\nNo invoices yet. Top up the balance to get one.")
    else:
        header = _("🧾 <b>Invoices</b> — page {page} of {pages}").format(
            page=result.page_number, pages=result.page_count
        )
        lines = [
            "{icon} {number} · {date} · {amount} · {status}".format(
                icon=STATUS_ICONS.get(i.status, "•"),
                number=i.number,
                date=date(i.created_at),
                amount=money(i.amount_minor, i.currency),
                status=status_text(i.status),
            )
            for i in result.items
        ]
        text = header + "\n\n" + "\n".join(lines)
    items = [
        (
            i.id,
            f"{STATUS_ICONS.get(i.status, '•')} {i.number} · {money(i.amount_minor, i.currency)}"[
                :64
            ],
        )
        for i in result.items
    ]
    await show(event, text, invoices_kb(items, page, result.page_count))


async def cmd_invoices(
    event: Message | CallbackQuery, billing: Billing, account: Account, state: FSMContext
) -> None:
    await state.clear()
    await show_invoices(event, billing, account)


async def invoices_page(
    query: CallbackQuery, callback_data: InvoicesCb, billing: Billing, account: Account
) -> None:
    await show_invoices(query, billing, account, callback_data.page)


# ---- one invoice ----------------------------------------------------------------------------
async def _invoice(callback_data: InvoiceCb, billing: Billing, account: Account) -> Invoice:
    """The invoice of a button, re-read: NotFound (an alert) if it is not the caller's."""
    return await billing.get_invoice(account.id, callback_data.invoice_id)


async def invoice_view(
    query: CallbackQuery,
    callback_data: InvoiceCb,
    billing: Billing,
    account: Account,
    settings: Settings,
) -> None:
    invoice = await _invoice(callback_data, billing, account)
    await render_invoice(query, billing, account, settings, invoice, callback_data.page)


async def invoice_cancel(
    query: CallbackQuery,
    callback_data: InvoiceCb,
    billing: Billing,
    account: Account,
    settings: Settings,
) -> None:
    invoice = await billing.cancel_invoice(account.id, callback_data.invoice_id)
    notice = _("The invoice was cancelled.")
    await render_invoice(query, billing, account, settings, invoice, callback_data.page, notice)


async def _payable(
    query: CallbackQuery,
    callback_data: InvoiceCb,
    billing: Billing,
    account: Account,
    settings: Settings,
) -> Invoice | None:
    """The invoice of a pay button if it can be paid now, or None after saying why not."""
    invoice = await _invoice(callback_data, billing, account)
    if invoice.status != "unpaid":
        notice = _("This invoice is {status}: there is nothing to pay.").format(
            status=status_text(invoice.status)
        )
        await render_invoice(query, billing, account, settings, invoice, callback_data.page, notice)
        return None
    try:
        await billing.require_payment_allowed(account.id)
    except PaymentBlocked as error:
        await show_payment_blocked(query, error, invoice_resume(invoice.id))
        return None
    return invoice


async def not_available(query: CallbackQuery) -> None:
    await query.answer(_("This way of paying is not available."), show_alert=True)


async def invoice_pay_from_balance(
    query: CallbackQuery,
    callback_data: InvoiceCb,
    billing: Billing,
    account: Account,
    settings: Settings,
) -> None:
    invoice = await _payable(query, callback_data, billing, account, settings)
    if invoice is None:
        return
    invoice = await billing.pay_invoice_from_balance(account.id, invoice.id)
    notice = _("Paid from the balance.")
    await render_invoice(query, billing, account, settings, invoice, callback_data.page, notice)


async def invoice_pay_by_card(
    query: CallbackQuery,
    callback_data: InvoiceCb,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
) -> None:
    invoice = await _payable(query, callback_data, billing, account, settings)
    if invoice is None:
        return
    if not settings.payment_provider_token or invoice.currency == STARS:
        await not_available(query)
        return
    token = settings.payment_provider_token.get_secret_value()
    await send_telegram_invoice(query, bot, invoice, invoice.currency, invoice.amount_minor, token)


async def invoice_pay_in_stars(
    query: CallbackQuery,
    callback_data: InvoiceCb,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
) -> None:
    invoice = await _payable(query, callback_data, billing, account, settings)
    if invoice is None:
        return
    if not stars_payable(invoice, settings):
        await not_available(query)
        return
    await send_telegram_invoice(query, bot, invoice, STARS, invoice.stars_amount or 0, None)


async def send_telegram_invoice(
    query: CallbackQuery, bot: Bot, invoice: Invoice, currency: str, amount: int, token: str | None
) -> None:
    try:
        await bot.send_invoice(
            chat_id=query.from_user.id,
            title=invoice_title(invoice)[:32],
            description=invoice_description(invoice)[:255],
            payload=invoice.payload,
            currency=currency,
            prices=[LabeledPrice(label=invoice_title(invoice)[:32], amount=amount)],
            provider_token=token,
        )
    except TelegramBadRequest as exc:
        log.warning("sendInvoice for invoice %s refused: %s", invoice.id, exc.message)
        await query.answer(
            _("Telegram could not open this payment. Please try another way to pay."),
            show_alert=True,
        )
        return
    await query.answer(_("The invoice is below: tap “Pay”."))


# ---- payment history ------------------------------------------------------------------------
def ledger_line_text(line: LedgerLine) -> str:
    sign = "+" if line.amount_minor > 0 else "−"
    amount = money(abs(line.amount_minor), line.currency)
    return f"{date(line.created_at)} · {sign}{amount} · {reason_text(line.kind)}"


async def show_history(
    event: Message | CallbackQuery, billing: Billing, account: Account, page: int = 0
) -> None:
    page = max(0, page)
    result = await billing.list_ledger(account.id, page * HISTORY_PER_PAGE, HISTORY_PER_PAGE)
    if not result.items and page > 0:
        page = result.page_count - 1
        result = await billing.list_ledger(account.id, page * HISTORY_PER_PAGE, HISTORY_PER_PAGE)
    balance = (await billing.get_account(account.id)).balance_minor
    rates = await display_rates(billing, account)
    # In the display currency with the base amount beside it, as the main menu shows it.
    footer = _("Balance: <b>{balance}</b>").format(balance=display_balance(balance, account, rates))
    if not result.items:
        text = _("📜 <b>Payment history</b>\n\nNo payments yet.") + "\n\n" + footer
    else:
        header = _("📜 <b>Payment history</b> — page {page} of {pages}").format(
            page=result.page_number, pages=result.page_count
        )
        lines = "\n".join(ledger_line_text(line) for line in result.items)
        text = f"{header}\n\n{lines}\n\n{footer}"
    await show(event, text, history_kb(page, result.page_count))


async def cmd_history(
    message: Message, billing: Billing, account: Account, state: FSMContext
) -> None:
    await state.clear()
    await show_history(message, billing, account)


async def history_page(
    query: CallbackQuery, callback_data: HistoryCb, billing: Billing, account: Account
) -> None:
    await show_history(query, billing, account, callback_data.page)


def create_router() -> Router:
    router = Router(name="invoices")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(cmd_invoices, Command("invoices"))
    router.message.register(cmd_history, Command("history"))
    router.callback_query.register(cmd_invoices, MenuCb.filter(F.section == "invoices"))
    router.callback_query.register(invoices_page, InvoicesCb.filter())
    router.callback_query.register(history_page, HistoryCb.filter())
    cb = router.callback_query
    cb.register(invoice_view, InvoiceCb.filter(F.action == InvoiceAction.VIEW))
    cb.register(invoice_cancel, InvoiceCb.filter(F.action == InvoiceAction.CANCEL))
    cb.register(invoice_pay_from_balance, InvoiceCb.filter(F.action == InvoiceAction.BALANCE))
    cb.register(invoice_pay_by_card, InvoiceCb.filter(F.action == InvoiceAction.CARD))
    cb.register(invoice_pay_in_stars, InvoiceCb.filter(F.action == InvoiceAction.STARS))
    return router
