"""The real process in webhook mode without WEBHOOK_SECRET (issue 11): it generates a secret,
registers it with setWebhook (with chat_member among the update types), refuses forged posts
with 401 and malformed ones with 400, and never logs the secret or a traceback; in polling mode
getUpdates asks for chat_member too."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp

from tests.e2e.conftest import LiveBot, _env, _start, _stop
from tests.harness.server import TelegramServer, free_port, raw_webhook_post
from tests.harness.telegram import Chat, User

STAFF = -100500
ADMIN = User(id=9001, first_name="Boss")


async def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers={"Content-Type": "application/json", **headers}) as r,
    ):
        return r.status


async def test_webhook_without_a_configured_secret_generates_and_checks_one(
    tmp_path: Path, telegram_server: TelegramServer
) -> None:
    fake = telegram_server.fake
    port = free_port()
    env = _env(
        tmp_path,
        telegram_server,
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
    )
    assert "WEBHOOK_SECRET" not in env
    process, log = await _start(tmp_path, env, fake, "setWebhook")
    try:
        [call] = fake.calls_of("setWebhook")
        secret = call["secret_token"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
        assert {"message", "chat_member", "my_chat_member"} <= set(call["allowed_updates"])
        bot = LiveBot(fake, process, log, webhook_secret=secret)
        url = fake.webhook["url"]
        group = fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff"))

        customer = bot.user(741)
        start = await bot.send(customer, "/start")
        await bot.reply(lambda c: c.method == "sendMessage" and c["chat_id"] == 741, start)

        # Forged: an admin's /credit without the secret, with a wrong one, with a non-ASCII one.
        body = json.dumps(fake.user_message(ADMIN, "/credit 1 100 forged", chat=group)).encode()
        calls = len(fake.calls)
        assert await _post(url, body, {}) == 401
        assert await _post(url, body, {"X-Telegram-Bot-Api-Secret-Token": "guess"}) == 401
        forged = await raw_webhook_post(
            "127.0.0.1", port, "/telegram/webhook", "ключ".encode(), body
        )
        assert forged == 401
        assert await _post(url, b"{not json", {"X-Telegram-Bot-Api-Secret-Token": secret}) == 400
        assert await _post(url, b"[]", {"X-Telegram-Bot-Api-Secret-Token": secret}) == 400
        await asyncio.sleep(0.5)
        assert fake.calls[calls:] == []

        # The real one, with the secret Telegram was given: handled.
        start = await bot.send(ADMIN, "/credit 1 10 Goodwill", chat=group)
        reply = await bot.reply(
            lambda c: c.method == "sendMessage" and c["chat_id"] == STAFF, start
        )
        assert reply.text == "✅ Credited €10.00 to account #1 (tg741). Balance: €10.00."
    finally:
        await _stop(process, log)  # exits cleanly, no traceback in the log
    text = log.read_text()
    assert "a random secret token was generated for this run and registered with setWebhook" in text
    assert secret not in text


async def test_polling_asks_for_chat_member_updates(live_bot: LiveBot) -> None:
    """Telegram sends chat_member only when allowed_updates lists it."""
    [first, *_] = live_bot.fake.calls_of("getUpdates")
    assert {"message", "callback_query", "chat_member", "my_chat_member"} <= set(
        first["allowed_updates"]
    )
