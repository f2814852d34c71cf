"""The WHMCS stand-in's money actions: invoices, payments, credit and transactions.
Mixed into `WhmcsStandIn` (tests/harness/whmcs.py)."""

from __future__ import annotations

from decimal import Decimal

from tests.harness.whmcs_base import StandInBase
from tests.harness.whmcs_state import (
    CURRENCIES,
    Client,
    CreditRecord,
    Invoice,
    Json,
    Params,
    Refused,
    Transaction,
    listing,
    money,
    number,
    truthy,
    when,
)


class MoneyMixin(StandInBase):
    """GetInvoices, GetInvoice, ApplyCredit, AddInvoicePayment, AddTransaction, AddCredit,
    GetCredits, GetTransactions, UpdateInvoice."""

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
