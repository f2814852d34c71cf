"""Typed results of the WHMCS actions we use, parsed from the shapes of the API reference.

Money fields are integer minor units of the currency named next to them. The service
`password` of GetClientsProducts is never read into a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.whmcs.parse import (
    as_bool,
    as_date,
    as_datetime,
    as_decimal,
    as_int,
    as_optional_int,
    as_str,
    formatted_money,
    money_minor,
    nested_list,
)

BILLING_CYCLES = ("monthly", "quarterly", "semiannually", "annually", "biennially", "triennially")
_SETUP_FEE_KEYS = dict(zip(BILLING_CYCLES, ("m", "q", "s", "a", "b", "t"), strict=True))
EMAIL_PREFERENCES = ("general", "invoice", "support", "product", "domain", "affiliate")
DISABLED_PRICE = "-1.00"


@dataclass(frozen=True)
class EmailPreferences:
    general: bool
    invoice: bool
    support: bool
    product: bool
    domain: bool
    affiliate: bool


@dataclass(frozen=True)
class ClientDetails:
    id: int
    firstname: str
    lastname: str
    email: str
    phonenumber: str
    companyname: str
    address1: str
    city: str
    country: str
    language: str
    status: str
    currency_id: int
    currency_code: str
    credit_minor: int
    email_preferences: EmailPreferences | None
    marketing_opt_in: bool
    state: str = ""  # getclientsdetails.md: "state" (also "fullstate", "statecode")
    postcode: str = ""


def parse_client(client: Mapping[str, Any]) -> ClientDetails:
    currency = as_str(client.get("currency_code")) or "USD"
    prefs = client.get("email_preferences")
    return ClientDetails(
        id=as_int(client.get("id") or client.get("client_id") or client.get("userid")),
        firstname=as_str(client.get("firstname")),
        lastname=as_str(client.get("lastname")),
        email=as_str(client.get("email")),
        phonenumber=as_str(client.get("phonenumber")),
        companyname=as_str(client.get("companyname")),
        address1=as_str(client.get("address1")),
        city=as_str(client.get("city")),
        country=as_str(client.get("countrycode") or client.get("country")),
        language=as_str(client.get("language")),
        status=as_str(client.get("status")),
        currency_id=as_int(client.get("currency")),
        currency_code=currency,
        credit_minor=money_minor(client.get("credit"), currency),
        email_preferences=(
            EmailPreferences(**{key: as_bool(prefs.get(key)) for key in EMAIL_PREFERENCES})
            if isinstance(prefs, Mapping)
            else None
        ),
        marketing_opt_in=as_bool(client.get("marketing_emails_opt_in")),
        state=as_str(client.get("state")),
        postcode=as_str(client.get("postcode")),
    )


@dataclass(frozen=True)
class Service:
    id: int
    client_id: int
    pid: int
    name: str
    groupname: str
    domain: str
    dedicatedip: str
    status: str
    billingcycle: str
    nextduedate: date | None
    recurring_minor: int
    currency: str
    regdate: date | None = None  # when the service was ordered


def parse_service(row: Mapping[str, Any], currency: str) -> Service:
    return Service(
        id=as_int(row.get("id")),
        client_id=as_int(row.get("clientid")),
        pid=as_int(row.get("pid")),
        name=as_str(row.get("translated_name") or row.get("name")),
        groupname=as_str(row.get("translated_groupname") or row.get("groupname")),
        domain=as_str(row.get("domain")),
        dedicatedip=as_str(row.get("dedicatedip")),
        status=as_str(row.get("status")),
        billingcycle=as_str(row.get("billingcycle")),
        nextduedate=as_date(row.get("nextduedate")),
        recurring_minor=money_minor(row.get("recurringamount"), currency),
        currency=currency,
        regdate=as_date(row.get("regdate")),
    )


@dataclass(frozen=True)
class Currency:
    """One of GetCurrencies' `currencies.currency[]` (getcurrencies.md: id, code, prefix,
    suffix, format, rate). `rate` is the exchange rate from WHMCS's default currency (so the
    default one has 1; addtransaction.md: "based on the default currency")."""

    id: int
    code: str
    rate: Decimal


def parse_currencies(body: Mapping[str, Any]) -> list[Currency]:
    return [
        Currency(
            as_int(row.get("id")), as_str(row.get("code")).upper(), as_decimal(row.get("rate"))
        )
        for row in nested_list(body, "currencies", "currency")
        if as_str(row.get("code"))
    ]


@dataclass(frozen=True)
class ProductPrice:
    currency: str
    cycle: str  # one of BILLING_CYCLES
    price_minor: int
    setup_fee_minor: int


@dataclass(frozen=True)
class Product:
    pid: int
    gid: int
    name: str
    description: str
    paytype: str
    prices: tuple[ProductPrice, ...]  # enabled cycles only: WHMCS's "-1.00" is left out
    type: str = ""  # hostingaccount, reselleraccount, server, other (getproducts.md)

    def price(self, currency: str, cycle: str) -> ProductPrice | None:
        return next((p for p in self.prices if (p.currency, p.cycle) == (currency, cycle)), None)


def _prices(pricing: object) -> tuple[ProductPrice, ...]:
    if not isinstance(pricing, Mapping):
        return ()
    prices = []
    for currency, table in pricing.items():
        if not isinstance(table, Mapping):
            continue
        for cycle in BILLING_CYCLES:
            raw = as_str(table.get(cycle)).strip()
            if not raw or raw == DISABLED_PRICE or raw.startswith("-"):
                continue
            setup = table.get(f"{_SETUP_FEE_KEYS[cycle]}setupfee")
            prices.append(
                ProductPrice(
                    currency, cycle, money_minor(raw, currency), money_minor(setup, currency)
                )
            )
    return tuple(prices)


def parse_product(row: Mapping[str, Any]) -> Product:
    return Product(
        pid=as_int(row.get("pid")),
        gid=as_int(row.get("gid")),
        name=as_str(row.get("name")),
        description=as_str(row.get("description")),
        paytype=as_str(row.get("paytype")),
        prices=_prices(row.get("pricing")),
        type=as_str(row.get("type")),
    )


@dataclass(frozen=True)
class InvoiceItem:
    id: int
    type: str
    relid: int
    description: str
    amount_minor: int


@dataclass(frozen=True)
class Invoice:
    id: int
    userid: int
    status: str
    currency: str
    total_minor: int
    balance_minor: int
    invoice_date: date | None
    duedate: date | None
    datepaid: datetime | None
    items: tuple[InvoiceItem, ...]


def parse_invoice(body: Mapping[str, Any], currency: str) -> Invoice:
    """GetInvoice's answer, or one row of GetInvoices (which has `currencycode`, no balance:
    the balance of a list row is taken as the total unless it is paid)."""
    currency = as_str(body.get("currencycode")) or currency
    status = as_str(body.get("status"))
    total = money_minor(body.get("total"), currency)
    if "balance" in body:
        balance = money_minor(body.get("balance"), currency)
    else:
        balance = 0 if status in {"Paid", "Cancelled", "Refunded"} else total
    items = tuple(
        InvoiceItem(
            id=as_int(item.get("id")),
            type=as_str(item.get("type")),
            relid=as_int(item.get("relid")),
            description=as_str(item.get("description")),
            amount_minor=money_minor(item.get("amount"), currency),
        )
        for item in nested_list(body, "items", "item")
    )
    return Invoice(
        id=as_int(body.get("invoiceid") or body.get("id")),
        userid=as_int(body.get("userid")),
        status=status,
        currency=currency,
        total_minor=total,
        balance_minor=balance,
        invoice_date=as_date(body.get("date")),
        duedate=as_date(body.get("duedate")),
        datepaid=as_datetime(body.get("datepaid")),
        items=items,
    )


@dataclass(frozen=True)
class TicketReply:
    reply_id: int
    userid: int
    admin: str  # the staff member's name; "" for a customer's reply
    name: str
    posted: datetime | None
    message: str


@dataclass(frozen=True)
class Ticket:
    id: int
    tid: str
    deptid: int
    userid: int
    subject: str
    status: str
    priority: str
    opened: datetime | None
    lastreply: datetime | None
    replies: tuple[TicketReply, ...]  # GetTickets has none; GetTicket has them all


def parse_ticket(body: Mapping[str, Any]) -> Ticket:
    replies = tuple(
        TicketReply(
            reply_id=as_int(reply.get("replyid")),
            userid=as_int(reply.get("userid")),
            admin=as_str(reply.get("admin")),
            name=as_str(reply.get("requestor_name") or reply.get("name")),
            posted=as_datetime(reply.get("date")),
            message=as_str(reply.get("message")),
        )
        for reply in nested_list(body, "replies", "reply")
    )
    return Ticket(
        id=as_int(body.get("ticketid") or body.get("id")),
        tid=as_str(body.get("tid")),
        deptid=as_int(body.get("deptid")),
        userid=as_int(body.get("userid")),
        subject=as_str(body.get("subject")),
        status=as_str(body.get("status")),
        priority=as_str(body.get("priority")),
        opened=as_datetime(body.get("date")),
        lastreply=as_datetime(body.get("lastreply")),
        replies=replies,
    )


@dataclass(frozen=True)
class Department:
    id: int
    name: str
    awaiting_reply: int
    open_tickets: int


def parse_department(row: Mapping[str, Any]) -> Department:
    return Department(
        id=as_int(row.get("id")),
        name=as_str(row.get("name")),
        awaiting_reply=as_int(row.get("awaitingreply")),
        open_tickets=as_int(row.get("opentickets")),
    )


@dataclass(frozen=True)
class OrderPlaced:
    order_id: int
    invoice_id: int | None  # None when WHMCS made no invoice (nothing to pay)
    service_ids: tuple[int, ...]


def parse_order(body: Mapping[str, Any]) -> OrderPlaced:
    ids = as_str(body.get("serviceids") or body.get("productids"))
    return OrderPlaced(
        order_id=as_int(body.get("orderid")),
        invoice_id=as_optional_int(body.get("invoiceid")),
        service_ids=tuple(int(part) for part in ids.split(",") if part.strip().isdigit()),
    )


@dataclass(frozen=True)
class UpgradeQuote:
    """UpgradeProduct's answer. `price` is a formatted string in the reference ("$-8.67 USD");
    we keep the number, in the client's currency."""

    new_product_id: int
    new_product_name: str
    billingcycle: str
    days_until_renewal: int
    total_days: int
    price_minor: int
    order_id: int | None
    invoice_id: int | None


