"""Orders over WHMCS, the reading half: an order is a WHMCS service of the linked client
(GetClientsProducts), and the helpers the order actions share (ownership, paying an invoice
from the client's credit, the bot's own flags of a service).

Mapping (getclientsproducts.md):
- id = the service id, tariff = the product (`translated_name`), ip = `dedicatedip`,
  paid-until = `nextduedate` (00:00 UTC of that day), created = `regdate`, price =
  `recurringamount` (per billing cycle, in the client's currency), period = `billingcycle` in
  months (One Time / Free Account: 0, not renewable).
- Status: Active→active, Suspended→suspended, Pending→pending, Terminated/Cancelled/Fraud→
  cancelled. "Expired" is not a WHMCS status: an active service whose next due date has passed
  shows as expired through `Order.display_status` (WHMCS's own cron suspends it later).
- Auto-renewal: WHMCS invoices every active service by its own cron, so it reads as on unless
  the bot filed a cancellation request or the customer switched the bot's flag off (kept in
  the bot store, see `ServiceFlags`). A cancellation request filed outside the bot (the client
  area, staff) is not seen until WHMCS's cron cancels the service: the API has no per-client
  list of requests (GetCancelledPackages lists every client's, unpaged by client).
- A client's services are read whole, up to MAX_SERVICES (pages of the client's page size),
  then searched, sorted and paged in memory: the memory a list takes stays bounded.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.contracts import orders as dto
from services.contracts.common import Page
from services.errors import InsufficientFunds, NotFound, ValidationFailed
from services.money import to_decimal
from services.validation import parse_id
from services.whmcs.catalogue import CYCLE_MONTHS, CatalogueCache
from services.whmcs.errors import WhmcsAuthError, WhmcsError
from services.whmcs.models import ClientDetails, Service

log = logging.getLogger(__name__)

MAX_SERVICES = 500  # services of one client read for a list; more are left out (logged)
MAX_QUERY_LENGTH = 64
OPEN_INVOICES_LOOKED_AT = 10  # unpaid invoices searched for one covering a service
FLAGS_KIND = "service_flags"  # adapter state: key = account id
STATE_DAYS = 400  # how long idempotency records of renewals and orders are kept
WHMCS_STATUSES = {
    "active": dto.ACTIVE,
    "suspended": dto.SUSPENDED,
    "pending": dto.PENDING,
    "terminated": dto.CANCELLED,
    "cancelled": dto.CANCELLED,
    "fraud": dto.CANCELLED,
}
_STATUS_ORDER = {dto.ACTIVE: 0, dto.PENDING: 1, dto.SUSPENDED: 2, dto.EXPIRED: 3, dto.CANCELLED: 4}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def add_months(value: datetime, months: int) -> datetime:
    """Calendar months; the day is clamped to the end of a shorter month."""
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, _last_day(year, month)))


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def period_months(billingcycle: str) -> int:
    """WHMCS's "Monthly", "Semi-Annually", … in months; 0 for One Time / Free Account."""
    return CYCLE_MONTHS.get(billingcycle.lower().replace("-", "").replace(" ", ""), 0)


def day_start(day: date | None) -> datetime:
    return _EPOCH if day is None else datetime.combine(day, time(), UTC)


def state_expiry(now: datetime) -> datetime:
    return now + timedelta(days=STATE_DAYS)


@dataclass(frozen=True)
class ServiceFlags:
    """What the bot keeps about a service WHMCS's API does not tell per client."""

    cancel_type: str | None = None  # the cancellation request the bot filed
    requested_at: datetime | None = None
    auto_renew: bool = True

    @classmethod
    def load(cls, value: dict[str, Any] | None) -> ServiceFlags:
        if not value:
            return cls()
        at = value.get("requested_at")
        return cls(
            cancel_type=value.get("cancel_type"),
            requested_at=datetime.fromisoformat(at) if isinstance(at, str) else None,
            auto_renew=bool(value.get("auto_renew", True)),
        )

    def dump(self) -> dict[str, Any]:
        at = self.requested_at.isoformat() if self.requested_at else None
        return {"cancel_type": self.cancel_type, "requested_at": at, "auto_renew": self.auto_renew}


def order_of(
    service: Service, account_id: int, product_type: str, flags: ServiceFlags
) -> dto.Order:
    status = WHMCS_STATUSES.get(service.status.lower(), dto.PENDING)
    requested = flags.cancel_type is not None and status != dto.CANCELLED
    immediate = requested and flags.cancel_type == "Immediate"
    return dto.Order(
        id=service.id,
        account_id=account_id,
        tariff_id=service.pid,
        tariff_name=service.name,
        product_type=product_type,
        status=status,
        ip_address=service.dedicatedip or None,
        period_months=period_months(service.billingcycle),
        price_minor=max(0, service.recurring_minor),
        created_at=day_start(service.regdate),
        paid_until=day_start(service.nextduedate or service.regdate),
        auto_renew=flags.auto_renew and not requested and status != dto.CANCELLED,
        cancel_at_period_end=requested,
        cancelled_at=flags.requested_at if immediate else None,
    )


def _matches(order: dto.Order, text: str) -> bool:
    if not text:
        return True
    number = parse_id(text)
    return (
        (number is not None and order.id == number)
        or text in order.tariff_name.lower()
        or text in (order.ip_address or "")
    )


