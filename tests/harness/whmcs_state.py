"""The records the WHMCS stand-in (tests/harness/whmcs.py) keeps — clients, products,
services, invoices, transactions, credit, tickets, e-mails — and the PHP-form helpers its
actions read requests and write answers with. The shapes follow the official API reference
(github.com/WHMCS/developer-docs, api-reference/*.md); comments mark what is assumed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

CURRENCIES = {1: "USD", 2: "EUR"}
CYCLE_MONTHS = {"monthly": 1, "quarterly": 3, "semiannually": 6, "annually": 12}
CYCLE_MONTHS |= {"biennially": 24, "triennially": 36}
TICKET_STATUSES = ("Open", "Answered", "Customer-Reply", "On Hold", "In Progress", "Closed")
Params = dict[str, Any]
Json = dict[str, Any]


class Refused(Exception):
    """An action's `result=error` answer, with the reference's message."""


@dataclass
class Client:
    id: int
    firstname: str
    lastname: str
    email: str
    currency: int = 1
    credit: Decimal = Decimal(0)
    phonenumber: str = ""
    companyname: str = ""
    address1: str = ""
    city: str = ""
    state: str = ""
    postcode: str = ""
    country: str = "GB"
    language: str = ""
    status: str = "Active"
    marketing_opt_in: bool = False
    email_preferences: dict[str, bool] = field(
        default_factory=lambda: dict.fromkeys(
            ("general", "invoice", "support", "product", "domain", "affiliate"), True
        )
    )


@dataclass
class Product:
    pid: int
    name: str
    gid: int = 1
    groupname: str = "Hosting"
    pricing: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency → cycle
    type: str = "hostingaccount"  # getproducts.md: hostingaccount, reselleraccount, server, other
    paytype: str = "recurring"  # getproducts.md: free, onetime, recurring


@dataclass
class Service:
    id: int
    clientid: int
    pid: int
    billingcycle: str = "Monthly"
    nextduedate: date | None = None
    status: str = "Active"
    recurringamount: Decimal = Decimal(0)
    domain: str = ""
    dedicatedip: str = ""
    password: str = "s3rvice-pw"  # returned by GetClientsProducts, as WHMCS does
    cancel_request: str | None = None
    pending_upgrade: tuple[int, str] | None = None  # (new pid, cycle) until its invoice is paid


@dataclass
class InvoiceLine:
    description: str
    amount: Decimal
    type: str = "Hosting"
    relid: int = 0
    renews: bool = False


@dataclass
class Invoice:
    id: int
    userid: int
    lines: list[InvoiceLine]
    duedate: date
    status: str = "Unpaid"
    paid: Decimal = Decimal(0)
    datepaid: datetime | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def balance(self) -> Decimal:
        return self.total - self.paid


@dataclass
class Transaction:
    userid: int
    invoiceid: int
    transid: str
    amountin: Decimal
    gateway: str
    credit: bool


@dataclass
class CreditRecord:
    """One line of the credit log (getcredits.md: id, date, description, amount, relid)."""

    id: int
    clientid: int
    date: date
    description: str
    amount: Decimal
    relid: int = 0


@dataclass
class Reply:
    userid: int
    admin: str
    name: str
    message: str
    date: datetime


@dataclass
class Ticket:
    id: int
    tid: str
    c: str
    deptid: int
    userid: int
    subject: str
    status: str
    priority: str
    date: datetime
    replies: list[Reply] = field(default_factory=list)
    notes: list[Reply] = field(default_factory=list)  # getticket.md `notes.note[]`

    @property
    def lastreply(self) -> datetime:
        return self.replies[-1].date if self.replies else self.date


@dataclass
class Email:
    client_id: int
    customtype: str
    subject: str
    message: str


def money(value: Decimal) -> str:
    return f"{value:.2f}"


def when(moment: datetime | date | None) -> str:
    if moment is None:
        return "0000-00-00"
    return moment.strftime("%Y-%m-%d %H:%M:%S" if isinstance(moment, datetime) else "%Y-%m-%d")


def listing(items: list[Json]) -> list[Json] | str:
    """WHMCS answers an empty nested list as "" (GetInvoice's example: "transactions": "")."""
    return items or ""


def php_form(pairs: list[tuple[str, str]]) -> Params:
    """PHP's reading of a form: `name[key]=v` becomes params["name"]["key"] = v."""
    params: Params = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[]+)\[([^\]]*)\]", key)
        if match:
            params.setdefault(match[1], {})[match[2]] = value
        else:
            params[key] = value
    return params


def php_list(value: object) -> list[str]:
    if isinstance(value, dict):
        return [str(v) for _, v in sorted(value.items(), key=lambda kv: int(kv[0] or 0))]
    return [] if value in (None, "") else [str(value)]


def truthy(value: object) -> bool:
    """PHP truthiness of a posted value ("", "0" are false)."""
    return value not in (None, "", "0", "false")


def number(params: Params, name: str) -> int:
    value = str(params.get(name) or "0")
    return int(value) if value.isdigit() else 0


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")
