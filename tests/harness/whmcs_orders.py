"""The WHMCS stand-in's catalogue and order actions: products, services, orders, upgrades,
cancellation and renewal invoices.
Mixed into `WhmcsStandIn` (tests/harness/whmcs.py)."""

from __future__ import annotations

from decimal import Decimal

from tests.harness.whmcs_base import StandInBase
from tests.harness.whmcs_state import (
    CURRENCIES,
    CYCLE_MONTHS,
    Client,
    Invoice,
    InvoiceLine,
    Json,
    Params,
    Refused,
    Service,
    money,
    number,
    php_list,
    truthy,
    when,
)


class OrdersMixin(StandInBase):
    """GetClientsProducts, GetProducts, GetCurrencies, AddOrder, AcceptOrder, UpgradeProduct,
    AddCancelRequest, GenInvoices."""

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

    def _a_getcurrencies(self, params: Params) -> Json:
        # getcurrencies.md's example prints the nested list flattened
        # ("currencies[currency][0][code]"): as JSON that is currencies.currency[]. Its
        # totalresults is a string there. `rate` is from the default currency (rate 1).
        rows = [
            {"id": str(cid), "code": code, "prefix": "", "suffix": f" {code}", "format": "1",
             "rate": f"{self.currency_rates[code]:.5f}"}
            for cid, code in sorted(CURRENCIES.items())
            if code in self.currency_rates
        ]  # fmt: skip
        return {"totalresults": str(len(rows)), "currencies": {"currency": rows} if rows else ""}

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
