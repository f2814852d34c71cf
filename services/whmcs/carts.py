"""New orders and the cart over WHMCS.

A new order is AddOrder (the product, its billing cycle, the configured payment method), its
invoice paid from the client's credit (ApplyCredit), then AcceptOrder: addorder.md says AddOrder
ignores "set up the product as soon as an order is placed", so an order stays Pending until it
is accepted. AcceptOrder needs its own permission in the API role; when WHMCS refuses it the
order is paid and stays Pending for staff to accept (logged), it is not undone.

Nothing is ordered unless the credit covers the price (cycle price plus setup fee, in the
client's currency), so no unpaid invoice is left behind. The idempotency key maps to the
order's progress in the bot store (adapter state "order", key "<account>:<key>"): a repeated
confirmation pays and accepts what the first one ordered and returns that service. If WHMCS's
answer to AddOrder was lost, the retry adopts the client's newest pending service of that
product rather than ordering twice.

The cart is the bot's own (adapter state "cart", key = account id).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from services.contracts import orders as dto
from services.contracts.common import Tariff
from services.errors import InvalidState, NotFound, ValidationFailed
from services.whmcs.catalogue import MONTHS_CYCLE
from services.whmcs.client import OrderLine
from services.whmcs.errors import WhmcsError
from services.whmcs.models import ClientDetails
from services.whmcs.order_reads import WhmcsOrderBase, add_months, state_expiry

log = logging.getLogger(__name__)

ORDER_KIND = "order"
CART_KIND = "cart"


class WhmcsNewOrdersMixin(WhmcsOrderBase):
    async def _priced(
        self, client: ClientDetails, tariff_id: int, months: int
    ) -> tuple[Tariff, int]:
        tariff = await self._tariff_in(tariff_id, client.currency_code)
        price = tariff.price_for(months)
        if price is None or months not in MONTHS_CYCLE:
            raise ValidationFailed("period_not_offered", months=months)
        return tariff, price

    async def quote_new_order(self, account_id: int, tariff_id: int, months: int) -> dto.Quote:
        client = await self._client_of(account_id)
        tariff, price = await self._priced(client, tariff_id, months)
        return dto.Quote(
            amount_minor=price,
            balance_minor=client.credit_minor,
            currency=client.currency_code,
            tariff_id=tariff.id,
            tariff_name=tariff.name,
            months=months,
            paid_until=add_months(self.now().replace(microsecond=0), months),
            price_minor=price,
        )

    async def place_order(
        self, account_id: int, tariff_id: int, months: int, *, idempotency_key: str | None = None
    ) -> dto.Order:
        client = await self._client_of(account_id)
        state_key = f"{account_id}:{idempotency_key}" if idempotency_key else None
        state = (
            await self.local.get_adapter_state(ORDER_KIND, state_key) if state_key else None
        ) or {}
        if state.get("done"):
            return await self.get_order(account_id, int(state["service_id"]))
        _, price = await self._priced(client, tariff_id, months)
        if not state.get("service_id"):
            state = await self._add_order(client, tariff_id, months, price, state_key, state)
        service_id = int(state["service_id"])
        invoice_id = state.get("invoice_id") or await self._open_invoice_for(client, service_id)
        if invoice_id:
            await self._pay_from_credit(client, int(invoice_id))
        await self._accept(state.get("order_id"))
        await self._save_order_state(state_key, state | {"done": True})
        return await self.get_order(account_id, service_id)

    async def _add_order(
        self,
        client: ClientDetails,
        tariff_id: int,
        months: int,
        price: int,
        state_key: str | None,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        """AddOrder once the credit covers the price; the progress is recorded before and
        after it (a "placing" record whose answer was lost adopts the pending service)."""
        if state.get("placing"):
            adopted = await self._pending_service_of(client, tariff_id)
            if adopted is not None:
                return {"service_id": adopted, "invoice_id": None, "order_id": None}
        await self._raise_if_short(client.id, price)
        await self._save_order_state(state_key, {"placing": True})
        placed = await self.client.add_order(
            client.id,
            self.options.payment_method,
            lines=[OrderLine(tariff_id, MONTHS_CYCLE[months])],
        )
        if not placed.service_ids:
            raise InvalidState("order_failed")
        state = {
            "service_id": placed.service_ids[0],
            "invoice_id": placed.invoice_id,
            "order_id": placed.order_id,
        }
        await self._save_order_state(state_key, state)
        return state

    async def _save_order_state(self, state_key: str | None, value: dict[str, Any]) -> None:
        if state_key is not None:
            await self.local.put_adapter_state(
                ORDER_KIND, state_key, value, expires_at=state_expiry(self.now())
            )

    async def _pending_service_of(self, client: ClientDetails, pid: int) -> int | None:
        pending = [
            s.id for s in await self._services(client) if s.pid == pid and s.status == "Pending"
        ]
        return max(pending, default=None)

    async def _accept(self, order_id: object) -> None:
        if not order_id:
            log.warning("A paid WHMCS order of unknown id waits for staff to accept it")
            return
        try:
            await self.client.accept_order(int(str(order_id)))
        except WhmcsError as exc:  # an API role without AcceptOrder, a module's refusal
            log.warning("WHMCS order %s is paid but not accepted: %s", order_id, exc.message)

    # ---- the cart -------------------------------------------------------------------------
    async def get_cart(self, account_id: int) -> dto.Cart | None:
        stored = await self.local.get_adapter_state(CART_KIND, str(account_id))
        if stored is None:
            return None
        client = await self._client_of(account_id)
        try:
            tariff, price = await self._priced(
                client, int(stored["tariff_id"]), int(stored["months"])
            )
        except (NotFound, ValidationFailed, KeyError, ValueError):
            # The tariff or period is no longer offered. A read must not write: the record
            # stays until save_cart/clear_cart/complete_cart replace or remove it.
            return None
        return dto.Cart(
            account_id=account_id,
            tariff_id=tariff.id,
            tariff_name=tariff.name,
            product_type=tariff.product_type,
            months=int(stored["months"]),
            price_minor=price,
            created_at=datetime.fromisoformat(str(stored["created_at"])),
        )

    async def save_cart(self, account_id: int, tariff_id: int, months: int) -> dto.Cart:
        client = await self._client_of(account_id)
        await self._priced(client, tariff_id, months)
        value = {
            "tariff_id": tariff_id,
            "months": months,
            "created_at": self.now().replace(microsecond=0).isoformat(),
        }
        await self.local.put_adapter_state(CART_KIND, str(account_id), value)
        cart = await self.get_cart(account_id)
        if cart is None:
            raise NotFound("cart")
        return cart

    async def clear_cart(self, account_id: int) -> None:
        await self.local.delete_adapter_state(CART_KIND, str(account_id))

    async def complete_cart(self, account_id: int) -> dto.Order:
        cart = await self.get_cart(account_id)
        if cart is None:
            raise NotFound("cart")
        key = f"cart:{account_id}:{cart.created_at.isoformat()}"
        order = await self.place_order(account_id, cart.tariff_id, cart.months, idempotency_key=key)
        await self.clear_cart(account_id)
        return order
