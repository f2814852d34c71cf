"""A stand-in for the WHMCS External API (`includes/api.php`) on a loopback aiohttp server.

Built from the official API reference (github.com/WHMCS/developer-docs, api-reference/*.md):
request parameters, error messages and the shapes of the example responses, quirks included
(numbers as strings where the examples have them, "" for an empty nested list). Where the
reference does not say what WHMCS does, the stand-in does the least and a comment says so.

Tests seed state with `add_client`/`add_product`/`add_service`/`add_invoice`/`add_ticket`,
inject faults with `fail_next`/`slow`/`go_down`, and read `calls` (every request, without
the credentials) and `emails` (what SendEmail sent).

The stand-in is split by responsibility: this module is the server, fault injection, the
call log and the seeding helpers; `whmcs_state` holds the records and the PHP-form helpers,
`whmcs_base` the state and helpers the actions share, and the actions (`_a_<action>`) are
mixins by area: `whmcs_clients`, `whmcs_orders`, `whmcs_money`, `whmcs_tickets`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from aiohttp import web

from tests.harness.server import free_port
from tests.harness.whmcs_clients import ClientsMixin
from tests.harness.whmcs_money import MoneyMixin
from tests.harness.whmcs_orders import OrdersMixin
from tests.harness.whmcs_state import (
    CURRENCIES,
    CYCLE_MONTHS,
    TICKET_STATUSES,
    Client,
    CreditRecord,
    Email,
    Invoice,
    InvoiceLine,
    Json,
    Params,
    Product,
    Refused,
    Reply,
    Service,
    Ticket,
    Transaction,
    add_months,
    listing,
    money,
    number,
    php_form,
    php_list,
    truthy,
    when,
)
from tests.harness.whmcs_tickets import TicketsMixin

__all__ = [
    "CREDENTIAL_FIELDS",
    "CURRENCIES",
    "CYCLE_MONTHS",
    "IDENTIFIER",
    "MAINTENANCE_PAGE",
    "SECRET",
    "TICKET_STATUSES",
    "Call",
    "Client",
    "CreditRecord",
    "Email",
    "Fault",
    "Invoice",
    "InvoiceLine",
    "Json",
    "Params",
    "PlannedFault",
    "Product",
    "Refused",
    "Reply",
    "Service",
    "Ticket",
    "Transaction",
    "WhmcsStandIn",
    "add_months",
    "listing",
    "money",
    "number",
    "php_form",
    "php_list",
    "truthy",
    "when",
]

IDENTIFIER = "test-api-identifier"
SECRET = "test-api-secret-do-not-log"
CREDENTIAL_FIELDS = {"identifier", "secret", "accesskey", "username", "password"}
MAINTENANCE_PAGE = "<html><body><h1>Down for maintenance</h1></body></html>"


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


class WhmcsStandIn(ClientsMixin, OrdersMixin, MoneyMixin, TicketsMixin):
    """`async with WhmcsStandIn() as whmcs:` serves `whmcs.url` on 127.0.0.1."""

    def __init__(self, *, access_key: str | None = None) -> None:
        self.port = free_port()
        self.identifier, self.secret, self.access_key = IDENTIFIER, SECRET, access_key
        self.allowed_ips: set[str] | None = None  # None: any IP (the allow-list is not tested)
        self.payment_methods = {"telegram", "mailin"}
        self.today = date(2026, 1, 15)
        self.clients: dict[int, Client] = {}
        self.products: dict[int, Product] = {}
        # GetCurrencies: code → rate from the default currency (USD, rate 1); a currency left
        # out here is not configured (CURRENCIES names the ids clients refer to).
        self.currency_rates = {"USD": Decimal("1"), "EUR": Decimal("0.9")}
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

    def add_pricing(self, product: Product, currency: str, monthly: str, **cycles: str) -> None:
        """Price `product` in one more currency (WHMCS prices every product per currency)."""
        prices = {"monthly": monthly, **cycles}
        product.pricing[currency] = {
            cycle: Decimal(prices.get(cycle, "-1.00")) for cycle in CYCLE_MONTHS
        }

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
