"""Balance (/balance) in every supported currency, and the top-up dialog (/topup, TopupCb):
currency → amount (typed or a preset) → an invoice → "Go to payment" (see handlers/invoices)."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from babel.numbers import get_currency_name

from bot.config import Settings
from handlers.common import date, locale, money, show
from handlers.invoice_email import email_new_invoice
from handlers.invoices import RESUME_INVOICE, rate_text, render_invoice, show_payment_blocked
from keyboards.callbacks import MenuCb, TopupCb
from keyboards.payments import (
    TopupAmountCb,
    TopupCurrencyCb,
    amount_kb,
    back_kb,
    balance_kb,
    currency_kb,
    open_invoices_kb,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.payments import Rates
from services.email import Mailer
from services.errors import LimitReached, NotFound, PaymentBlocked, ValidationFailed
from services.money import (
    AMOUNT_MINOR_MAX,
    exponent,
    nice_amount,
    parse_amount,
    round_significant,
    to_minor,
)
from services.validation import parse_id

RESUME_TOPUP = "tu-"  # the payment gate's way back to a top-up (of an amount, 0: any)


class TopupStates(StatesGroup):
    amount = State()


# ---- balance --------------------------------------------------------------------------------
def rates_note(rates: Rates) -> str:
    if rates.rate_date is not None:
        return _("Exchange rates of {date}.").format(date=date(rates.rate_date))
    return _("Exchange rates from the bot configuration.")


def balance_text(account: Account, rates: Rates) -> str:
    base = account.base_currency
    main = account.currency if rates.has(account.currency) else base
    shown = rates.convert(account.balance_minor, base, main)
    lines = [_("💰 <b>Balance: {balance}</b>").format(balance=money(shown, main))]
    others = [c for c in rates.available() if c != main]
    if others:
        lines.append("")
        lines.append(_("In other currencies:"))
        for code in others:
            amount = money(rates.convert(account.balance_minor, base, code), code)
            rate = "" if code == base else f" ({rate_text(base, code, rates.rate(base, code))})"
            lines.append(f"≈ {amount}{rate}")
    lines.append("")
    lines.append(rates_note(rates))
    return "\n".join(lines)


async def cmd_balance(
    event: Message | CallbackQuery, billing: Billing, account: Account, state: FSMContext
) -> None:
    await state.clear()
    fresh = await billing.get_account(account.id)
    await show(event, balance_text(fresh, await billing.get_rates()), balance_kb())


# ---- amounts --------------------------------------------------------------------------------
def topup_limits(settings: Settings, rates: Rates, currency: str) -> tuple[int, int]:
    """(minimum, maximum) of one top-up in minor units of `currency`. Without a card provider
    only Stars can pay, so the maximum is also what the Stars limit of one invoice buys."""
    base = rates.base_currency
    low = to_minor(settings.topup_min, base)
    high = to_minor(settings.topup_max, base)
    if not settings.payment_provider_token:
        stars_cap = rates.base_for_stars(settings.stars_max_per_invoice)
        high = min(high, stars_cap)
    # Round figures, inside the configured range: what the prompt says is what is checked.
    return (
        round_significant(rates.convert(low, base, currency, ROUND_UP), currency, ROUND_UP),
        round_significant(rates.convert(high, base, currency, ROUND_DOWN), currency, ROUND_DOWN),
    )


def preset_amounts(settings: Settings, rates: Rates, currency: str) -> list[int]:
    """The presets (in the base currency) as round amounts of `currency`, within the limits."""
    low, high = topup_limits(settings, rates, currency)
    base = rates.base_currency
    amounts: list[int] = []
    for preset in settings.topup_presets:
        converted = rates.convert(to_minor(preset, base), base, currency)
        nice = nice_amount(converted, currency)
        if low <= nice <= high and nice not in amounts:
            amounts.append(nice)
    return amounts


def amount_error_text(error: ValidationFailed, currency: str) -> str:
    detail = error.detail
    if detail == "not_a_number":
        return _("Please send the amount as a number, for example 25 or 25.50.")
    if detail == "not_positive":
        return _("The amount must be greater than zero.")
    if detail == "too_many_decimals":
        places = int(error.params.get("places", exponent(currency)))  # type: ignore[call-overload]
        if places == 0:
            return _("Amounts in {currency} are whole numbers, without decimals.").format(
                currency=currency
            )
        return ngettext(
            "Too many decimals: at most {places} digit after the point in {currency}.",
            "Too many decimals: at most {places} digits after the point in {currency}.",
            places,
        ).format(places=places, currency=currency)
    if detail == "below_min":
        return _("The minimum top-up is {amount}.").format(
            amount=money(int(error.params["limit"]), currency)  # type: ignore[call-overload]
        )
    if detail == "above_max":
        return _("The maximum top-up is {amount}.").format(
            amount=money(int(error.params["limit"]), currency)  # type: ignore[call-overload]
        )
    if detail == "currency":
        return _("Top-ups in {currency} are not available now.").format(currency=currency)
    return _("The request was rejected. Please check the input and try again.")


def validate_amount(text: str, currency: str, limits: tuple[int, int]) -> int:
    """Minor units of `currency`, or ValidationFailed: not_a_number, not_positive,
    too_many_decimals, below_min, above_max (with the limit)."""
    low, high = limits
    try:
        amount = parse_amount(text, currency)
    except ValidationFailed as error:
        if error.detail == "too_large":  # more digits than any top-up has
            raise ValidationFailed("above_max", limit=high) from None
        raise
    if amount < low:
        raise ValidationFailed("below_min", limit=low)
    if amount > high:
        raise ValidationFailed("above_max", limit=high)
    return amount


# ---- the dialog -----------------------------------------------------------------------------
def currency_label(code: str) -> str:
    return f"{code} — {get_currency_name(code, locale=locale())}"


async def start_topup(
    event: Message | CallbackQuery,
    billing: Billing,
    account: Account,
    state: FSMContext,
    amount_minor: int = 0,
    header: str | None = None,
) -> None:
    await state.clear()
    try:
        await billing.require_payment_allowed(account.id)
    except PaymentBlocked as error:
        await show_payment_blocked(event, error, f"{RESUME_TOPUP}{max(0, amount_minor)}")
        return
    rates = await billing.get_rates()
    currencies = [(code, currency_label(code)) for code in rates.available()]
    if amount_minor > 0:
        text = _("➕ <b>Top-up of {amount}</b>\n\nChoose the currency to pay in:").format(
            amount=money(amount_minor, account.base_currency)
        )
    else:
        text = _("➕ <b>Top-up</b>\n\nChoose the currency to pay in:")
    if header:
        text = f"{header}\n\n{text}"
    await show(event, text, currency_kb(currencies, max(0, amount_minor)))


async def resume_payment(
    event: Message | CallbackQuery,
    resume: str,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
    header: str | None = None,
) -> bool:
    """After the guided fill-in the payment gate led to: back to the top-up (of the same
    amount: a saved order's shortfall) or the invoice the customer was paying, with `header`
    (what was saved) above it. False when `resume` names neither (the caller shows its own
    screen)."""
    kind, digits = resume[:3], resume[3:]
    if kind == RESUME_TOPUP and digits.isascii() and digits.isdigit() and len(digits) <= 12:
        amount = int(digits) if int(digits) <= AMOUNT_MINOR_MAX else 0
        await start_topup(event, billing, account, state, amount, header)
        return True
    number = parse_id(digits)
    if kind == RESUME_INVOICE and number is not None:
        try:
            invoice = await billing.get_invoice(account.id, number)
        except NotFound:
            return False
        await render_invoice(event, billing, account, settings, invoice, header=header)
        return True
    return False


async def cmd_topup(
    event: Message | CallbackQuery, billing: Billing, account: Account, state: FSMContext
) -> None:
    await start_topup(event, billing, account, state)


async def topup_button(
    query: CallbackQuery,
    callback_data: TopupCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
) -> None:
    await start_topup(query, billing, account, state, callback_data.amount_minor)


async def ask_amount(
    event: Message | CallbackQuery,
    state: FSMContext,
    settings: Settings,
    rates: Rates,
    currency: str,
    note: str | None = None,
) -> None:
    low, high = topup_limits(settings, rates, currency)
    await state.set_state(TopupStates.amount)
    await state.update_data(currency=currency)
    text = _(
        "➕ <b>Top-up in {currency}</b>\n\n"
        "Send the amount from {min} to {max}, or choose one below."
    ).format(currency=currency, min=money(low, currency), max=money(high, currency))
    if note:
        text = f"{note}\n\n{text}"
    presets = [(a, money(a, currency)) for a in preset_amounts(settings, rates, currency)]
    await show(event, text, amount_kb(currency, presets))


async def offered_rates(
    event: Message | CallbackQuery, billing: Billing, state: FSMContext, currency: str
) -> Rates | None:
    """The rates, if top-ups in `currency` are offered now. Otherwise (a stale button, or the
    currency was switched off during the dialog) tells the user so and returns None."""
    rates = await billing.get_rates()
    if currency in rates.available():
        return rates
    text = amount_error_text(ValidationFailed("currency"), currency)
    if isinstance(event, CallbackQuery):
        await event.answer(text, show_alert=True)
    else:
        await state.clear()
        await event.answer(text, reply_markup=back_kb("topup"))
    return None


async def choose_currency(
    query: CallbackQuery,
    callback_data: TopupCurrencyCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
    mailer: Mailer | None = None,
) -> None:
    currency = callback_data.currency
    rates = await offered_rates(query, billing, state, currency)
    if rates is None:
        return
    shortfall = callback_data.amount_minor
    if shortfall <= 0:
        await ask_amount(query, state, settings, rates, currency)
        return
    low, high = topup_limits(settings, rates, currency)
    needed = rates.convert(shortfall, account.base_currency, currency, ROUND_UP)
    if needed > high:
        note = amount_error_text(ValidationFailed("above_max", limit=high), currency)
        await ask_amount(query, state, settings, rates, currency, note)
        return
    header = None
    if needed < low:  # the minimum applies: say so rather than bill more without a word
        header = _(
            "ℹ️ {needed} is missing, but the minimum top-up is {minimum}: the invoice is for "
            "{minimum}, and the rest stays on your balance."
        ).format(needed=money(needed, currency), minimum=money(low, currency))
    amount = max(low, needed)
    await issue_invoice(
        query, billing, account, state, settings, amount, currency, header, mailer=mailer
    )


async def preset_chosen(
    query: CallbackQuery,
    callback_data: TopupAmountCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
    mailer: Mailer | None = None,
) -> None:
    currency = callback_data.currency
    rates = await offered_rates(query, billing, state, currency)
    if rates is None:
        return
    low, high = topup_limits(settings, rates, currency)
    if not low <= callback_data.amount_minor <= high:  # a stale or forged preset
        await query.answer(_("This amount is not available any more."), show_alert=True)
        return
    amount = callback_data.amount_minor
    await issue_invoice(query, billing, account, state, settings, amount, currency, mailer=mailer)


async def amount_entered(
    message: Message,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
    mailer: Mailer | None = None,
) -> None:
    currency = str((await state.get_data()).get("currency") or account.base_currency)
    rates = await offered_rates(message, billing, state, currency)
    if rates is None:
        return
    try:
        amount = validate_amount(
            message.text or "", currency, topup_limits(settings, rates, currency)
        )
    except ValidationFailed as error:
        await message.answer(amount_error_text(error, currency), reply_markup=back_kb("topup"))
        return
    await issue_invoice(message, billing, account, state, settings, amount, currency, mailer=mailer)


async def not_an_amount(message: Message, account: Account) -> None:
    """Anything but text (a photo, a sticker) while an amount is expected."""
    await message.answer(
        amount_error_text(ValidationFailed("not_a_number"), account.base_currency),
        reply_markup=back_kb("topup"),
    )


async def issue_invoice(
    event: Message | CallbackQuery,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
    amount: int,
    currency: str,
    header: str | None = None,
    *,
    mailer: Mailer | None = None,
) -> None:
    try:
        invoice, created = await billing.topup_invoice(account.id, amount, currency)
    except LimitReached as error:
        await state.clear()
        text = ngettext(
            "⚠️ You already have {limit} unpaid top-up invoice. Please pay or cancel it before "
            "creating a new one.",
            "⚠️ You already have {limit} unpaid top-up invoices. Please pay or cancel one of "
            "them before creating a new one.",
            error.limit,
        ).format(limit=error.limit)
        await show(event, text, open_invoices_kb())
        return
    await state.clear()
    notice = _("Invoice created.") if created else _("You already have this invoice: here it is.")
    await render_invoice(event, billing, account, settings, invoice, 0, notice, header=header)
    if created:  # after the reply: SMTP never delays the screen
        await email_new_invoice(billing, account, settings, mailer, invoice)


def create_router() -> Router:
    router = Router(name="balance")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(cmd_balance, Command("balance"))
    router.message.register(cmd_topup, Command("topup"))
    in_dialog = StateFilter(TopupStates.amount)
    # Commands typed during the dialog fall through to their sections.
    router.message.register(amount_entered, in_dialog, F.text, ~F.text.startswith("/"))
    router.message.register(not_an_amount, in_dialog, ~F.text)
    router.callback_query.register(cmd_balance, MenuCb.filter(F.section == "balance"))
    router.callback_query.register(cmd_topup, MenuCb.filter(F.section == "topup"))
    router.callback_query.register(topup_button, TopupCb.filter())
    router.callback_query.register(choose_currency, TopupCurrencyCb.filter())
    router.callback_query.register(preset_chosen, TopupAmountCb.filter())
    return router
