"""The real process: /orders → an order's details → renew, paid from the balance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from babel.dates import format_date

from services.embedded.billing import EmbeddedGateway
from services.embedded.config import BillingConfig
from services.embedded.db import create_engine
from services.embedded.orders import add_months
from tests.e2e.conftest import LiveBot, _env, _start, _stop
from tests.harness.server import TelegramServer

VPS_2 = 5


@pytest.fixture
async def live_bot(tmp_path: Path, telegram_server: TelegramServer) -> AsyncIterator[LiveBot]:
    """The bot in long-polling mode without the scheduler: this test drives the orders path
    alone, and the test itself writes to the bot's SQLite file."""
    fake = telegram_server.fake
    env = _env(tmp_path, telegram_server, SCHEDULER_ENABLED="false")
    process, log = await _start(tmp_path, env, fake, "getUpdates")
    yield LiveBot(fake, process, log)
    await _stop(process, log)


async def test_orders_details_and_renew(live_bot: LiveBot, tmp_path: Path) -> None:
    user = live_bot.user(731)
    start = await live_bot.send(user, "/start")
    await live_bot.reply(
        lambda c: c.method == "sendMessage" and "Personal cabinet" in c.text, start
    )

    # The bot's own database (SQLite file): a balance and an order for this user.
    gateway = EmbeddedGateway(
        create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"), BillingConfig()
    )
    try:
        async with gateway.transaction() as billing:
            account = await billing.find_account_by_telegram(731)
            assert account is not None
            await billing.credit(account.id, 5000, kind="topup")
            order = await billing.place_order(account.id, VPS_2, 1)

        start = await live_bot.send(user, "/orders")
        listing = await live_bot.reply(
            lambda c: c.method == "sendMessage" and "Your orders" in (c.text or ""), start
        )
        assert listing.button_texts()[0] == f"#{order.id} · VPS 2"
        start = await live_bot.press(user, listing, f"#{order.id}")
        details = await live_bot.reply(lambda c: c.method == "editMessageText", start)
        assert details.text.startswith(f"📦 <b>Order #{order.id}</b>\nTariff: VPS 2")
        start = await live_bot.press(user, details, "Renew")
        periods = await live_bot.reply(lambda c: c.method == "editMessageText", start)
        start = await live_bot.press(user, periods, "1 month")
        confirm = await live_bot.reply(lambda c: c.method == "editMessageText", start)
        assert confirm.button_texts() == ["✅ Pay €9.90", "⬅️ Back"]
        start = await live_bot.press(user, confirm, "Pay")
        new_until = add_months(order.paid_until, 1)
        answer = await live_bot.reply(
            lambda c: c.method == "answerCallbackQuery" and c.get("text"), start
        )
        assert answer["text"] == (
            f"Renewed: paid until {format_date(new_until, format='medium', locale='en')}."
        )
        async with gateway.transaction() as billing:
            renewed = await billing.get_order(account.id, order.id)
            assert (await billing.get_account(account.id)).balance_minor == 5000 - 990 - 990
        assert renewed.paid_until == new_until
    finally:
        await gateway.close()
