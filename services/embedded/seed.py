"""The demo catalogue seeded on first start (idempotent: keyed by tariff code)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.embedded.models import Tariff, TariffPrice

PERIOD_DISCOUNTS = {1: Decimal("1"), 3: Decimal("0.97"), 6: Decimal("0.95"), 12: Decimal("0.90")}

DEMO_TARIFFS = [
    # code, product type, name, specs, monthly price (base currency minor units)
    (
        "ds-start",
        "dedicated",
        "DS Start",
        "Xeon E-2236 6c/12t · 32 GB RAM · 2×480 GB SSD · 1 Gbps",
        7900,
    ),
    (
        "ds-pro",
        "dedicated",
        "DS Pro",
        "Xeon E-2288G 8c/16t · 64 GB RAM · 2×960 GB NVMe · 1 Gbps",
        12900,
    ),
    (
        "ds-max",
        "dedicated",
        "DS Max",
        "2× Xeon Silver 4214 24c/48t · 128 GB RAM · 4×1.92 TB NVMe",
        19900,
    ),
    ("vps-1", "vps", "VPS 1", "1 vCPU · 1 GB RAM · 20 GB NVMe · 100 Mbps", 490),
    ("vps-2", "vps", "VPS 2", "2 vCPU · 2 GB RAM · 40 GB NVMe · 200 Mbps", 990),
    ("vps-4", "vps", "VPS 4", "4 vCPU · 8 GB RAM · 120 GB NVMe · 500 Mbps", 1990),
]


def period_price(monthly_minor: int, months: int) -> int:
    total = Decimal(monthly_minor * months) * PERIOD_DISCOUNTS[months]
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def seed_demo_catalogue(session: AsyncSession) -> int:
    """Insert the demo tariffs that are missing; return how many were added."""
    existing = set((await session.scalars(select(Tariff.code))).all())
    added = 0
    for sort, (code, product_type, name, specs, monthly) in enumerate(DEMO_TARIFFS):
        if code in existing:
            continue
        tariff = Tariff(code=code, product_type=product_type, name=name, specs=specs, sort=sort)
        tariff.prices = [
            TariffPrice(months=m, price_minor=period_price(monthly, m)) for m in PERIOD_DISCOUNTS
        ]
        session.add(tariff)
        added += 1
    await session.flush()
    return added
