"""Update throughput of the full stack (transaction, account, i18n, router, render) against a
bare aiogram Dispatcher answering the same message, both over the in-memory Telegram stand-in.

    python -m bench.dispatch [--updates N] [--database URL]

Prints updates/s for both, the ratio, and the peak memory growth while handling them.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from pathlib import Path

from aiogram import Dispatcher
from aiogram.filters import Command
from aiogram.types import Message, Update

from bot.factory import create_bot, create_dispatcher, create_gateway
from services.embedded.db import _upgrade
from tests.conftest import make_settings
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram, User


async def _feed(dp: Dispatcher, bot, fake: FakeTelegram, users: int, updates: int) -> float:  # type: ignore[no-untyped-def]
    people = [User(id=10_000 + i, language_code="ru" if i % 2 else "en") for i in range(users)]
    batch = [fake.user_message(people[i % users], "/menu") for i in range(updates)]
    parsed = [Update.model_validate(u, context={"bot": bot}) for u in batch]
    start = time.perf_counter()
    for update in parsed:
        await dp.feed_update(bot, update)
    return time.perf_counter() - start


async def run(updates: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        await asyncio.to_thread(_upgrade, url, "head")
        # 20 updates per user in a tight loop: far beyond a person's pace, so the per-user
        # throttle (tested in tests/test_throttle.py) is opened wide to measure the handling.
        settings = make_settings(url, throttle_rate=1e9, throttle_burst=10**9)

        bare_fake = FakeTelegram()
        bare_bot = create_bot(settings, session=RecordingSession(bare_fake))
        bare = Dispatcher()

        async def menu(message: Message) -> None:
            await message.answer("menu")

        bare.message.register(menu, Command("menu"))
        baseline = await _feed(bare, bare_bot, bare_fake, 100, updates)

        gateway = create_gateway(settings)
        await gateway.seed_demo()
        fake = FakeTelegram()
        bot = create_bot(settings, session=RecordingSession(fake))
        dp = create_dispatcher(settings, gateway)
        await _feed(dp, bot, fake, 100, 100)  # warm up: accounts exist, caches filled
        full = await _feed(dp, bot, fake, 100, updates)
        # Memory in a second pass: tracemalloc slows Python down, so it must not be timed.
        tracemalloc.start()
        await _feed(dp, bot, fake, 100, updates)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await gateway.close()

    print(f"dispatch: {updates} /menu updates from 100 users on {url.split(':')[0]}")
    print(f"  bare aiogram dispatcher : {updates / baseline:10.0f} updates/s")
    print(f"  full cabinet stack      : {updates / full:10.0f} updates/s")
    print(f"  ratio full/bare time    : {full / baseline:10.1f}x")
    print(f"  peak traced memory      : {peak / 1024 / 1024:10.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    asyncio.run(run(args.updates, args.database))


if __name__ == "__main__":
    main()
