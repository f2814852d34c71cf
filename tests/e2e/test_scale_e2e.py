"""The scale setup on real processes: two webhook instances share PostgreSQL and Redis; a user's
updates may reach either; both run the scheduler, and an alert is still delivered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.embedded import models as m
from tests.conftest import make_settings
from tests.e2e.conftest import _env, _start, _stop
from tests.harness.server import TelegramServer, free_port
from tests.harness.telegram import Call, Chat, User

SECRET = "scale-Secret_42"


@pytest.fixture
async def two_instances(
    tmp_path: Path, telegram_server: TelegramServer, postgres_url: str
) -> AsyncIterator[list[int]]:
    ports, started = [], []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        env = _env(
            folder,
            telegram_server,
            DATABASE_URL=postgres_url,
            REDIS_URL="redis://127.0.0.1:6379/0",
            WEBHOOK_URL=f"http://127.0.0.1:{port}",
            WEBHOOK_SECRET=SECRET,
            WEB_HOST="127.0.0.1",
            WEB_PORT=str(port),
            ALERT_INTERVAL_SECONDS="1",
            SENDER_INTERVAL_SECONDS="0.3",
            QUIET_HOURS="",
        )
        started.append(await _start(folder, env, telegram_server.fake, "setWebhook"))
        ports.append(port)
    yield ports
    for process, log in started:
        await _stop(process, log)


async def _deliver(port: int, update: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def test_two_instances_share_state_and_alert_once(
    two_instances: list[int], telegram_server: TelegramServer, postgres_url: str
) -> None:
    fake = telegram_server.fake
    port_a, port_b = two_instances
    user = User(id=731, language_code="en", first_name="Alice")
    fake.add_chat(Chat(id=731, first_name="Alice"))

    start = len(fake.calls)
    await _deliver(port_a, fake.user_message(user, "/start"))
    menu = await fake.wait_for(
        lambda c: c.method == "sendMessage" and "Personal cabinet" in (c.text or ""), start=start
    )
    start = len(fake.calls)
    await _deliver(port_b, fake.press(user, menu, menu.callback_data("Help")))  # the other one
    edited = await fake.wait_for(lambda c: c.method == "editMessageText", start=start)
    assert edited.text.startswith("❓ <b>Help</b>")

    from bot.factory import create_gateway

    gateway = create_gateway(make_settings(postgres_url))
    async with gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(731)
        assert account is not None
        row = await billing.session.get(m.Account, account.id)
        assert row is not None
        row.low_balance_threshold_minor = 1000  # €10.00, the balance is €0.00
    await gateway.close()

    def is_alert(call: Call) -> bool:
        return (
            call.method == "sendMessage"
            and call.get("chat_id") == 731
            and ("Low balance" in (call.text or ""))
        )

    await fake.wait_for(is_alert, timeout=30)
    await asyncio.sleep(4)  # several more ticks of both schedulers and senders
    assert len([c for c in fake.calls if c.error is None and is_alert(c)]) == 1
