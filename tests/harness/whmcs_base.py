"""What every area of the WHMCS stand-in (tests/harness/whmcs.py) shares: the state the
actions read and write, and the helpers of the actions (look-ups that refuse with the
reference's messages, paging, invoicing and settling)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tests.harness.whmcs_state import (
    CURRENCIES,
    CYCLE_MONTHS,
    Client,
    CreditRecord,
    Email,
    Invoice,
    InvoiceLine,
    Json,
    Params,
    Product,
    Refused,
    Service,
    Ticket,
    Transaction,
    add_months,
    number,
)


class StandInBase:
    """The state of `WhmcsStandIn` (set by its `__init__`) and the helpers its area mixins
    share. The seeding helpers the actions use are `WhmcsStandIn`'s: declared here for the
    type checker only."""

    today: date
    payment_methods: set[str]
    clients: dict[int, Client]
    products: dict[int, Product]
    currency_rates: dict[str, Decimal]  # the currencies configured, code → rate
    services: dict[int, Service]
    invoices: dict[int, Invoice]
    transactions: list[Transaction]
    credit_log: list[CreditRecord]
    tickets: dict[int, Ticket]
    orders: dict[int, list[int]]
    departments: dict[int, str]
    emails: list[Email]

    if TYPE_CHECKING:

        def next_id(self) -> int: ...

        def add_invoice(
            self, client: Client, *lines: InvoiceLine, duedate: date | None = None
        ) -> Invoice: ...

        def add_ticket(
            self, client: Client, subject: str, message: str, deptid: int = 1
        ) -> Ticket: ...

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
