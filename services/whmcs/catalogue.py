"""The tariff catalogue over WHMCS (GetProducts).

- A product type is the product's WHMCS `type` (getproducts.md: hostingaccount,
  reselleraccount, server, other). GetProducts gives a product's group only as `gid`, without
  its name (and the API reference has no action that lists product groups), and a type is
  short and stable enough to travel in a button's callback data.
- A tariff is a product (tariff id = WHMCS pid) with its prices in the currency asked for, one
  per enabled billing cycle (monthly=1 … triennially=36 months; WHMCS's "-1.00" = the cycle is
  off, left out by models._prices). The setup fee of a cycle is added to its price: that is
  what the first invoice of a new order charges.
- Only `paytype` "recurring" products are tariffs: a "onetime" product has no period to renew
  and a "free" one nothing to pay, and the bot's tariff is a price per period. Services of such
  products still show in the orders list (with period 0, not renewable).
- The catalogue is cached for CATALOGUE_CACHE_SECONDS: the New-order screens read it on
  every press.
"""

from __future__ import annotations

import time

from services.contracts.common import Tariff, TariffPrice
from services.errors import NotFound
from services.whmcs.base import WhmcsBase
from services.whmcs.models import BILLING_CYCLES, Product

CATALOGUE_CACHE_SECONDS = 60.0
CYCLE_MONTHS = dict(zip(BILLING_CYCLES, (1, 3, 6, 12, 24, 36), strict=True))
MONTHS_CYCLE = {months: cycle for cycle, months in CYCLE_MONTHS.items()}
RECURRING = "recurring"
OTHER_TYPE = "other"


def tariff_of(product: Product, currency: str, *, with_setup_fee: bool = True) -> Tariff | None:
    """The product as a tariff priced in `currency`; None when it is no tariff there."""
    if product.paytype != RECURRING:
        return None
    prices = []
    for cycle in BILLING_CYCLES:
        price = product.price(currency, cycle)
        if price is None:
            continue
        fee = price.setup_fee_minor if with_setup_fee else 0
        prices.append(TariffPrice(CYCLE_MONTHS[cycle], price.price_minor + max(0, fee)))
    if not prices:
        return None
    return Tariff(
        id=product.pid,
        code=str(product.pid),
        product_type=product.type or OTHER_TYPE,
        name=product.name,
        specs=product.description,
        prices=prices,
    )


class CatalogueCache(WhmcsBase):
    """The cached products and their tariffs, for the catalogue and the orders alike (the
    orders mixins inherit this, not WhmcsCatalogueMixin, so core.py may list both)."""

    _catalogue: tuple[float, list[Product]] | None = None

    async def _products(self) -> list[Product]:
        """Every product (GetProducts documents no paging: one answer), kept for a minute."""
        cached = self._catalogue
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        products = await self.client.get_products()
        self._catalogue = (time.monotonic() + CATALOGUE_CACHE_SECONDS, products)
        return products

    async def _product(self, pid: int) -> Product | None:
        return next((p for p in await self._products() if p.pid == pid), None)

    async def _tariffs_in(self, currency: str) -> list[Tariff]:
        tariffs = (tariff_of(product, currency) for product in await self._products())
        return [tariff for tariff in tariffs if tariff is not None]

    async def _tariff_in(self, tariff_id: int, currency: str) -> Tariff:
        """The tariff priced in the client's currency; NotFound when it is not offered."""
        product = await self._product(tariff_id)
        tariff = None if product is None else tariff_of(product, currency)
        if tariff is None:
            raise NotFound("tariff")
        return tariff

    async def _product_type_of(self, pid: int) -> str:
        product = await self._product(pid)
        return (product.type if product is not None else "") or OTHER_TYPE


class WhmcsCatalogueMixin(CatalogueCache):
    async def list_product_types(self) -> list[str]:
        types = [tariff.product_type for tariff in await self._tariffs_in(self.base_currency)]
        return list(dict.fromkeys(types))  # first seen first, as WHMCS orders its products

    async def list_tariffs(self, product_type: str | None = None) -> list[Tariff]:
        tariffs = await self._tariffs_in(self.base_currency)
        return [t for t in tariffs if product_type is None or t.product_type == product_type]

    async def get_tariff(self, tariff_id: int) -> Tariff:
        return await self._tariff_in(tariff_id, self.base_currency)
