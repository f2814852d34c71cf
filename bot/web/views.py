"""What the web pages show, built with the chat's own helpers (the same msgids and formats):
plain strings for the templates, which escape them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import date, datetime_text, display_rates, money
from handlers.invoices import stars_payable
from handlers.invoices import status_text as invoice_status_text
from handlers.menu import menu_balance
from handlers.settings_texts import country_name, field_label
from handlers.web_links import pay_url
from keyboards.orders import days_left_text
from keyboards.orders import status_text as order_status_text
from keyboards.tickets import status_name as ticket_status_text
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.orders import ACTIVE, PENDING
from services.contracts.payments import STARS, Invoice
from services.contracts.profile import REQUIRED_FOR_PAYMENT, Profile

LIST_LIMIT = 20
# The web forms: the chat's Settings fields, validated by the same billing methods.
FORMS = {
    "profile": ("last_name", "first_name", "email"),
    "address": ("region", "city", "postcode", "address"),
}


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: int
    tariff: str
    status: str
    paid_until: str
    days_left: str  # "" when the order is not running


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    id: int
    number: str
    amount: str
    created: str
    status: str
    methods: list[str]  # the Telegram payments offered: none once it is not unpaid
    pay_link: str | None  # its signed pay link (the browser's cabinet), while payable


@dataclass(frozen=True, slots=True)
class TicketRow:
    id: int
    subject: str
    status: str


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    value: str
    required: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Cabinet:
    login: str
    balance: str
    orders: list[OrderRow]
    invoices: list[InvoiceRow]
    tickets: list[TicketRow]
    country: str | None
    email_confirmed: bool
    missing: list[str]  # labels of what paying still needs
    forms: dict[str, list[FormField]]
    show_last_ip: bool
    last_login: str  # the last recorded login: when and from where


def pay_methods(invoice: Invoice, settings: Settings) -> list[str]:
    """The Telegram payments the chat's invoice screen offers for an unpaid invoice."""
    if invoice.status != "unpaid":
        return []
    methods = []
    if settings.payment_provider_token and invoice.currency != STARS:
        methods.append("card")
    if stars_payable(invoice, settings):
        methods.append("stars")
    return methods


def form_fields(
    form: str,
    profile: Profile,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[FormField]:
    """A form as stored, or as submitted (`values`) with its `errors` when it was refused."""
    return [
        FormField(
            name=name,
            label=field_label(name),
            value=values[name] if values is not None else getattr(profile, name) or "",
            required=name in REQUIRED_FOR_PAYMENT,
            error=(errors or {}).get(name),
        )
        for name in FORMS[form]
    ]


async def cabinet(
    billing: Billing,
    account: Account,
    settings: Settings,
    now: float,
    submitted: tuple[str, Mapping[str, str], Mapping[str, str]] | None = None,
) -> Cabinet:
    """The Mini App's page of `account` (the one the verified initData names). `submitted`:
    a refused form (name, values, errors) shown back as typed."""
    at = datetime.fromtimestamp(now, UTC)
    balance = menu_balance(account, await display_rates(billing, account))
    orders = await billing.list_orders(account.id, limit=LIST_LIMIT)
    invoices = await billing.list_invoices(account.id, 0, LIST_LIMIT)
    tickets = await billing.list_tickets(account.id, 0, LIST_LIMIT)
    profile = await billing.get_profile(account.id)
    forms = {name: form_fields(name, profile) for name in FORMS}
    if submitted is not None:
        name, values, errors = submitted
        forms[name] = form_fields(name, profile, values, errors)
    return Cabinet(
        login=account.login,
        balance=balance,
        orders=[
            OrderRow(
                id=order.id,
                tariff=order.tariff_name,
                status=order_status_text(order.display_status(at)),
                paid_until=date(order.paid_until),
                days_left=(
                    days_left_text(order.days_left(at))
                    if order.display_status(at) in (ACTIVE, PENDING)
                    else ""
                ),
            )
            for order in orders.items
        ],
        invoices=[
            InvoiceRow(
                id=invoice.id,
                number=invoice.number,
                amount=money(invoice.amount_minor, invoice.currency),
                created=date(invoice.created_at),
                status=invoice_status_text(invoice.status),
                methods=pay_methods(invoice, settings),
                pay_link=(
                    pay_url(settings, invoice.id, account.id, now)
                    if pay_methods(invoice, settings)
                    else None
                ),
            )
            for invoice in invoices.items
        ],
        tickets=[
            TicketRow(id=t.id, subject=t.subject, status=ticket_status_text(t.status))
            for t in tickets.items
        ],
        country=country_name(profile.country) if profile.country else None,
        email_confirmed=profile.email_confirmed,
        missing=[field_label(name) for name in profile.missing],
        forms=forms,
        show_last_ip=profile.show_last_ip,
        last_login=last_login_text(profile),
    )


def last_login_text(profile: Profile) -> str:
    if profile.last_ip is None:
        return _("Last login: unknown")
    if profile.last_login_at is None:
        return _("Last login from: {ip}").format(ip=profile.last_ip)
    return _("Last login: {when} from {ip}").format(
        when=datetime_text(profile.last_login_at), ip=profile.last_ip
    )


@dataclass(frozen=True, slots=True)
class PayPage:
    number: str
    amount: str
    status: str
    unpaid: bool
    paid: bool
    methods: list[str]  # "card", "stars": the ways this invoice can be paid in Telegram


def pay_page(invoice: Invoice, settings: Settings) -> PayPage:
    return PayPage(
        number=invoice.number,
        amount=money(invoice.amount_minor, invoice.currency),
        status=invoice_status_text(invoice.status),
        unpaid=invoice.status == "unpaid",
        paid=invoice.status == "paid",
        methods=pay_methods(invoice, settings),
    )
