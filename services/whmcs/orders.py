"""Order actions over WHMCS: renewal on demand, tariff change, cancellation, auto-renewal.

The catalogue is services/whmcs/catalogue.py, reading orders services/whmcs/order_reads.py,
new orders and the cart services/whmcs/carts.py, the alert jobs' due scans
services/whmcs/due.py; this module composes them for services/whmcs/core.py.

- Renew now (addorder.md, `servicerenewals`, WHMCS 8.8+): an on-demand renewal of one billing
  cycle of the service, invoiced at its recurring amount; the invoice is paid from the credit
  (ApplyCredit) and WHMCS moves the next due date when it is paid. WHMCS renews a service by
  its own cycle only, so the one period offered is the order's period. If the credit does not
  cover the price, no invoice is created (InsufficientFunds with the missing amount). An
  unpaid invoice that already covers the service (WHMCS's cron invoices ahead of the due date,
  or an earlier attempt whose answer was lost) is paid instead of ordering again.
- Idempotency: the renewal key (renewal_key(order, paid-until) by default) → its invoice and
  "done" in the bot store (adapter state "renewal"); a repeated press renews once.
- Change tariff: UpgradeProduct with `calconly` quotes (WHMCS's own proration), then for real;
  the upgrade invoice is paid from credit. A downgrade's credit is what WHMCS's configuration
  does with a negative upgrade (not in the API reference).
- Cancel: AddCancelRequest (`Immediate` / `End of Billing Period`); WHMCS's cron carries it
  out. Resume: the API reference has no action that removes a cancellation request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.contracts import orders as dto
from services.contracts.alerts import (
    RENEWAL_DONE,
    RENEWAL_FAILED,
    RENEWAL_SHORT,
    RENEWAL_SKIPPED,
    DueOrder,
    RenewalResult,
)
from services.errors import DomainError, InsufficientFunds, InvalidState, ValidationFailed
from services.whmcs.carts import WhmcsNewOrdersMixin
from services.whmcs.catalogue import MONTHS_CYCLE, WhmcsCatalogueMixin, tariff_of
from services.whmcs.client import CANCEL_END_OF_PERIOD, CANCEL_IMMEDIATE
from services.whmcs.due import WhmcsDueScansMixin
from services.whmcs.errors import WhmcsAuthError, WhmcsError
from services.whmcs.models import ClientDetails, Service
from services.whmcs.order_reads import ServiceFlags, add_months, state_expiry

__all__ = ["WhmcsCatalogueMixin", "WhmcsDueScansMixin", "WhmcsOrdersMixin"]

RENEWAL_KIND = "renewal"  # adapter state: key = the renewal's idempotency key


class WhmcsOrdersMixin(WhmcsNewOrdersMixin):
    # ---- renewal --------------------------------------------------------------------------
    @staticmethod
    def _check_renewable(order: dto.Order, months: int | None = None) -> None:
        if order.status not in dto.RENEWABLE or order.period_months == 0:
            raise InvalidState("not_renewable", status=order.status)
        if months is not None and months != order.period_months:
            raise ValidationFailed("period_not_offered", months=months)

    def _renewal_quote(self, client: ClientDetails, order: dto.Order) -> dto.Quote:
        return dto.Quote(
            amount_minor=order.price_minor,
            balance_minor=client.credit_minor,
            currency=client.currency_code,
            tariff_id=order.tariff_id,
            tariff_name=order.tariff_name,
            months=order.period_months,
            # WHMCS moves the next due date by one cycle from where it is, even once passed.
            paid_until=add_months(order.paid_until, order.period_months),
            price_minor=order.price_minor,
        )

    async def renewal_options(self, account_id: int, order_id: int) -> list[dto.Quote]:
        client, _, order = await self._owned_order(account_id, order_id)
        self._check_renewable(order)
        return [self._renewal_quote(client, order)]

    async def quote_renewal(self, account_id: int, order_id: int, months: int) -> dto.Quote:
        client, _, order = await self._owned_order(account_id, order_id)
        self._check_renewable(order, months)
        return self._renewal_quote(client, order)

    async def renew_order(
        self,
        account_id: int,
        order_id: int,
        months: int,
        *,
        idempotency_key: str | None = None,
        period_start: datetime | None = None,
    ) -> dto.Order:
        client, service, order = await self._owned_order(account_id, order_id)
        if period_start is not None and order.paid_until != period_start:
            return order  # the period the user confirmed is already paid
        key = idempotency_key or dto.renewal_key(order.id, order.paid_until)
        state = await self.local.get_adapter_state(RENEWAL_KIND, key) or {}
        if state.get("done"):
            return order
        self._check_renewable(order, months)
        invoice_id = state.get("invoice_id") or await self._open_invoice_for(client, service.id)
        if invoice_id is None:
            invoice_id = await self._order_renewal(client, service, order, key)
        if invoice_id:
            await self._pay_from_credit(client, int(invoice_id))
        record = {"order_id": order.id, "invoice_id": invoice_id, "done": True}
        await self.local.put_adapter_state(
            RENEWAL_KIND, key, record, expires_at=state_expiry(self.now())
        )
        return await self.get_order(account_id, order_id)

    async def _order_renewal(
        self, client: ClientDetails, service: Service, order: dto.Order, key: str
    ) -> int | None:
        """AddOrder with servicerenewals — only when the credit covers the price, so no
        unpaid invoice is left behind. Its invoice is recorded under the key at once."""
        await self._raise_if_short(client.id, order.price_minor)
        placed = await self.client.add_order(
            client.id, self.options.payment_method, renew_service_ids=[service.id]
        )
        record = {"order_id": order.id, "invoice_id": placed.invoice_id}
        await self.local.put_adapter_state(
            RENEWAL_KIND, key, record, expires_at=state_expiry(self.now())
        )
        return placed.invoice_id

    async def renew_due_orders(self, orders: Sequence[DueOrder]) -> list[RenewalResult]:
        """One by one through renew_order (WHMCS has no batch renewal; its cron renews, and
        renewals_due finds nothing here)."""
        return [await self._renew_due(due) for due in orders]

    async def _renew_due(self, due: DueOrder) -> RenewalResult:
        current = await self.get_order(due.account_id, due.order_id)
        if (
            current.paid_until != due.paid_until
            or current.status != due.status
            or not current.auto_renew
            or current.cancel_at_period_end
        ):
            return RenewalResult(due.order_id, RENEWAL_SKIPPED)  # changed since the scan
        try:
            renewed = await self.renew_order(
                due.account_id,
                due.order_id,
                due.period_months,
                idempotency_key=dto.renewal_key(due.order_id, due.paid_until),
                period_start=due.paid_until,
            )
        except InsufficientFunds as exc:
            return await self._short(due, exc.missing_minor)
        except DomainError as exc:
            return RenewalResult(due.order_id, RENEWAL_FAILED, error=exc.detail or exc.code)
        if renewed.paid_until == due.paid_until:
            return RenewalResult(due.order_id, RENEWAL_SKIPPED)  # this period is paid already
        return RenewalResult(due.order_id, RENEWAL_DONE, renewed.paid_until, due.price_minor)

    async def _short(self, due: DueOrder, missing_minor: int) -> RenewalResult:
        balance = (await self._client_of(due.account_id)).credit_minor  # as renew_order saw it
        return RenewalResult(
            due.order_id,
            RENEWAL_SHORT,
            price_minor=missing_minor + balance,
            missing_minor=missing_minor,
            balance_minor=balance,
        )

    # ---- tariff change --------------------------------------------------------------------
    def _check_changeable(self, order: dto.Order) -> None:
        if order.status != dto.ACTIVE or order.paid_until <= self.now():
            raise InvalidState("not_changeable", status=order.status)
        if order.period_months not in MONTHS_CYCLE:
            raise InvalidState("not_changeable", status=order.status)

    async def _upgrade(
        self,
        client: ClientDetails,
        service: Service,
        order: dto.Order,
        tariff_id: int,
        *,
        calconly: bool,
    ) -> tuple[dto.Quote, int | None]:
        """UpgradeProduct to `tariff_id` on the order's cycle: the quote (and, for real, the
        upgrade invoice id). WHMCS refusing (an upgrade invoice still unpaid): InvalidState."""
        product = await self._product(tariff_id)
        tariff = None if product is None else tariff_of(product, client.currency_code)
        if product is None or tariff is None:
            raise InvalidState("tariff_not_offered")
        if tariff.product_type != order.product_type:
            raise ValidationFailed("other_product_type")
        price = product.price(client.currency_code, MONTHS_CYCLE[order.period_months])
        if price is None:
            raise ValidationFailed("period_not_offered", months=order.period_months)
        try:
            answer = await self.client.upgrade_product(
                service.id,
                tariff_id,
                MONTHS_CYCLE[order.period_months],
                self.options.payment_method,
                client.currency_code,
                calconly=calconly,
            )
        except WhmcsAuthError:
            raise
        except WhmcsError as exc:
            raise InvalidState("upgrade_refused") from exc
        quote = dto.Quote(
            amount_minor=answer.price_minor,
            balance_minor=client.credit_minor,
            currency=client.currency_code,
            tariff_id=tariff_id,
            tariff_name=tariff.name,
            months=order.period_months,
            paid_until=order.paid_until,
            price_minor=price.price_minor,
            remaining_days=max(0, answer.days_until_renewal),
            period_days=max(0, answer.total_days),
        )
        return quote, answer.invoice_id

    async def change_tariff_options(self, account_id: int, order_id: int) -> list[dto.Quote]:
        client, service, order = await self._owned_order(account_id, order_id)
        self._check_changeable(order)
        quotes = []
        for tariff in await self._tariffs_in(client.currency_code):
            offered = tariff.price_for(order.period_months) is not None
            if tariff.id == order.tariff_id or tariff.product_type != order.product_type:
                continue
            if offered:
                quote, _ = await self._upgrade(client, service, order, tariff.id, calconly=True)
                quotes.append(quote)
        return quotes

    async def quote_tariff_change(
        self, account_id: int, order_id: int, tariff_id: int
    ) -> dto.Quote:
        client, service, order = await self._owned_order(account_id, order_id)
        self._check_changeable(order)
        if order.tariff_id == tariff_id:
            raise InvalidState("same_tariff")
        quote, _ = await self._upgrade(client, service, order, tariff_id, calconly=True)
        return quote

    async def change_tariff(
        self,
        account_id: int,
        order_id: int,
        tariff_id: int,
        *,
        expected_amount_minor: int | None = None,
    ) -> dto.Order:
        client, service, order = await self._owned_order(account_id, order_id)
        self._check_changeable(order)
        if order.tariff_id == tariff_id:
            raise InvalidState("same_tariff")
        quote, _ = await self._upgrade(client, service, order, tariff_id, calconly=True)
        if expected_amount_minor is not None and quote.amount_minor != expected_amount_minor:
            raise ValidationFailed("quote_changed", amount_minor=quote.amount_minor)
        if quote.amount_minor > 0:  # no upgrade invoice is made that the credit cannot pay
            await self._raise_if_short(client.id, quote.amount_minor)
        _, invoice_id = await self._upgrade(client, service, order, tariff_id, calconly=False)
        if invoice_id:
            await self._pay_from_credit(client, invoice_id)
        return await self.get_order(account_id, order_id)

    # ---- cancel, resume, auto-renew -------------------------------------------------------
    async def cancel_order(self, account_id: int, order_id: int, *, immediately: bool) -> dto.Order:
        _, service, order = await self._owned_order(account_id, order_id)
        if order.status == dto.CANCELLED:
            raise InvalidState("cancelled")
        if order.cancel_at_period_end:
            raise InvalidState("cancel_requested")
        if not immediately and (order.status != dto.ACTIVE or order.paid_until <= self.now()):
            raise InvalidState("period_over")
        cancel_type = CANCEL_IMMEDIATE if immediately else CANCEL_END_OF_PERIOD
        flags = ServiceFlags(cancel_type, self.now().replace(microsecond=0), auto_renew=False)
        try:
            await self.client.add_cancel_request(service.id, cancel_type, "Requested in Telegram")
        except WhmcsAuthError:
            raise
        except WhmcsError as exc:
            if "existing cancellation" not in exc.message.lower():
                raise
            # Filed before, outside the bot: remember it so the order shows it, and say no.
            await self._set_flags(account_id, service.id, flags)
            raise InvalidState("cancel_requested") from exc
        await self._set_flags(account_id, service.id, flags)
        return await self.get_order(account_id, order_id)

    async def resume_order(self, account_id: int, order_id: int) -> dto.Order:
        _, _, order = await self._owned_order(account_id, order_id)
        if order.status == dto.CANCELLED or not order.cancel_at_period_end:
            raise InvalidState("not_scheduled")
        # WHMCS's API has no action that removes a cancellation request (the reference has
        # AddCancelRequest and GetCancelledPackages only): staff remove it in the admin area.
        raise InvalidState("cancel_request_kept")

    async def set_order_auto_renew(
        self, account_id: int, order_id: int, enabled: bool
    ) -> dto.Order:
        # WHMCS has no per-service switch for its invoicing in the API (UpdateClientProduct's
        # fields have none): this is the bot's own flag. WHMCS's cron still invoices the
        # service, and the bot runs no renewals of its own over WHMCS (renewals_due is []).
        _, service, order = await self._owned_order(account_id, order_id)
        if enabled and (order.status == dto.CANCELLED or order.cancel_at_period_end):
            raise InvalidState("cancelled")
        flags = ServiceFlags.load((await self._flags(account_id)).get(str(service.id)))
        await self._set_flags(
            account_id,
            service.id,
            ServiceFlags(flags.cancel_type, flags.requested_at, auto_renew=enabled),
        )
        return await self.get_order(account_id, order_id)