def parse_upgrade(body: Mapping[str, Any], currency: str) -> UpgradeQuote:
    return UpgradeQuote(
        new_product_id=as_int(body.get("newproductid")),
        new_product_name=as_str(body.get("newproductname")),
        billingcycle=as_str(body.get("newproductbillingcycle")),
        days_until_renewal=as_int(body.get("daysuntilrenewal")),
        total_days=as_int(body.get("totaldays")),
        price_minor=money_minor(formatted_money(body.get("price")), currency),
        order_id=as_optional_int(body.get("orderid")),
        invoice_id=as_optional_int(body.get("invoiceid")),
    )


@dataclass(frozen=True)
class CreditApplied:
    invoice_id: int
    amount_minor: int
    invoice_paid: bool


@dataclass(frozen=True)
class TicketOpened:
    id: int
    tid: str
    c: str


@dataclass(frozen=True)
class TicketNote:
    """An internal note of a ticket (getticket.md: `notes.note[]`: noteid, date, message,
    admin); never shown to the customer."""

    note_id: int
    admin: str
    posted: datetime | None
    message: str


def parse_ticket_notes(body: Mapping[str, Any]) -> tuple[TicketNote, ...]:
    return tuple(
        TicketNote(
            note_id=as_int(note.get("noteid") or note.get("id")),
            admin=as_str(note.get("admin")),
            posted=as_datetime(note.get("date")),
            message=as_str(note.get("message")),
        )
        for note in nested_list(body, "notes", "note")
    )


@dataclass(frozen=True)
class CreditEntry:
    """One line of GetCredits (the client's credit log): positive added, negative used."""

    id: int
    date: date | None
    description: str
    amount_minor: int
    relid: int


def parse_credit(row: Mapping[str, Any], currency: str) -> CreditEntry:
    return CreditEntry(
        id=as_int(row.get("id")),
        date=as_date(row.get("date")),
        description=as_str(row.get("description")),
        amount_minor=money_minor(row.get("amount"), currency),
        relid=as_int(row.get("relid")),
    )


@dataclass(frozen=True)
class TransactionRecord:
    """One row of GetTransactions."""

    id: int
    userid: int
    invoiceid: int
    transid: str
    gateway: str
    amountin_minor: int
    description: str


def parse_transaction(row: Mapping[str, Any], currency: str) -> TransactionRecord:
    return TransactionRecord(
        id=as_int(row.get("id")),
        userid=as_int(row.get("userid")),
        invoiceid=as_int(row.get("invoiceid")),
        transid=as_str(row.get("transid")),
        gateway=as_str(row.get("gateway")),
        amountin_minor=money_minor(row.get("amountin"), currency),
        description=as_str(row.get("description")),
    )
