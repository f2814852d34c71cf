"""RSS growth per 1,000 active users with the default storage (issue 14 item 4).

The production dispatcher (SQLite, no Redis: dialogs in `ExpiringMemoryStorage`) and, in the
same run, a bare aiogram dispatcher with aiogram's `MemoryStorage` answer waves of new users;
each user sends `/start`, then `/orders vps`, a search whose query and page the Orders list
keeps in the FSM storage (as every dialog keeps its state and data there). After a warm-up
wave, the first measured wave comes while the warm-up's dialogs are still alive: its growth is
what 1,000 more active users cost. Then the storage's clock is moved past `FSM_TTL_SECONDS`
before each further wave, as if each came a TTL after the one before: the cabinet's dialogs
expire and its RSS stays flat; the bare bot keeps every dialog. The Telegram stand-in is
replaced every wave so that what it records is not counted.

    .venv/bin/python -m bench.memory [--users 1000] [--waves 6]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aiogram import Bot, Dispatcher
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Message, Update

from bench.dispatch import _upgrade
from bot.factory import create_bot, create_dispatcher, create_gateway
from bot.fsm_storage import ExpiringMemoryStorage
from tests.conftest import make_settings
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram, User


def rss_mib() -> float:
    """Resident memory after a full collection, with freed heap handed back to the system."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def bare_orders(message: Message, state: FSMContext) -> None:
    await state.update_data(query=(message.text or "").partition(" ")[2], page=1)
    await message.answer("No orders match")


async def bare_start(message: Message) -> None:
    await message.answer("Hello")


def create_bare_dispatcher() -> Dispatcher:
    dp = Dispatcher(storage=MemoryStorage())
    dp.message.register(bare_start, Command("start"))
    dp.message.register(bare_orders, Command("orders"))
    return dp


async def wave(dp: Dispatcher, bot: Bot, first_id: int, users: int) -> None:
    fake = FakeTelegram()
    session = bot.session
    assert isinstance(session, RecordingSession)
    session.fake = fake  # the last wave's stand-in (and all it recorded) goes
    for i in range(users):
        user = User(id=first_id + i, language_code="ru" if i % 2 else "en")
        for text in ("/start", "/orders vps"):
            update = Update.model_validate(fake.user_message(user, text), context={"bot": bot})
            await dp.feed_update(bot, update)


async def measure(
    dp: Dispatcher, bot: Bot, users: int, waves: int, expire: Callable[[], None]
) -> list[float]:
    """RSS growth (MiB) of each measured wave: the first with the warm-up's dialogs alive,
    the others each after the dialogs before it expired."""
    await wave(dp, bot, 1_000_000, users)  # warm-up: caches, pools, first allocations
    growth = []
    for number in range(waves):
        if number:
            expire()
        before = rss_mib()
        await wave(dp, bot, 2_000_000 + number * users, users)
        growth.append(rss_mib() - before)
    return growth


async def run(users: int, waves: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'memory.sqlite3'}"
        await asyncio.to_thread(_upgrade, url, "head")
        settings = make_settings(url, throttle_rate=1e9, throttle_burst=10**9)
        gateway = create_gateway(settings)
        await gateway.seed_demo()
        dp = create_dispatcher(settings, gateway)
        storage = dp.storage
        assert isinstance(storage, ExpiringMemoryStorage), "the default storage"
        skew = [0.0]
        storage.clock = lambda: time.monotonic() + skew[0]

        def expire() -> None:
            skew[0] += settings.fsm_ttl_seconds + 1

        bot = create_bot(settings, RecordingSession(FakeTelegram()))
        cabinet = await measure(dp, bot, users, waves, expire)
        cabinet_records = len(storage.records)
        await gateway.close()

    bare_dp = create_bare_dispatcher()
    bare_bot = create_bot(settings, RecordingSession(FakeTelegram()))
    bare = await measure(bare_dp, bare_bot, users, waves, lambda: None)
    bare_storage = bare_dp.storage
    assert isinstance(bare_storage, MemoryStorage)
    bare_records = len(bare_storage.storage)
    report(users, cabinet, bare, cabinet_records, bare_records)


def report(
    users: int, cabinet: list[float], bare: list[float], cabinet_records: int, bare_records: int
) -> None:
    print(
        f"memory: RSS growth (MiB) per wave of {users} new users (/start, then /orders vps: "
        f"FSM data), after a warm-up wave; the cabinet's dialogs expire before waves 2+"
    )
    header = "".join(f"{f'wave {n + 1}':>9}" for n in range(len(cabinet)))
    print(f"{'bot':<10}{header}  later/wave   dialogs kept")
    for name, growth, records in (
        ("cabinet", cabinet, cabinet_records),
        ("bare", bare, bare_records),
    ):
        row = "".join(f"{value:>9.2f}" for value in growth)
        print(f"{name:<10}{row}{_later_per_wave(growth):>12.2f}{records:>15}")
    later, bare_later = _later_per_wave(cabinet), _later_per_wave(bare)
    ratio = later / bare_later if bare_later > 0 else float("nan")
    print(
        f"report: {cabinet[0]:.2f} MiB per {users} active users (bare aiogram with "
        f"MemoryStorage: {bare[0]:.2f}); once their dialogs expire, {later:.2f} MiB per further "
        f"wave (bare, which keeps every dialog: {bare_later:.2f})"
    )
    print(
        f"  after expiry the cabinet's later waves grow {ratio:.2f} x what the bare bot's do "
        "(not the dialogs: the storage holds only the last wave's)"
    )
    print("targets:")
    print(
        f"  dialogs kept after {len(cabinet) + 1} waves: {cabinet_records} (only the last wave's, "
        f"{users}; bare: {bare_records}): " + ("met" if cabinet_records <= users else "NOT met")
    )


def _later_per_wave(growth: list[float]) -> float:
    """Mean growth of the waves after the first (those that follow an expiry)."""
    later = growth[1:]
    return sum(later) / len(later) if later else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--waves", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(run(args.users, args.waves))


if __name__ == "__main__":
    main()