def _sort_value(order: dto.Order, sort: str) -> tuple[Any, int]:
    value: Any = {
        "created": order.created_at,
        "status": _STATUS_ORDER.get(order.status, 9),
        "cost": order.monthly_price_minor,
        "paid_until": order.paid_until,
    }[sort]
    return value, order.id


class WhmcsOrderBase(CatalogueCache):
    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    # ---- the client's services ------------------------------------------------------------
    async def _services(self, client: ClientDetails) -> list[Service]:
        services: list[Service] = []
        async for service in self.client.iter_services(client.id, client.currency_code):
            if service.client_id not in (0, client.id):
                continue  # WHMCS filtered by client: anything else is not theirs
            if len(services) >= MAX_SERVICES:
                log.warning("Client %s has more than %s services", client.id, MAX_SERVICES)
                break
            services.append(service)
        return services

    async def _owned(self, account_id: int, order_id: int) -> tuple[ClientDetails, Service]:
        """The client and its service `order_id`; NotFound when it is another client's."""
        client = await self._client_of(account_id)
        if not 0 < order_id < 2**31:
            raise NotFound("order")
        async for service in self.client.iter_services(
            client.id, client.currency_code, service_id=order_id
        ):
            if service.id == order_id and service.client_id == client.id:
                return client, service
        raise NotFound("order")

    async def _flags(self, account_id: int) -> dict[str, Any]:
        return await self.local.get_adapter_state(FLAGS_KIND, str(account_id)) or {}

    async def _set_flags(self, account_id: int, service_id: int, flags: ServiceFlags) -> None:
        stored = await self._flags(account_id)
        stored[str(service_id)] = flags.dump()
        await self.local.put_adapter_state(FLAGS_KIND, str(account_id), stored)

    async def _order(self, account_id: int, service: Service) -> dto.Order:
        flags = ServiceFlags.load((await self._flags(account_id)).get(str(service.id)))
        return order_of(service, account_id, await self._product_type_of(service.pid), flags)

    async def _owned_order(
        self, account_id: int, order_id: int
    ) -> tuple[ClientDetails, Service, dto.Order]:
        client, service = await self._owned(account_id, order_id)
        return client, service, await self._order(account_id, service)

    # ---- reading --------------------------------------------------------------------------
    async def list_orders(
        self,
        account_id: int,
        *,
        query: str | None = None,
        sort: str = "created",
        descending: bool = True,
        offset: int = 0,
        limit: int = 5,
    ) -> Page[dto.Order]:
        if sort not in dto.SORT_KEYS:
            raise ValidationFailed("unknown_sort")
        client = await self._client_of(account_id)
        services = await self._services(client)
        flags = await self._flags(account_id)
        types = {p.pid: p.type or "other" for p in await self._products()}
        orders = [
            order_of(
                s, account_id, types.get(s.pid, "other"), ServiceFlags.load(flags.get(str(s.id)))
            )
            for s in services
        ]
        text = (query or "").strip()[:MAX_QUERY_LENGTH].lower()
        found = sorted(
            (o for o in orders if _matches(o, text)),
            key=lambda o: _sort_value(o, sort),
            reverse=descending,
        )
        offset, limit = max(0, offset), max(0, limit)
        return Page(found[offset : offset + limit], len(found), offset, limit)

    async def get_order(self, account_id: int, order_id: int) -> dto.Order:
        _, _, order = await self._owned_order(account_id, order_id)
        return order

    # ---- paying from credit ---------------------------------------------------------------
    async def _raise_if_short(self, client_id: int, amount_minor: int) -> ClientDetails:
        """Fresh client details; InsufficientFunds when the credit does not cover `amount`."""
        client = await self._client_details(client_id, fresh=True)
        if client.credit_minor < amount_minor:
            raise InsufficientFunds(amount_minor - client.credit_minor, client.currency_code)
        return client

    async def _pay_from_credit(self, client: ClientDetails, invoice_id: int) -> None:
        """Pay the client's invoice whole from its credit (GetInvoice checks it is theirs and
        reads the balance; ApplyCredit with that amount). Already paid: nothing to do."""
        currency = client.currency_code
        invoice = await self.client.get_invoice(invoice_id, currency)
        if invoice.userid != client.id:
            raise NotFound("invoice")
        if invoice.status != "Unpaid" or invoice.balance_minor <= 0:
            return
        await self._raise_if_short(client.id, invoice.balance_minor)
        try:
            await self.client.apply_credit(
                invoice_id, currency, to_decimal(invoice.balance_minor, currency)
            )
        except WhmcsAuthError:
            raise
        except WhmcsError as exc:
            if "unpaid status" in exc.message.lower():
                return  # paid meanwhile (WHMCS's cron applies credit to new invoices too)
            await self._raise_if_short(client.id, invoice.balance_minor)
            raise
        finally:
            self._client_changed(client.id)

    async def _open_invoice_for(self, client: ClientDetails, service_id: int) -> int | None:
        """An unpaid invoice of the client with a Hosting line for the service (WHMCS's cron or
        an earlier attempt of ours made it), among the newest OPEN_INVOICES_LOOKED_AT."""
        looked_at = 0
        invoices = self.client.iter_invoices(client.id, client.currency_code, status="Unpaid")
        async for row in invoices:
            looked_at += 1
            if looked_at > OPEN_INVOICES_LOOKED_AT:
                break
            invoice = await self.client.get_invoice(row.id, client.currency_code)
            if invoice.userid == client.id and any(
                item.type == "Hosting" and item.relid == service_id for item in invoice.items
            ):
                return invoice.id
        return None
