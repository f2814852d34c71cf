"""CPU per update of the full stack against a bare aiogram bot, in-process (issue 14 item 3).

    python -m bench.dispatch [--updates 2000] [--databases sqlite,postgresql] [--orders 1000]

Both bots are fed the same updates one after another (`Dispatcher.feed_update`) over the
in-memory Telegram stand-in (`RecordingSession` over `FakeTelegram`, no latency): what is
measured is the process's CPU time (`time.process_time`, every thread: aiosqlite's worker
thread included) per update, not the network. The bare bot is `bench.bare_bot`'s dispatcher
(the yardstick `bench.roundtrip` uses): `/menu` answered with a one-button keyboard and the
"Orders" button with an edit and an answer, no database, no middlewares.

Steps, after a warm-up (accounts exist, statements compiled, pools filled):
- `/menu` from 100 returning customers, in turn;
- the "📦 Orders" button pressed under a `/menu` by a customer with `--orders` orders (the
  first page of the list: 5 orders, their total, the paging buttons), against the bare bot's
  handler for the same button.

Targets (issue 14): CPU per `/menu` ≤ 3× the bare bot's; the Orders page of a 1,000-order
account ≤ 2× the full stack's `/menu`; on SQLite and PostgreSQL. Peak traced memory over a
second, untimed, pass of `/menu` is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.bare_bot import create_dispatcher as create_bare_dispatcher
from bot.factory import create_bot, create_dispatcher, create_gateway
from keyboards.callbacks import MenuCb
from services.embedded import models as m
from services.embedded.db import _upgrade
from tests.conftest import make_settings
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram, User

POSTGRES_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CUSTOMERS = 100
MENU_TARGET = 3.0  # CPU per /menu ≤ 3× the bare bot's
ORDERS_TARGET = 2.0  # the Orders page of a 1,000-order account ≤ 2× the full /menu


@dataclass
class Bots:
    """One dispatcher with its bot and stand-in."""

    dp: Dispatcher
    bot: Bot
    fake: FakeTelegram

    async def feed(self, updates: list[dict[str, Any]]) -> float:
        """CPU seconds per update for feeding `updates` one after another."""
        parsed = [Update.model_validate(u, context={"bot": self.bot}) for u in updates]
        gc.collect()
        start = time.process_time()
        for update in parsed:
            await self.dp.feed_update(self.bot, update)
        return (time.process_time() - start) / len(parsed)

    def menus(self, people: list[User], count: int) -> list[dict[str, Any]]:
        return [self.fake.user_message(people[i % len(people)], "/menu") for i in range(count)]

    async def presses(self, person: User, data: str, count: int) -> list[dict[str, Any]]:
        """`count` presses of `data`, each under a `/menu` of its own (an edit of a message
        that shows the same text already is not what a customer does)."""
        await self.feed(self.menus([person], count))
        sent = self.fake.sent(person.id)[-count:]
        return [self.fake.press(person, call, data) for call in sent]


def _people(first_id: int, count: int) -> list[User]:
    return [User(id=first_id + i, language_code="ru" if i % 2 else "en") for i in range(count)]


async def _add_orders(url: str, telegram_id: int, count: int) -> None:
    """`count` active orders for the account of `telegram_id` (it exists: it sent /menu)."""
    engine = create_async_engine(url)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        account_id = await conn.scalar(
            select(m.Account.id).where(m.Account.telegram_id == telegram_id)
        )
        tariff_ids = list((await conn.scalars(select(m.Tariff.id))).all())
        rows = [
            {
                "account_id": account_id,
                "tariff_id": tariff_ids[i % len(tariff_ids)],
                "status": "active",
                "ip_address": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                "period_months": 1,
                "price_minor": 490 + i,
                "created_at": now - timedelta(hours=i),
                "paid_until": now + timedelta(days=1 + i % 300),
            }
            for i in range(count)
        ]
        await conn.execute(insert(m.Order), rows)
    await engine.dispose()


async def _measure(url: str, updates: int, orders: int) -> dict[str, float]:
    await asyncio.to_thread(_upgrade, url, "head")
    # Far beyond a person's pace: the per-user throttle (tests/test_throttle.py) opened wide.
    settings = make_settings(url, throttle_rate=1e9, throttle_burst=10**9)

    bare_fake = FakeTelegram()
    bare = Bots(
        create_bare_dispatcher(), create_bot(settings, RecordingSession(bare_fake)), bare_fake
    )
    gateway = create_gateway(settings)
    await gateway.seed_demo()
    fake = FakeTelegram()
    full = Bots(
        create_dispatcher(settings, gateway), create_bot(settings, RecordingSession(fake)), fake
    )

    customers = _people(10_000, CUSTOMERS)
    heavy = User(id=99_999, language_code="en")
    await full.feed(full.menus([*customers, heavy], 2 * CUSTOMERS))  # warm-up: accounts exist
    await bare.feed(bare.menus(customers, 2 * CUSTOMERS))
    await _add_orders(url, heavy.id, orders)

    result = {
        "bare_menu": await bare.feed(bare.menus(customers, updates)),
        "full_menu": await full.feed(full.menus(customers, updates)),
    }
    presses = max(50, updates // 10)
    result["bare_orders"] = await bare.feed(await bare.presses(heavy, "orders", presses))
    orders_data = MenuCb(section="orders").pack()
    result["full_orders"] = await full.feed(await full.presses(heavy, orders_data, presses))
    page = fake.calls_of("editMessageText")[-1].text or ""
    assert f"{orders}" in page, f"not the order list of {orders} orders: {page!r}"

    tracemalloc.start()  # memory in a pass of its own: tracemalloc slows Python down
    await full.feed(full.menus(customers, updates))
    result["peak_mib"] = tracemalloc.get_traced_memory()[1] / 1024 / 1024
    tracemalloc.stop()
    await gateway.close()
    return result


@contextmanager
def _sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"


async def _with_postgres(run: Callable[[str], Awaitable[dict[str, float]]]) -> dict[str, float]:
    """A scratch PostgreSQL database for the run, dropped after."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return await run(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _report(database: str, updates: int, orders: int, r: dict[str, float]) -> list[str]:
    menu_ratio = r["full_menu"] / r["bare_menu"]
    orders_ratio = r["full_orders"] / r["full_menu"]
    print(
        f"{database:<11}{'/menu':<22}{r['bare_menu'] * 1e3:>9.3f}{r['full_menu'] * 1e3:>9.3f}"
        f"{menu_ratio:>9.2f}x  (full/bare)"
    )
    print(
        f"{'':<11}{f'Orders, {orders} orders':<22}{r['bare_orders'] * 1e3:>9.3f}"
        f"{r['full_orders'] * 1e3:>9.3f}{orders_ratio:>9.2f}x  (full Orders/full /menu)"
    )
    print(f"{'':<11}peak traced memory over {updates} /menu: {r['peak_mib']:.1f} MiB")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"  {database} /menu CPU {menu_ratio:.2f}x bare (≤ {MENU_TARGET}): "
        + verdict(menu_ratio <= MENU_TARGET),
        f"  {database} Orders page of {orders} orders {orders_ratio:.2f}x /menu "
        f"(≤ {ORDERS_TARGET}): " + verdict(orders_ratio <= ORDERS_TARGET),
    ]


async def run(updates: int, databases: list[str], orders: int) -> None:
    print(
        f"dispatch: CPU ms per update, in-process, {updates} /menu from {CUSTOMERS} customers; "
        f"Orders pressed {max(50, updates // 10)} times by a customer with {orders} orders"
    )
    print(f"{'database':<11}{'step':<22}{'bare':>9}{'full':>9}{'ratio':>10}")
    verdicts: list[str] = []
    for database in databases:
        if database == "sqlite":
            with _sqlite_url() as url:
                figures = await _measure(url, updates, orders)
        else:
            figures = await _with_postgres(lambda url: _measure(url, updates, orders))
        verdicts += _report(database, updates, orders, figures)
    print("targets:")
    print("\n".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--orders", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.updates, args.databases.split(","), args.orders))


if __name__ == "__main__":
    main()
