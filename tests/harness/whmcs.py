"""A stand-in for the WHMCS External API (`includes/api.php`) on a loopback aiohttp server.

Built from the official API reference (github.com/WHMCS/developer-docs, api-reference/*.md):
request parameters, error messages and the shapes of the example responses, quirks included
(numbers as strings where the examples have them, "" for an empty nested list). Where the
reference does not say what WHMCS does, the stand-in does the least and a comment says so.

Tests seed state with `add_client`/`add_product`/`add_service`/`add_invoice`/`add_ticket`,
inject faults with `fail_next`/`slow`/`go_down`, and read `calls` (every request, without
the credentials) and `emails` (what SendEmail sent).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from aiohttp import web

from tests.harness.server import free_port

IDENTIFIER = "test-api-identifier"
SECRET = "test-api-secret-do-not-log"
CREDENTIAL_FIELDS = {"identifier", "secret", "accesskey", "username", "password"}
CURRENCIES = {1: "USD", 2: "EUR"}
CYCLE_MONTHS = {"monthly": 1, "quarterly": 3, "semiannually": 6, "annually": 12}
CYCLE_MONTHS |= {"biennially": 24, "triennially": 36}
TICKET_STATUSES = ("Open", "Answered", "Customer-Reply", "On Hold", "In Progress", "Closed")
MAINTENANCE_PAGE = "<html><body><h1>Down for maintenance</h1></body></html>"
Params = dict[str, Any]
Json = dict[str, Any]


class Refused(Exception):
    """An action's `result=error` answer, with the reference's message."""


class Fault(StrEnum):
    SLOW = "slow"  # waits `seconds`, then answers normally
    RESET = "reset"  # closes the connection without an answer (after acting if `performed`)
    MAINTENANCE = "maintenance"  # HTTP 503 with an HTML page
    AUTH = "auth"  # HTTP 403 {"result":"error","message":"Authentication Failed"}
    ERROR = "error"  # HTTP 200 {"result":"error","message": message}


@dataclass
class PlannedFault:
    kind: Fault
    action: str | None  # None: any action
    times: int
    seconds: float = 0.0
    message: str = "Something went wrong"
    performed: bool = False


@dataclass
class Call:
    action: str
    params: Params  # as sent, without identifier/secret/accesskey


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


class WhmcsStandIn:
    """`async with WhmcsStandIn() as whmcs:` serves `whmcs.url` on 127.0.0.1."""

    def __init__(self, *, access_key: str | None = None) -> None:
        self.port = free_port()
        self.identifier, self.secret, self.access_key = IDENTIFIER, SECRET, access_key
        self.allowed_ips: set[str] | None = None  # None: any IP (the allow-list is not tested)
        self.payment_methods = {"telegram", "mailin"}
        self.today = date(2026, 1, 15)
        self.clients: dict[int, Client] = {}
        self.products: dict[int, Product] = {}
        self.services: dict[int, Service] = {}
        self.invoices: dict[int, Invoice] = {}
        self.transactions: list[Transaction] = []
        self.credit_log: list[CreditRecord] = []  # credit changed through the API (GetCredits)
        self.tickets: dict[int, Ticket] = {}
        self.orders: dict[int, list[int]] = {}  # AddOrder's order id → its new service ids
        self.departments: dict[int, str] = {1: "Support", 2: "Billing"}
        self.emails: list[Email] = []
        self.calls: list[Call] = []
        self.faults: list[PlannedFault] = []
        self.latency: dict[str | None, float] = {}
        self._ids = itertools.count(100)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/includes/api.php"

    async def __aenter__(self) -> WhmcsStandIn:
        await self.come_back()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.go_down()

    async def come_back(self) -> None:
        app = web.Application()
        app.router.add_post("/includes/api.php", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def go_down(self) -> None:
        """Stop listening: a call now gets "connection refused" until `come_back()`."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- test controls ----------------------------------------------------------------------

    def fail_next(
        self,
        kind: Fault,
        action: str | None = None,
        *,
        times: int = 1,
        seconds: float = 0.0,
        message: str = "Something went wrong",
        performed: bool = False,
    ) -> None:
        self.faults.append(PlannedFault(kind, action, times, seconds, message, performed))

    def slow(self, seconds: float, action: str | None = None) -> None:
        """Every call (of `action`, or all) waits `seconds` before it is handled."""
        self.latency[action] = seconds

    def called(self, action: str) -> list[Call]:
        return [call for call in self.calls if call.action == action]

    def actions(self) -> list[str]:
        return [call.action for call in self.calls]

    def next_id(self) -> int:
        return next(self._ids)

    def add_client(self, firstname: str, lastname: str, email: str, **fields: Any) -> Client:
        client = Client(fields.pop("id", None) or self.next_id(), firstname, lastname, email)
        for name, value in fields.items():
            setattr(client, name, value)
        self.clients[client.id] = client
        return client

    def add_product(self, name: str, monthly: str, currency: str = "USD", **cycles: str) -> Product:
        prices = {"monthly": monthly, **cycles}
        table = {cycle: Decimal(prices.get(cycle, "-1.00")) for cycle in CYCLE_MONTHS}
        product = Product(self.next_id(), name, pricing={currency: table})
        self.products[product.pid] = product
        return product

    def add_service(self, client: Client, product: Product, **fields: Any) -> Service:
        price = product.pricing[CURRENCIES[client.currency]]["monthly"]
        service = Service(self.next_id(), client.id, product.pid, recurringamount=price)
        service.nextduedate = self.today + timedelta(days=10)
        for name, value in fields.items():
            setattr(service, name, value)
        self.services[service.id] = service
        return service

    def add_invoice(
        self, client: Client, *lines: InvoiceLine, duedate: date | None = None
    ) -> Invoice:
        invoice = Invoice(self.next_id(), client.id, list(lines), duedate or self.today)
        self.invoices[invoice.id] = invoice
        return invoice

    def add_ticket(self, client: Client, subject: str, message: str, deptid: int = 1) -> Ticket:
        ticket = Ticket(
            self.next_id(), f"{secrets.randbelow(900000) + 100000}", secrets.token_urlsafe(6),
            deptid, client.id, subject, "Open", "Medium", datetime(2026, 1, 10, 9, 0),
        )  # fmt: skip
        name = f"{client.firstname} {client.lastname}"
        ticket.replies.append(Reply(client.id, "", name, message, ticket.date))
        self.tickets[ticket.id] = ticket
        return ticket

    def admin_reply(self, ticket: Ticket, admin: str, message: str) -> Reply:
        """A reply written in WHMCS's admin area (not through the API): status Answered."""
        moment = max(
            datetime.combine(self.today, datetime.min.time()), ticket.lastreply
        ) + timedelta(minutes=1)
        reply = Reply(0, admin, "", message, moment)
        ticket.replies.append(reply)
        ticket.status = "Answered"
        return reply

    # -- HTTP -------------------------------------------------------------------------------

    def _take_fault(self, action: str) -> PlannedFault | None:
        for fault in self.faults:
            if fault.action in (None, action):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = php_form([(k, str(v)) for k, v in (await request.post()).items()])
        action = str(params.get("action", ""))
        sent = {k: v for k, v in params.items() if k not in CREDENTIAL_FIELDS | {"action"}}
        self.calls.append(Call(action, sent))
        delay = self.latency.get(action, self.latency.get(None, 0.0))
        if delay:
            await asyncio.sleep(delay)
        fault = self._take_fault(action)
        if fault is not None:
            return await self._faulty(request, fault, action, params)
        return self._answer(request, action, params)

    async def _faulty(
        self, request: web.Request, fault: PlannedFault, action: str, params: Params
    ) -> web.StreamResponse:
        if fault.kind is Fault.SLOW:
            await asyncio.sleep(fault.seconds)
            return self._answer(request, action, params)
        if fault.kind is Fault.RESET:
            if fault.performed:
                self._answer(request, action, params)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client: the socket is gone
        if fault.kind is Fault.MAINTENANCE:
            return web.Response(status=503, text=MAINTENANCE_PAGE, content_type="text/html")
        if fault.kind is Fault.AUTH:
            return self._error("Authentication Failed", status=403)
        return self._error(fault.message)

    @staticmethod
    def _error(message: str, status: int = 200) -> web.Response:
        # The reference gives no HTTP status for errors; business errors answer 200 here, and
        # refused credentials/IP 403 with the same JSON body (what WHMCS installs do).
        return web.json_response({"result": "error", "message": message}, status=status)

    def _refusal(self, request: web.Request, params: Params) -> str | None:
        """api/access-control.md: the IP allow-list, bypassed by a matching `accesskey`;
        api/authentication.md: `identifier` + `secret`. The messages are not in the
        reference; these are the ones WHMCS installs answer."""
        key_ok = self.access_key is not None and params.get("accesskey") == self.access_key
        if self.allowed_ips is not None and request.remote not in self.allowed_ips and not key_ok:
            return f"Invalid IP {request.remote}"
        if (params.get("identifier"), params.get("secret")) != (self.identifier, self.secret):
            return "Authentication Failed"
        return None

    def _answer(self, request: web.Request, action: str, params: Params) -> web.Response:
        refusal = self._refusal(request, params)
        if refusal is not None:
            return self._error(refusal, status=403)
        if params.get("responsetype") != "json":
            # Without responsetype=json WHMCS answers XML; we only speak JSON: least is a 400.
            return web.Response(status=400, text="responsetype=json expected")
        handler: Callable[[Params], Json] | None = getattr(self, f"_a_{action.lower()}", None)
        if handler is None:
            # The reference does not say what an unknown action gets; this message is ours.
            return self._error("Command Not Found")
        try:
            body = handler(params)
        except Refused as refused:
            return self._error(str(refused))
        return web.json_response({"result": "success", **body})

    # -- helpers of the actions -------------------------------------------------------------

    def _client(self, params: Params, name: str = "clientid") -> Client:
        client = self.clients.get(number(params, name))
        if client is None:
            raise Refused("Client ID Not Found")
        return client

    def _invoice(self, params: Params) -> Invoice:
        invoice = self.invoices.get(number(params, "invoiceid"))
        if invoice is None:
            raise Refused("Invoice ID Not Found")
        return invoice

    def _service(self, params: Params) -> Service:
        service = self.services.get(number(params, "serviceid"))
        if service is None:
            raise Refused("Service ID Not Found")
        return service

    def _payment_method(self, params: Params, name: str = "paymentmethod") -> str:
        method = str(params.get(name) or "")
        if method not in self.payment_methods:
            valid = ",".join(sorted(self.payment_methods))
            raise Refused(f"Invalid Payment Method. Valid options include {valid}")
        return method

    @staticmethod
    def _page(params: Params, rows: list[Json], outer: str, inner: str, as_text: bool) -> Json:
        """limitstart/limitnum (default 25) paging; `as_text`: totalresults as a string, as in
        the examples of GetClientsProducts and GetTickets (GetInvoices has an int)."""
        start, size = number(params, "limitstart"), number(params, "limitnum") or 25
        page = rows[start : start + size]
        total = str(len(rows)) if as_text else len(rows)
        return {
            "totalresults": total,
            "startnumber": start,
            "numreturned": len(page),
            outer: {inner: page} if page else "",
        }

    def _new_invoice(self, client: Client, lines: list[InvoiceLine]) -> Invoice:
        invoice = self.add_invoice(client, *lines)
        if invoice.total <= 0:
            self._settle(invoice)
        return invoice

    def _pay(self, invoice: Invoice, amount: Decimal) -> None:
        invoice.paid += amount
        if invoice.balance <= 0:
            self._settle(invoice)

    def _settle(self, invoice: Invoice) -> None:
        """A paid invoice renews its services (WHMCS's billing; not in the API reference)."""
        invoice.status, invoice.datepaid = "Paid", datetime.combine(self.today, datetime.min.time())
        for line in invoice.lines:
            service = self.services.get(line.relid)
            if service is None:
                continue
            if line.type == "Upgrade" and service.pending_upgrade is not None:
                (service.pid, service.billingcycle), service.pending_upgrade = (
                    service.pending_upgrade,
                    None,
                )
            elif line.renews and service.nextduedate is not None:
                months = CYCLE_MONTHS.get(service.billingcycle.lower(), 1)
                service.nextduedate = add_months(service.nextduedate, months)

    def _price(self, client: Client, pid: int, cycle: str) -> Decimal:
        product = self.products.get(pid)
        if product is None:
            raise Refused("No items added to cart so order cannot proceed")  # our assumption
        price = product.pricing.get(CURRENCIES[client.currency], {}).get(cycle.lower(), Decimal(-1))
        if price < 0:
            raise Refused(f"Invalid billing cycle {cycle}")  # the reference lists none: ours
        return price

    # -- clients (getclientsdetails.md, updateclient.md, sendemail.md) ----------------------

    def _client_json(self, client: Client) -> Json:
        return {
            "client_id": client.id, "userid": client.id, "id": client.id,
            "firstname": client.firstname, "lastname": client.lastname,
            "fullname": f"{client.firstname} {client.lastname}",
            "companyname": client.companyname, "email": client.email,
            "address1": client.address1, "city": client.city,
            "state": client.state, "fullstate": client.state, "postcode": client.postcode,
            "countrycode": client.country, "country": client.country,
            "phonenumber": client.phonenumber, "status": client.status,
            "email_preferences": {k: str(int(v)) for k, v in client.email_preferences.items()},
            "currency": client.currency, "currency_code": CURRENCIES[client.currency],
            "credit": money(client.credit), "language": client.language,
            "marketing_emails_opt_in": client.marketing_opt_in,
        }  # fmt: skip

    def _a_getclientsdetails(self, params: Params) -> Json:
        # The reference also repeats the client at the top level (deprecated): left out here.
        if not params.get("clientid") and not params.get("email"):
            raise Refused("Either clientid Or email Is Required")
        email = str(params.get("email") or "").lower()
        found = [
            c
            for c in self.clients.values()
            if c.id == number(params, "clientid") or (email and c.email.lower() == email)
        ]
        if not found:
            raise Refused("Client Not Found")
        return {"client": self._client_json(found[0])}

    def _a_updateclient(self, params: Params) -> Json:
        client = self._client(params)
        email = params.get("email")
        if email and any(c.email == email and c.id != client.id for c in self.clients.values()):
            raise Refused("Duplicate Email Address")
        for name in ("firstname", "lastname", "companyname", "email", "address1", "city"):
            if name in params:
                setattr(client, name, str(params[name]))
        for name in ("country", "phonenumber", "language", "state", "postcode"):
            if name in params:
                setattr(client, name, str(params[name]))
        for kind, value in dict(params.get("email_preferences") or {}).items():
            client.email_preferences[kind] = truthy(value)
        if "marketingoptin" in params:
            client.marketing_opt_in = truthy(params["marketingoptin"])
        return {"clientid": str(client.id)}

    def _a_sendemail(self, params: Params) -> Json:
        # Only custom messages are modelled; a named template is recorded by its name.
        kind = str(params.get("customtype") or "")
        if not params.get("messagename") and not kind:
            raise Refused(
                "You must provide either an existing email template name or a custom message type"
            )
        if kind and kind not in {"general", "product", "domain", "invoice", "support", "affiliate"}:
            raise Refused("Invalid message type provided")
        if kind and not params.get("customsubject"):
            raise Refused("A subject is required for a custom message")
        if kind and not params.get("custommessage"):
            raise Refused("A message body is required for a custom message")
        if not params.get("id"):
            raise Refused("A related ID is required")
        if kind in ("general", "") and number(params, "id") not in self.clients:
            raise Refused("Sending Failed. Please see documentation.")
        subject = str(params.get("customsubject") or params.get("messagename"))
        self.emails.append(
            Email(number(params, "id"), kind, subject, str(params.get("custommessage") or ""))
        )
        return {}

    # -- services, catalogue, orders -------------------------------------------------------

    def _service_json(self, service: Service) -> Json:
        product = self.products[service.pid]
        return {
            "id": str(service.id), "qty": "1", "clientid": str(service.clientid),
            "pid": str(service.pid), "regdate": "2025-01-01",
            "name": product.name, "translated_name": product.name,
            "groupname": product.groupname, "translated_groupname": product.groupname,
            "domain": service.domain, "dedicatedip": service.dedicatedip,
            "firstpaymentamount": money(service.recurringamount),
            "recurringamount": money(service.recurringamount),
            "billingcycle": service.billingcycle, "nextduedate": when(service.nextduedate),
            "status": service.status, "username": "user", "password": service.password,
            "customfields": {"customfield": []}, "configoptions": {"configoption": []},
        }  # fmt: skip

    def _a_getclientsproducts(self, params: Params) -> Json:
        rows = [
            self._service_json(s)
            for s in self.services.values()
            if (not params.get("clientid") or s.clientid == number(params, "clientid"))
            and (not params.get("serviceid") or s.id == number(params, "serviceid"))
        ]
        page = self._page(params, rows, "products", "product", as_text=True)
        return {"clientid": params.get("clientid"), **page}

    def _a_getproducts(self, params: Params) -> Json:
        # GetProducts documents no paging: every match comes in one answer.
        pids = {int(p) for p in str(params.get("pid") or "").split(",") if p.strip().isdigit()}
        rows = [
            {
                "pid": p.pid,
                "gid": p.gid,
                "type": p.type,
                "name": p.name,
                "description": "",
                "paytype": p.paytype,
                "pricing": {
                    cur: {"prefix": "", "suffix": f" {cur}"}
                    | {f"{c[0]}setupfee": "0.00" for c in CYCLE_MONTHS}
                    | {c: money(v) for c, v in table.items()}
                    for cur, table in p.pricing.items()
                },
            }
            for p in self.products.values()
            if (not pids or p.pid in pids)
            and (not params.get("gid") or p.gid == number(params, "gid"))
        ]
        return {"totalresults": len(rows), "products": {"product": rows} if rows else ""}

    def _order_lines(self, client: Client, params: Params) -> list[InvoiceLine]:
        lines = []
        cycles = php_list(params.get("billingcycle"))
        domains = php_list(params.get("domain"))
        for index, pid in enumerate(php_list(params.get("pid"))):
            cycle = cycles[index] if index < len(cycles) else "monthly"
            price = self._price(client, int(pid), cycle)
            service = Service(self.next_id(), client.id, int(pid), cycle.capitalize(), self.today)
            service.status, service.recurringamount = "Pending", price
            service.domain = domains[index] if index < len(domains) else ""
            self.services[service.id] = service
            lines.append(InvoiceLine(self.products[int(pid)].name, price, relid=service.id))
        for sid in php_list(params.get("servicerenewals")):
            renewed = self.services.get(int(sid))
            if renewed is None or renewed.clientid != client.id:
                raise Refused("Service ID not owned by Client ID provided")
            name = self.products[renewed.pid].name
            lines.append(
                InvoiceLine(f"{name} renewal", renewed.recurringamount, "Hosting", renewed.id, True)
            )
        return lines

    def _a_addorder(self, params: Params) -> Json:
        # `noinvoice` and the other options are not modelled; AcceptOrder is not: new services
        # stay "Pending" (addorder.md: AddOrder ignores automatic setup).
        client = self._client(params)
        self._payment_method(params)
        if client.status == "Closed":
            raise Refused("Unable to add order when client status is Closed")
        lines = self._order_lines(client, params)
        if not lines:
            raise Refused("No items added to cart so order cannot proceed")
        invoice = self._new_invoice(client, lines)
        service_ids = ",".join(str(line.relid) for line in lines if not line.renews)
        order_id = self.next_id()
        self.orders[order_id] = [line.relid for line in lines if not line.renews]
        return {
            "orderid": str(order_id),
            "serviceids": service_ids,
            "invoiceid": str(invoice.id),
        }

    def _a_acceptorder(self, params: Params) -> Json:
        # acceptorder.md: a pending order's services are set up (the module and registrar
        # calls are not modelled: the services just become Active).
        services = [self.services[sid] for sid in self.orders.get(number(params, "orderid"), [])]
        if not services or all(service.status != "Pending" for service in services):
            raise Refused("Order ID not found or Status not Pending")
        for service in services:
            service.status = "Active" if service.status == "Pending" else service.status
        return {}

    def _a_upgradeproduct(self, params: Params) -> Json:
        service = self._service(params)
        self._payment_method(params)
        if params.get("type") not in ("product", "configoptions"):
            raise Refused("Invalid Upgrade Type")
        client = self.clients[service.clientid]
        cycle = str(params.get("newproductbillingcycle") or service.billingcycle).lower()
        new_pid = number(params, "newproductid")
        new_price = self._price(client, new_pid, cycle)
        # The proration formula is ours (the reference shows only an example answer).
        days_left = (service.nextduedate - self.today).days if service.nextduedate else 0
        total_days = 30 * CYCLE_MONTHS.get(cycle, 1)
        due = ((new_price - service.recurringamount) * days_left / total_days).quantize(
            Decimal("0.01")
        )
        body = {
            "oldproductid": str(service.pid), "oldproductname": self.products[service.pid].name,
            "newproductid": new_pid, "newproductname": self.products[new_pid].name,
            "daysuntilrenewal": days_left, "totaldays": total_days,
            "newproductbillingcycle": cycle,
            "price": f"${money(due)} {CURRENCIES[client.currency]}",
        }  # fmt: skip
        if truthy(params.get("calconly")):
            return body
        if service.pending_upgrade is not None:
            raise Refused(
                "Unable to accept upgrade order. "
                "Previous upgrade invoice for service is still unpaid."
            )
        service.pending_upgrade = (new_pid, cycle.capitalize())
        line = InvoiceLine(
            f"Upgrade to {self.products[new_pid].name}", max(due, Decimal(0)), "Upgrade", service.id
        )
        invoice = self._new_invoice(client, [line])
        return body | {
            "id": str(self.next_id()),
            "orderid": self.next_id(),
            "invoiceid": invoice.id,
        }

    def _a_addcancelrequest(self, params: Params) -> Json:
        # Recorded only: WHMCS's cron does the cancelling, which the stand-in does not run.
        service = self._service(params)
        if service.cancel_request is not None:
            raise Refused("Existing Cancellation Request Exists")
        service.cancel_request = str(params.get("type") or "End of Billing Period")
        return {"serviceid": str(service.id), "userid": str(service.clientid)}

    def _a_geninvoices(self, params: Params) -> Json:
        # WHMCS invoices only services due within its "invoice days"; the stand-in invoices
        # every listed (or the client's) service that has no unpaid renewal invoice yet.
        client = self._client(params) if params.get("clientid") else None
        wanted = {int(s) for s in php_list(params.get("serviceids"))}
        unpaid = [inv for inv in self.invoices.values() if inv.status == "Unpaid"]
        open_renewals = {line.relid for inv in unpaid for line in inv.lines if line.renews}
        created: list[Invoice] = []
        for service in list(self.services.values()):
            if (client and service.clientid != client.id) or (wanted and service.id not in wanted):
                continue
            if service.id in open_renewals or service.status != "Active":
                continue
            line = InvoiceLine(
                self.products[service.pid].name,
                service.recurringamount,
                "Hosting",
                service.id,
                True,
            )
            owner = self.clients[service.clientid]
            created.append(self.add_invoice(owner, line, duedate=service.nextduedate))
        body: Json = {"numcreated": str(len(created))}
        if client is not None and created:
            body["latestinvoiceid"] = created[-1].id
        return body

    # -- money (getinvoices.md, getinvoice.md, applycredit.md, addinvoicepayment.md, ...) ---

    def _invoice_json(self, invoice: Invoice) -> Json:
        client = self.clients[invoice.userid]
        return {
            "id": invoice.id, "userid": invoice.userid,
            "firstname": client.firstname, "lastname": client.lastname,
            "date": when(invoice.duedate), "duedate": when(invoice.duedate),
            "datepaid": when(invoice.datepaid) if invoice.datepaid else "0000-00-00 00:00:00",
            "subtotal": money(invoice.total), "credit": "0.00", "tax": "0.00",
            "total": money(invoice.total), "status": invoice.status, "paymentmethod": "telegram",
            "currencycode": CURRENCIES[client.currency],
        }  # fmt: skip

    def _a_getinvoices(self, params: Params) -> Json:
        status = params.get("status")
        newest_first = params.get("order") == "desc"
        rows = [
            self._invoice_json(inv)
            for inv in sorted(self.invoices.values(), key=lambda i: i.id, reverse=newest_first)
            if (not params.get("userid") or inv.userid == number(params, "userid"))
            and (not status or inv.status == status)
        ]  # fmt: skip
        return self._page(params, rows, "invoices", "invoice", as_text=False)

    def _a_getinvoice(self, params: Params) -> Json:
        invoice = self._invoice(params)
        body = self._invoice_json(invoice)
        body.pop("id"), body.pop("currencycode"), body.pop("firstname"), body.pop("lastname")
        items = [
            {"id": index + 1, "type": line.type, "relid": line.relid,
             "description": line.description, "amount": money(line.amount), "taxed": 0}
            for index, line in enumerate(invoice.lines)
        ]  # fmt: skip
        txs = [
            {"transid": t.transid, "amountin": money(t.amountin), "gateway": t.gateway}
            for t in self.transactions
            if t.invoiceid == invoice.id
        ]
        return body | {
            "invoiceid": invoice.id,
            "balance": money(invoice.balance),
            "items": {"item": items} if items else "",
            "transactions": listing(txs),
        }

    def _a_applycredit(self, params: Params) -> Json:
        invoice = self._invoice(params)
        if invoice.status != "Unpaid":
            raise Refused("Invoice Not in Unpaid Status")
        client = self.clients[invoice.userid]
        # The reference leaves `amount` optional without saying its default: we take as much
        # of the balance as the credit covers.
        raw = params.get("amount")
        amount = Decimal(str(raw)) if raw else min(client.credit, invoice.balance)
        if amount > client.credit:
            raise Refused("Amount exceeds customer credit balance")
        if amount > invoice.balance:
            raise Refused("Amount Exceeds Invoice Balance")
        if amount <= 0:
            raise Refused("Credit Amount to apply must be greater than zero")
        client.credit -= amount
        self._log_credit(client, f"Credit Applied to Invoice #{invoice.id}", -amount, invoice.id)
        self._pay(invoice, amount)
        paid = "true" if invoice.status == "Paid" else "false"
        return {"invoiceid": str(invoice.id), "amount": money(amount), "invoicepaid": paid}

    def _a_addinvoicepayment(self, params: Params) -> Json:
        # The reference does not say whether a repeated transid is refused here: it is not.
        invoice = self._invoice(params)
        if invoice.status == "Cancelled":
            raise Refused("It is not possible to add a payment to an invoice that is Cancelled")
        raw = params.get("amount")
        amount = Decimal(str(raw)) if raw else invoice.balance
        gateway = str(params.get("gateway") or "")
        tx = Transaction(
            invoice.userid, invoice.id, str(params.get("transid") or ""), amount, gateway, False
        )
        self.transactions.append(tx)
        self._pay(invoice, amount)
        return {}

    def _a_addtransaction(self, params: Params) -> Json:
        if not params.get("paymentmethod"):
            raise Refused("Payment Method is required")
        client = self._client(params, "userid") if params.get("userid") else None
        invoice = self._invoice(params) if params.get("invoiceid") else None
        if client and invoice and invoice.userid != client.id:
            raise Refused("User ID does not own the given Invoice ID")
        transid = str(params.get("transid") or "")
        seen = {t.transid for t in self.transactions}
        if transid and transid in seen and not truthy(params.get("allowduplicatetransid")):
            raise Refused("Transaction ID must be Unique")
        amount = Decimal(str(params.get("amountin") or "0"))
        # credit=true: "Invoice ID must not be provided" (no message given): then no credit.
        to_credit = truthy(params.get("credit")) and invoice is None and client is not None
        userid = client.id if client else 0
        method = str(params["paymentmethod"])
        invoice_id = invoice.id if invoice else 0
        self.transactions.append(
            Transaction(userid, invoice_id, transid, amount, method, to_credit)
        )
        if to_credit and client is not None:
            client.credit += amount
            # The reference does not say what the credit log says here: our wording.
            self._log_credit(client, f"Credit from Transaction ID {transid}", amount)
        return {}

    def _a_addcredit(self, params: Params) -> Json:
        client = self._client(params)
        if params.get("type", "add") not in ("add", "remove"):
            raise Refused("Type can only be add or remove")
        if not params.get("amount"):
            raise Refused("No Amount Provided")
        amount = Decimal(str(params["amount"]))
        change = -amount if params.get("type") == "remove" else amount
        client.credit += change
        self._log_credit(client, str(params.get("description") or ""), change)
        return {"newbalance": money(client.credit)}

    def _log_credit(
        self, client: Client, description: str, amount: Decimal, relid: int = 0
    ) -> None:
        entry = CreditRecord(self.next_id(), client.id, self.today, description, amount, relid)
        self.credit_log.append(entry)

    def _a_getcredits(self, params: Params) -> Json:
        # The example shows the list flattened ("credits[credit][0][id]"); we answer it nested
        # as every other list is ({"credits": {"credit": [...]}}), "" when empty.
        client = self._client(params)
        rows = [
            {"id": str(c.id), "date": when(c.date), "description": c.description,
             "amount": money(c.amount), "relid": str(c.relid)}
            for c in self.credit_log
            if c.clientid == client.id
        ]  # fmt: skip
        return {
            "totalresults": str(len(rows)),
            "clientid": str(client.id),
            "credits": {"credit": rows} if rows else "",
        }

    def _a_gettransactions(self, params: Params) -> Json:
        # gettransactions.md: filters invoiceid, clientid, transid; no paging parameters.
        rows = [
            {"id": str(index + 1), "userid": str(t.userid), "currency": "0",
             "gateway": t.gateway, "description": "Invoice Payment" if t.invoiceid else "",
             "amountin": money(t.amountin), "fees": "0.00", "amountout": "0.00",
             "rate": "1.00000", "transid": t.transid, "invoiceid": str(t.invoiceid),
             "refundid": "0"}
            for index, t in enumerate(self.transactions)
            if (not params.get("clientid") or t.userid == number(params, "clientid"))
            and (not params.get("invoiceid") or t.invoiceid == number(params, "invoiceid"))
            and (not params.get("transid") or t.transid == str(params["transid"]))
        ]  # fmt: skip
        return {
            "totalresults": len(rows),
            "startnumber": 0,
            "numreturned": len(rows),
            "transactions": {"transaction": rows} if rows else "",
        }

    def _a_updateinvoice(self, params: Params) -> Json:
        # updateinvoice.md; only `status` is supported here. The statuses WHMCS accepts are
        # not listed ("Invalid status $status"): these are the invoice statuses of WHMCS.
        invoice = self._invoice(params)
        status = params.get("status")
        if status is not None:
            if status not in ("Draft", "Unpaid", "Paid", "Cancelled", "Refunded", "Collections"):
                raise Refused(f"Invalid status {status}")
            invoice.status = str(status)
        return {"invoiceid": invoice.id}

    # -- support (getsupportdepartments.md, openticket.md, gettickets.md, getticket.md, ...) --

    def _ticket(self, params: Params) -> Ticket:
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None and params.get("ticketnum"):
            ticket = next((t for t in self.tickets.values() if t.tid == params["ticketnum"]), None)
        if ticket is None:
            raise Refused("Ticket ID Not Found")  # GetTicket lists no errors: this one is ours
        return ticket

    def _ticket_json(self, ticket: Ticket) -> Json:
        return {
            "id": str(ticket.id), "tid": ticket.tid, "c": ticket.c, "deptid": str(ticket.deptid),
            "userid": str(ticket.userid), "subject": ticket.subject, "status": ticket.status,
            "priority": ticket.priority, "date": when(ticket.date),
            "lastreply": when(ticket.lastreply), "flag": "0", "service": "",
        }  # fmt: skip

    def _a_getsupportdepartments(self, params: Params) -> Json:
        rows = [
            {
                "id": str(dept_id),
                "name": name,
                "awaitingreply": str(
                    sum(
                        t.deptid == dept_id and t.status in ("Open", "Customer-Reply")
                        for t in self.tickets.values()
                    )
                ),
                "opentickets": str(
                    sum(t.deptid == dept_id and t.status != "Closed" for t in self.tickets.values())
                ),
            }
            for dept_id, name in self.departments.items()
        ]
        return {"totalresults": len(rows), "departments": {"department": rows} if rows else ""}

    def _a_openticket(self, params: Params) -> Json:
        if number(params, "deptid") not in self.departments:
            raise Refused("Department ID not found")
        if not params.get("subject"):
            raise Refused("Subject is required")
        if not params.get("message"):
            raise Refused("Message is required")
        if not params.get("clientid"):
            # Tickets from non-clients are not modelled.
            raise Refused("Name and email address are required if not a client")
        client = self._client(params)
        ticket = self.add_ticket(
            client, str(params["subject"]), str(params["message"]), number(params, "deptid")
        )
        ticket.priority = str(params.get("priority") or "Medium")
        ticket.date = ticket.replies[0].date = datetime.combine(self.today, datetime.min.time())
        return {"id": str(ticket.id), "tid": ticket.tid, "c": ticket.c}

    def _a_gettickets(self, params: Params) -> Json:
        # Status filters: any status, plus "Awaiting Reply" (Open, Customer-Reply) and
        # "All Active Tickets" (anything but Closed) — our reading of the reference.
        wanted = str(params.get("status") or "")
        groups = {
            "Awaiting Reply": {"Open", "Customer-Reply"},
            "All Active Tickets": set(TICKET_STATUSES) - {"Closed"},
        }
        statuses = groups.get(wanted, {wanted})
        rows = [
            self._ticket_json(t)
            for t in sorted(self.tickets.values(), key=lambda t: t.id, reverse=True)
            if (not params.get("clientid") or t.userid == number(params, "clientid"))
            and (not params.get("deptid") or t.deptid == number(params, "deptid"))
            and (not wanted or t.status in statuses)
        ]
        return self._page(params, rows, "tickets", "ticket", as_text=True)

    def _a_getticket(self, params: Params) -> Json:
        ticket = self._ticket(params)
        replies = [
            {
                "replyid": str(index),
                "userid": str(reply.userid),
                "contactid": "0",
                "name": reply.name if not reply.admin else "",
                "requestor_name": reply.admin or reply.name,
                "requestor_type": "Operator" if reply.admin else "Owner",
                "date": when(reply.date),
                "message": reply.message,
                "admin": reply.admin,
            }
            for index, reply in enumerate(ticket.replies)
        ]
        if params.get("repliessort", "ASC").upper() == "DESC":
            replies.reverse()
        notes = [
            {
                "noteid": str(index + 1), "date": when(note.date), "message": note.message,
                "attachment": "", "attachments_removed": False, "admin": note.admin,
            }
            for index, note in enumerate(ticket.notes)
        ]  # fmt: skip
        body = self._ticket_json(ticket)
        body["ticketid"] = body.pop("id")
        return body | {
            "deptname": self.departments[ticket.deptid],
            "replies": {"reply": replies},
            "notes": {"note": notes} if notes else "",
        }

    def _a_addticketreply(self, params: Params) -> Json:
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None:
            raise Refused("Ticket ID not found")  # sic: lower-case "not", as the reference
        if not params.get("message"):
            raise Refused("Message is required")
        admin = str(params.get("adminusername") or "")
        client = self._client(params) if params.get("clientid") else None
        if client is None and not admin:
            raise Refused("Name and email address are required if not a client")
        name = f"{client.firstname} {client.lastname}" if client else ""
        moment = max(
            datetime.combine(self.today, datetime.min.time()), ticket.lastreply
        ) + timedelta(minutes=1)
        ticket.replies.append(
            Reply(client.id if client else 0, admin, name, str(params["message"]), moment)
        )
        # The statuses after a reply are WHMCS's defaults (not in the reference).
        status = str(params.get("status") or ("Answered" if admin else "Customer-Reply"))
        if status not in TICKET_STATUSES:
            raise Refused("Invalid Ticket Status")
        ticket.status = status
        return {}

    def _a_addticketnote(self, params: Params) -> Json:
        """addticketnote.md: by ticketid or ticketnum; the answer is bare success. The note's
        admin is the API user's (not in the request): "API" here."""
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None and params.get("ticketnum"):
            ticket = next((t for t in self.tickets.values() if t.tid == params["ticketnum"]), None)
        if ticket is None:
            raise Refused("Ticket ID not found")
        if not params.get("message"):
            raise Refused("Message is required")
        moment = datetime.combine(self.today, datetime.min.time())
        ticket.notes.append(Reply(0, "API", "", str(params["message"]), moment))
        return {}

    def _a_updateticket(self, params: Params) -> Json:
        ticket = self.tickets.get(number(params, "ticketid"))
        if ticket is None:
            raise Refused("Ticket ID Not Found")
        status = params.get("status")
        if status and status not in TICKET_STATUSES:
            raise Refused(f"Invalid Ticket Status. Valid statuses are: {','.join(TICKET_STATUSES)}")
        if status:
            ticket.status = str(status)
        if params.get("subject"):
            ticket.subject = str(params["subject"])
        return {"ticketid": str(ticket.id)}
