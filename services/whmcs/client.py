"""`WhmcsClient`: one typed method per WHMCS action the cabinet uses.

Amounts go out as decimals with two places ("12.50") and come back as integer minor units
of the currency named in the result (see models.py). Action names, parameters and error
messages are those of the official API reference (developer-docs/api-reference/*.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.whmcs.models import (
    ClientDetails,
    CreditApplied,
    CreditEntry,
    Currency,
    Department,
    Invoice,
    OrderPlaced,
    Product,
    Service,
    Ticket,
    TicketNote,
    TicketOpened,
    TransactionRecord,
    UpgradeQuote,
    parse_client,
    parse_credit,
    parse_currencies,
    parse_department,
    parse_invoice,
    parse_order,
    parse_product,
    parse_service,
    parse_ticket,
    parse_ticket_notes,
    parse_transaction,
    parse_upgrade,
)
from services.whmcs.parse import (
    JsonObject,
    as_bool,
    as_int,
    as_str,
    iterate_pages,
    money_minor,
    nested_list,
)
from services.whmcs.transport import ParamValue, WhmcsTransport

CANCEL_IMMEDIATE = "Immediate"
CANCEL_END_OF_PERIOD = "End of Billing Period"


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


@dataclass(frozen=True)
class OrderLine:
    pid: int
    billingcycle: str  # "monthly", "annually", ... as GetProducts' pricing keys
    domain: str = ""


class WhmcsClient(WhmcsTransport):
    page_size = 100

    async def _pages(
        self, action: str, params: Mapping[str, ParamValue], outer: str, inner: str
    ) -> AsyncIterator[JsonObject]:
        async def fetch(start: int, size: int) -> JsonObject:
            return await self.call(action, {**params, "limitstart": start, "limitnum": size})

        async for row in iterate_pages(fetch, outer, inner, self.page_size):
            yield row

    # -- clients ---------------------------------------------------------------------------

    async def get_client(
        self, client_id: int | None = None, *, email: str | None = None
    ) -> ClientDetails:
        body = await self.call("GetClientsDetails", {"clientid": client_id, "email": email})
        return parse_client(body.get("client") or body)

    async def update_client(self, client_id: int, fields: Mapping[str, ParamValue]) -> None:
        """`fields` as UpdateClient names them; `email_preferences` takes a mapping
        ({"invoice": False}) and `marketingoptin` a bool."""
        await self.call("UpdateClient", {**fields, "clientid": client_id})

    async def send_email(
        self, client_id: int, subject: str, html_message: str, *, custom_type: str = "general"
    ) -> None:
        """A custom message to the client (type "general": the related id is the client id)."""
        await self.call(
            "SendEmail",
            {
                "id": client_id,
                "customtype": custom_type,
                "customsubject": subject,
                "custommessage": html_message,
            },
        )

    # -- services and the catalogue ---------------------------------------------------------

    async def iter_services(
        self, client_id: int | None, currency: str, *, service_id: int | None = None
    ) -> AsyncIterator[Service]:
        """A client's services (all clients' with client_id None), every page."""
        params = {"clientid": client_id, "serviceid": service_id}
        async for row in self._pages("GetClientsProducts", params, "products", "product"):
            yield parse_service(row, currency)

    async def get_services(self, client_id: int, currency: str) -> list[Service]:
        return [service async for service in self.iter_services(client_id, currency)]

    async def get_currencies(self) -> list[Currency]:
        """The currencies configured in WHMCS (GetCurrencies; no paging is documented)."""
        return parse_currencies(await self.call("GetCurrencies", {}))

    async def get_products(
        self, *, pid: int | Sequence[int] | None = None, gid: int | None = None
    ) -> list[Product]:
        pids = ",".join(str(p) for p in pid) if isinstance(pid, Sequence) else pid
        body = await self.call("GetProducts", {"pid": pids, "gid": gid})
        return [parse_product(row) for row in nested_list(body, "products", "product")]

    async def add_order(
        self,
        client_id: int,
        payment_method: str,
        *,
        lines: Sequence[OrderLine] = (),
        renew_service_ids: Sequence[int] = (),
        noemail: bool = False,
    ) -> OrderPlaced:
        params: dict[str, ParamValue] = {"clientid": client_id, "paymentmethod": payment_method}
        if lines:
            params["pid"] = [line.pid for line in lines]
            params["billingcycle"] = [line.billingcycle for line in lines]
            params["domain"] = [line.domain for line in lines]
        if renew_service_ids:
            params["servicerenewals"] = list(renew_service_ids)
        if noemail:
            params["noemail"] = True
        return parse_order(await self.call("AddOrder", params))

    async def accept_order(self, order_id: int, *, sendemail: bool = True) -> None:
        """AcceptOrder: addorder.md says AddOrder ignores automatic setup, so a new order
        stays Pending until it is accepted (acceptorder.md)."""
        await self.call("AcceptOrder", {"orderid": order_id, "sendemail": sendemail or None})

    async def upgrade_product(
        self,
        service_id: int,
        new_product_id: int,
        billingcycle: str,
        payment_method: str,
        currency: str,
        *,
        calconly: bool,
    ) -> UpgradeQuote:
        params: dict[str, ParamValue] = {
            "serviceid": service_id,
            "type": "product",
            "newproductid": new_product_id,
            "newproductbillingcycle": billingcycle,
            "paymentmethod": payment_method,
            "calconly": calconly or None,
        }
        return parse_upgrade(await self.call("UpgradeProduct", params), currency)

    async def add_cancel_request(
        self, service_id: int, cancel_type: str = CANCEL_END_OF_PERIOD, reason: str = ""
    ) -> None:
        params: dict[str, ParamValue] = {
            "serviceid": service_id,
            "type": cancel_type,
            "reason": reason or None,
        }
        await self.call("AddCancelRequest", params)

    async def gen_invoices(
        self,
        *,
        client_id: int | None = None,
        service_ids: Sequence[int] = (),
        noemails: bool = False,
    ) -> tuple[int, int | None]:
        """(number of invoices created, the latest invoice id when client_id was given)."""
        params: dict[str, ParamValue] = {"clientid": client_id, "noemails": noemails or None}
        if service_ids:
            params["serviceids"] = list(service_ids)
        body = await self.call("GenInvoices", params)
        return as_int(body.get("numcreated")), as_int(body.get("latestinvoiceid")) or None

    # -- money ------------------------------------------------------------------------------

    async def iter_invoices(
        self, user_id: int, currency: str, *, status: str | None = None
    ) -> AsyncIterator[Invoice]:
        params = {"userid": user_id, "status": status, "orderby": "id", "order": "desc"}
        async for row in self._pages("GetInvoices", params, "invoices", "invoice"):
            yield parse_invoice(row, currency)

    async def get_invoice(self, invoice_id: int, currency: str) -> Invoice:
        """GetInvoice names no currency: pass the client's."""
        return parse_invoice(await self.call("GetInvoice", {"invoiceid": invoice_id}), currency)

    async def apply_credit(
        self,
        invoice_id: int,
        currency: str,
        amount: Decimal | None = None,
        *,
        noemail: bool = False,
    ) -> CreditApplied:
        params = {"invoiceid": invoice_id, "amount": _amount(amount), "noemail": noemail or None}
        body = await self.call("ApplyCredit", params)
        return CreditApplied(
            invoice_id=as_int(body.get("invoiceid")),
            amount_minor=money_minor(body.get("amount"), currency),
            invoice_paid=as_bool(body.get("invoicepaid")),
        )

    async def add_invoice_payment(
        self,
        invoice_id: int,
        transid: str,
        gateway: str,
        paid_at: datetime,
        amount: Decimal | None = None,
    ) -> None:
        params: dict[str, ParamValue] = {
            "invoiceid": invoice_id,
            "transid": transid,
            "gateway": gateway,
            "date": paid_at.strftime("%Y-%m-%d %H:%M:%S"),
            "amount": _amount(amount),
        }
        await self.call("AddInvoicePayment", params)

    async def add_credit_transaction(
        self, user_id: int, payment_method: str, transid: str, amount: Decimal, description: str
    ) -> None:
        """A payment credited to the client's balance: AddTransaction with credit=true.

        WHMCS refuses a `transid` it already has ("Transaction ID must be Unique") unless
        `allowduplicatetransid` is sent, which we never do: a redelivered payment cannot
        credit twice. The `date` is left to WHMCS (its format is the install's locale).
        """
        params: dict[str, ParamValue] = {
            "userid": user_id,
            "paymentmethod": payment_method,
            "transid": transid,
            "amountin": _amount(amount),
            "description": description,
            "credit": True,
        }
        await self.call("AddTransaction", params)

    async def add_credit(
        self, client_id: int, amount: Decimal, description: str, currency: str
    ) -> int:
        """Adds credit without a transaction (no idempotency key!); the new balance, minor."""
        params = {"clientid": client_id, "amount": _amount(amount), "description": description}
        body = await self.call("AddCredit", params)
        return money_minor(body.get("newbalance"), currency)

    # -- support ----------------------------------------------------------------------------

    async def get_departments(self) -> list[Department]:
        body = await self.call("GetSupportDepartments", {"ignore_dept_assignments": True})
        return [parse_department(row) for row in nested_list(body, "departments", "department")]

    async def open_ticket(
        self, client_id: int, dept_id: int, subject: str, message: str, *, priority: str = "Medium"
    ) -> TicketOpened:
        params: dict[str, ParamValue] = {
            "clientid": client_id,
            "deptid": dept_id,
            "subject": subject,
            "message": message,
            "priority": priority,
        }
        body = await self.call("OpenTicket", params)
        return TicketOpened(as_int(body.get("id")), as_str(body.get("tid")), as_str(body.get("c")))

    async def iter_tickets(
        self, *, client_id: int | None = None, status: str | None = None, dept_id: int | None = None
    ) -> AsyncIterator[Ticket]:
        params: dict[str, ParamValue] = {
            "clientid": client_id,
            "status": status,
            "deptid": dept_id,
            "ignore_dept_assignments": True,
        }
        async for row in self._pages("GetTickets", params, "tickets", "ticket"):
            yield parse_ticket(row)

    async def get_ticket(self, ticket_id: int) -> Ticket:
        return parse_ticket(
            await self.call("GetTicket", {"ticketid": ticket_id, "repliessort": "ASC"})
        )

    async def add_ticket_reply(
        self,
        ticket_id: int,
        message: str,
        *,
        client_id: int | None = None,
        admin_username: str | None = None,
        status: str | None = None,
    ) -> None:
        """A customer's reply (client_id) or a staff reply (admin_username); exactly one."""
        if (client_id is None) == (admin_username is None):
            raise ValueError("pass exactly one of client_id and admin_username")
        params: dict[str, ParamValue] = {
            "ticketid": ticket_id,
            "message": message,
            "clientid": client_id,
            "adminusername": admin_username,
            "status": status,
        }
        await self.call("AddTicketReply", params)

    async def update_ticket(self, ticket_id: int, *, status: str) -> None:
        await self.call("UpdateTicket", {"ticketid": ticket_id, "status": status})

    async def get_ticket_with_notes(self, ticket_id: int) -> tuple[Ticket, tuple[TicketNote, ...]]:
        """GetTicket with its internal notes (getticket.md: `notes`), replies oldest first."""
        body = await self.call("GetTicket", {"ticketid": ticket_id, "repliessort": "ASC"})
        return parse_ticket(body), parse_ticket_notes(body)

    async def add_ticket_note(self, ticket_id: int, message: str) -> None:
        """An internal note (addticketnote.md); the answer names no note id."""
        await self.call("AddTicketNote", {"ticketid": ticket_id, "message": message})

    # -- money: the credit log, transactions, one page of invoices ----------------------------

    async def get_credits(self, client_id: int, currency: str) -> list[CreditEntry]:
        """GetCredits: the client's whole credit log (the reference documents no paging)."""
        body = await self.call("GetCredits", {"clientid": client_id})
        return [parse_credit(row, currency) for row in nested_list(body, "credits", "credit")]

    async def remove_credit(
        self, client_id: int, amount: Decimal, description: str, currency: str
    ) -> int:
        """AddCredit with type=remove (no idempotency key!); the new balance, minor."""
        params = {
            "clientid": client_id,
            "amount": _amount(amount),
            "description": description,
            "type": "remove",
        }
        body = await self.call("AddCredit", params)
        return money_minor(body.get("newbalance"), currency)

    async def get_transactions(
        self,
        currency: str,
        *,
        transid: str | None = None,
        client_id: int | None = None,
        invoice_id: int | None = None,
    ) -> list[TransactionRecord]:
        """GetTransactions filtered by transid/client/invoice (the reference documents no
        paging parameters: one answer)."""
        params = {"transid": transid, "clientid": client_id, "invoiceid": invoice_id}
        body = await self.call("GetTransactions", params)
        rows = nested_list(body, "transactions", "transaction")
        return [parse_transaction(row, currency) for row in rows]

    async def invoices_page(
        self, user_id: int, currency: str, start: int, size: int
    ) -> tuple[list[Invoice], int]:
        """One page of the client's invoices, newest first, and how many there are."""
        params: dict[str, ParamValue] = {
            "userid": user_id,
            "orderby": "id",
            "order": "desc",
            "limitstart": start,
            "limitnum": size,
        }
        body = await self.call("GetInvoices", params)
        rows = nested_list(body, "invoices", "invoice")
        return [parse_invoice(row, currency) for row in rows], as_int(body.get("totalresults"))

    async def update_invoice_status(self, invoice_id: int, status: str) -> None:
        """UpdateInvoice with only `status` (e.g. "Cancelled")."""
        await self.call("UpdateInvoice", {"invoiceid": invoice_id, "status": status})
