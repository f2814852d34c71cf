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
- Currency: GetProducts prices a product per currency code. The catalogue a customer sees is
  priced in their linked client's WHMCS currency (GetClientsDetails `currency_code`), the one
  their orders, upgrades and renewals are invoiced and paid from credit in; without an account
  (or unlinked) in the base currency, DEFAULT_CURRENCY, which must be WHMCS's default currency
  (checked at start: `check_default_currency`, GetCurrencies).
- The catalogue is cached for CATALOGUE_CACHE_SECONDS: the New-order screens read it on
  every press.
"""

from __future__ import annotations

import logging
import time

from services.contracts.common import Tariff, TariffPrice
from services.errors import NotFound
from services.whmcs.base import WhmcsBase
from services.whmcs.client import WhmcsClient
from services.whmcs.errors import WhmcsFailure
from services.whmcs.models import BILLING_CYCLES, Product

log = logging.getLogger(__name__)

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


async def check_default_currency(client: WhmcsClient, currency: str) -> str | None:
    """At start: DEFAULT_CURRENCY, the currency of unlinked accounts' catalogue and of the
    bot's rates, must be WHMCS's default currency. GetCurrencies names no default; its `rate`
    is from the default currency, so the default one's is 1. Logs a warning and returns it
    when the check fails or cannot be made; None when the currency is fine."""
    wanted = currency.upper()
    try:
        currencies = await client.get_currencies()
    except WhmcsFailure as exc:
        problem = f"DEFAULT_CURRENCY={wanted} could not be checked against WHMCS ({exc})"
    else:
        found = next((c for c in currencies if c.code == wanted), None)
        codes = ", ".join(c.code for c in currencies) or "none"
        if found is None:
            problem = (
                f"DEFAULT_CURRENCY={wanted} is not a currency of WHMCS (it has: {codes}): "
                "set DEFAULT_CURRENCY to WHMCS's default currency, or unlinked customers see "
                "no prices in the catalogue"
            )
        elif found.rate != 1:
            problem = (
                f"DEFAULT_CURRENCY={wanted} does not look like WHMCS's default currency (its "
                f"rate in WHMCS is {found.rate}, the default currency's is 1; WHMCS has: "
                f"{codes}): set DEFAULT_CURRENCY to WHMCS's default currency"
            )
        else:
            return None
    log.warning("%s", problem)
    return problem


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
    async def _catalogue_currency(self, account_id: int | None) -> str:
        """The currency the catalogue is shown in: the linked client's WHMCS currency (what
        its orders are invoiced and paid in), else the base currency (WHMCS's default)."""
        if account_id is None:
            return self.base_currency
        client_id = await self.local.billing_client_id(account_id)
        if client_id is None:
            return self.base_currency
        return (await self._client_details(client_id)).currency_code

    async def list_product_types(self, *, account_id: int | None = None) -> list[str]:
        currency = await self._catalogue_currency(account_id)
        types = [tariff.product_type for tariff in await self._tariffs_in(currency)]
        return list(dict.fromkeys(types))  # first seen first, as WHMCS orders its products

    async def list_tariffs(
        self, product_type: str | None = None, *, account_id: int | None = None
    ) -> list[Tariff]:
        tariffs = await self._tariffs_in(await self._catalogue_currency(account_id))
        return [t for t in tariffs if product_type is None or t.product_type == product_type]

    async def get_tariff(self, tariff_id: int, *, account_id: int | None = None) -> Tariff:
        return await self._tariff_in(tariff_id, await self._catalogue_currency(account_id))
