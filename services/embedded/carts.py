"""The cart of the embedded billing: an order the user chose but could not pay yet."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from services.contracts import orders as dto
from services.embedded import models as m
from services.embedded.orders import OrdersMixin
from services.errors import NotFound


class CartsMixin(OrdersMixin):  # a cart completes into an order
    async def _cart_row(self, account_id: int, *, lock: bool = False) -> m.Cart | None:
        query = select(m.Cart).where(m.Cart.account_id == account_id)
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query.execution_options(populate_existing=True))

    async def get_cart(self, account_id: int) -> dto.Cart | None:
        row = await self._cart_row(account_id)
        if row is None:
            return None
        tariff = await self.session.get(m.Tariff, row.tariff_id)
        price = (
            next((p.price_minor for p in tariff.prices if p.months == row.months), None)
            if tariff is not None and tariff.active
            else None
        )
        if tariff is None or price is None:  # the tariff or period is no longer offered
            await self.clear_cart(account_id)
            return None
        return dto.Cart(
            account_id=account_id,
            tariff_id=tariff.id,
            tariff_name=tariff.name,
            product_type=tariff.product_type,
            months=row.months,
            price_minor=price,
            created_at=row.created_at,
        )

    async def save_cart(self, account_id: int, tariff_id: int, months: int) -> dto.Cart:
        tariff = await self._tariff_row(tariff_id)
        self._price(tariff, months)
        await self._account_row(account_id)
        row = await self._cart_row(account_id, lock=True)
        now = self.now()
        if row is None:
            try:
                async with self.session.begin_nested():
                    self.session.add(
                        m.Cart(
                            account_id=account_id,
                            tariff_id=tariff_id,
                            months=months,
                            created_at=now,
                        )
                    )
                    await self.session.flush()
            except IntegrityError:  # saved concurrently: overwrite it
                row = await self._cart_row(account_id, lock=True)
        if row is not None:
            row.tariff_id, row.months, row.created_at = tariff_id, months, now
            await self.session.flush()
        cart = await self.get_cart(account_id)
        assert cart is not None
        return cart

    async def clear_cart(self, account_id: int) -> None:
        await self.session.execute(delete(m.Cart).where(m.Cart.account_id == account_id))

    async def complete_cart(self, account_id: int) -> dto.Order:
        row = await self._cart_row(account_id, lock=True)
        if row is None:
            raise NotFound("cart")
        cart = await self.get_cart(account_id)
        if cart is None:
            raise NotFound("cart")
        key = f"cart:{account_id}:{cart.created_at.isoformat()}"
        order = await self.place_order(account_id, cart.tariff_id, cart.months, idempotency_key=key)
        await self.clear_cart(account_id)
        return order
