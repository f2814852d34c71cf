"""Balance, top-up, invoices and payment history keyboards, and their callback factories."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from keyboards.callbacks import AmountMinor, CartAction, CartCb, Id, PageNumber
from keyboards.common import back_button, menu_button
from keyboards.settings import fill_missing_button


class TopupCurrencyCb(CallbackData, prefix="tuc"):
    """The currency of a top-up; `amount_minor` carries a TopupCb shortfall (base currency)."""

    currency: str
    amount_minor: AmountMinor = 0


class TopupAmountCb(CallbackData, prefix="tua"):
    """A preset amount, in minor units of `currency`."""

    currency: str
    amount_minor: AmountMinor


class InvoiceAction(StrEnum):
    """What a button of one invoice does (the values are what old buttons carry)."""

    VIEW = "view"
    CARD = "card"  # a Telegram invoice paid by card
    STARS = "stars"  # a Telegram invoice paid in Stars
    BALANCE = "balance"  # pay from the balance
    CANCEL = "cancel"


class InvoiceCb(CallbackData, prefix="inv"):
    """One invoice: `action` is an InvoiceAction, `page` the page of the list to go back to."""

    action: InvoiceAction
    invoice_id: Id
    page: PageNumber = 0


class InvoicesCb(CallbackData, prefix="invs"):
    page: PageNumber = 0


class HistoryCb(CallbackData, prefix="hist"):
    page: PageNumber = 0


def balance_kb() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.row(menu_button("topup", _("➕ Top up")))
    builder.row(
        InlineKeyboardButton(text=_("🧾 Invoices"), callback_data=InvoicesCb(page=0).pack()),
        InlineKeyboardButton(text=_("📜 Payment history"), callback_data=HistoryCb(page=0).pack()),
    )
    builder.row(back_button())
    return builder.as_markup()


def currency_kb(currencies: list[tuple[str, str]], amount_minor: int = 0) -> InlineKeyboardMarkup:
    """`currencies`: (code, label) pairs."""
    builder = InlineKeyboardBuilder()
    for code, label in currencies:
        builder.row(
            InlineKeyboardButton(
                text=label,
                callback_data=TopupCurrencyCb(currency=code, amount_minor=amount_minor).pack(),
            )
        )
    builder.row(back_button("balance"))
    return builder.as_markup()


def amount_kb(currency: str, presets: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    """`presets`: (amount in minor units of `currency`, label) pairs."""
    builder = InlineKeyboardBuilder()
    for amount, label in presets:
        builder.button(
            text=label, callback_data=TopupAmountCb(currency=currency, amount_minor=amount)
        )
    builder.adjust(3)
    builder.row(back_button("topup"))
    return builder.as_markup()


def invoice_kb(
    invoice_id: int,
    page: int,
    *,
    card_label: str | None,
    stars_label: str | None,
    from_balance: bool,
    cancellable: bool,
    pay_url: str | None = None,
) -> InlineKeyboardMarkup:
    """`pay_url`: the invoice's signed pay link (bot/web), when the web side is on."""
    builder = InlineKeyboardBuilder()

    def action(text: str, name: InvoiceAction) -> None:
        builder.row(
            InlineKeyboardButton(
                text=text,
                callback_data=InvoiceCb(action=name, invoice_id=invoice_id, page=page).pack(),
            )
        )

    if card_label:
        action(card_label, InvoiceAction.CARD)
    if stars_label:
        action(stars_label, InvoiceAction.STARS)
    if from_balance:
        action(_("💰 Pay from the balance"), InvoiceAction.BALANCE)
    if pay_url:
        builder.row(InlineKeyboardButton(text=_("🌐 Pay in browser"), url=pay_url))
    if cancellable:
        action(_("✖️ Cancel the invoice"), InvoiceAction.CANCEL)
    builder.row(
        InlineKeyboardButton(text=_("⬅️ Invoices"), callback_data=InvoicesCb(page=page).pack())
    )
    return builder.as_markup()


def _nav(
    builder: InlineKeyboardBuilder,
    factory: type[InvoicesCb] | type[HistoryCb],
    page: int,
    pages: int,
) -> None:
    buttons = []
    if page > 0:
        buttons.append(InlineKeyboardButton(text="◀️", callback_data=factory(page=page - 1).pack()))
    if page + 1 < pages:
        buttons.append(InlineKeyboardButton(text="▶️", callback_data=factory(page=page + 1).pack()))
    if buttons:
        builder.row(*buttons)


def invoices_kb(items: list[tuple[int, str]], page: int, pages: int) -> InlineKeyboardMarkup:
    """`items`: (invoice id, label) pairs of the page."""
    builder = InlineKeyboardBuilder()
    for invoice_id, label in items:
        builder.row(
            InlineKeyboardButton(
                text=label,
                callback_data=InvoiceCb(
                    action=InvoiceAction.VIEW, invoice_id=invoice_id, page=page
                ).pack(),
            )
        )
    _nav(builder, InvoicesCb, page, pages)
    builder.row(
        InlineKeyboardButton(text=_("📜 Payment history"), callback_data=HistoryCb(page=0).pack()),
        menu_button("topup", _("➕ Top up")),
    )
    builder.row(back_button())
    return builder.as_markup()


def history_kb(page: int, pages: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _nav(builder, HistoryCb, page, pages)
    builder.row(
        InlineKeyboardButton(text=_("🧾 Invoices"), callback_data=InvoicesCb(page=0).pack()),
        menu_button("balance", _("💰 Balance")),
    )
    builder.row(back_button())
    return builder.as_markup()


def payment_blocked_kb(company_unverified: bool, resume: str = "") -> InlineKeyboardMarkup:
    """`resume`: where the guided fill-in returns once everything is filled in."""
    builder = InlineKeyboardBuilder()
    if company_unverified:
        builder.row(menu_button("newticket", _("💬 Write to support")))
    else:
        builder.row(fill_missing_button(resume))  # the guided flow asks exactly what is missing
    builder.row(back_button())
    return builder.as_markup()


def after_payment_kb(cart_waiting: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if cart_waiting:
        builder.row(
            InlineKeyboardButton(
                text=_("🛒 Complete the order"),
                callback_data=CartCb(action=CartAction.RECEIPT).pack(),
            )
        )
    builder.row(
        menu_button("balance", _("💰 Balance")),
        InlineKeyboardButton(text=_("🧾 Invoices"), callback_data=InvoicesCb(page=0).pack()),
    )
    builder.row(back_button())
    return builder.as_markup()


def back_kb(section: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[back_button(section)]])


def open_invoices_kb() -> InlineKeyboardMarkup:
    """Under "too many unpaid invoices": the invoices list, the main menu."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("🧾 Invoices"), callback_data=InvoicesCb(page=0).pack())],
            [back_button()],
        ]
    )
