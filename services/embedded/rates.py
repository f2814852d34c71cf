"""Exchange rates of the embedded billing: the stored quotes and the static overrides."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

from sqlalchemy import select

from services.contracts.payments import RateQuote, Rates
from services.embedded import models as m
from services.embedded.base import EmbeddedBase

RATE_QUANTUM = Decimal("0.00000001")  # the scale of the rate columns


class RatesMixin(EmbeddedBase):
    async def get_rates(self) -> Rates:
        base = self.base_currency
        currencies = tuple(dict.fromkeys((base, *self.config.currencies)))
        rates: dict[str, Decimal] = {base: Decimal(1)}
        dates, sources = [], set()
        static = {c: v for c, v in self.config.static_rates.items() if c in currencies}
        for row in await self.session.scalars(select(m.ExchangeRate)):
            if row.currency in currencies and row.currency != base and row.currency not in static:
                rates[row.currency] = Decimal(row.rate)
                dates.append(row.rate_date.date())
                sources.add(row.source)
        for code, value in static.items():
            if code != base and value > 0:
                rates[code] = value
                sources.add("static")
        return Rates(
            base_currency=base,
            rates=rates,
            stars_per_base_unit=self.config.stars_per_base_unit,
            rate_date=min(dates) if dates else None,
            sources=tuple(sorted(sources)),
            currencies=currencies,
        )

    async def store_rates(self, quotes: list[RateQuote]) -> int:
        stored = 0
        for quote in quotes:
            if quote.currency == self.base_currency or quote.rate <= 0:
                continue
            row = await self.session.get(m.ExchangeRate, quote.currency)
            if row is None:
                row = m.ExchangeRate(currency=quote.currency)
                self.session.add(row)
            row.rate = quote.rate.quantize(RATE_QUANTUM)
            row.rate_date = datetime.combine(quote.rate_date, time(), UTC)
            row.source = quote.source[:32]
            row.fetched_at = self.now()
            stored += 1
        await self.session.flush()
        return stored
