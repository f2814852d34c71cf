"""The web side in the real process (issue 17, item 1), polling and webhook: with PUBLIC_URL
set the bot sets its menu button to the Mini App at start, serves /app and the Mini App's
data beside /healthz on WEB_HOST:WEB_PORT, and its main menu opens the cabinet."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import LiveBot, _env, _start, _stop
from tests.harness.server import TelegramServer, free_port
from tests.harness.web import init_data

PUBLIC_URL = "https://cabinet.example.com"
SECRET = "web-Secret_17"


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_the_web_side_in_the_running_bot(
    mode: str, tmp_path: Path, telegram_server: TelegramServer
) -> None:
    fake = telegram_server.fake
    port = free_port()
    extra = {"PUBLIC_URL": PUBLIC_URL, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}
    if mode == "webhook":
        extra |= {"WEBHOOK_URL": f"http://127.0.0.1:{port}", "WEBHOOK_SECRET": SECRET}
    env = _env(tmp_path, telegram_server, **extra)
    process, log = await _start(
        tmp_path, env, fake, "setWebhook" if mode == "webhook" else "getUpdates"
    )
    bot = LiveBot(fake, process, log, webhook_secret=SECRET)
    try:
        (menu_button,) = fake.calls_of("setChatMenuButton")
        assert menu_button["menu_button"] == {
            "type": "web_app",
            "text": "Cabinet",
            "web_app": {"url": f"{PUBLIC_URL}/app"},
        }
        user = bot.user(1701)
        start = await bot.send(user, "/start")
        menu = await bot.reply(
            lambda c: c.method == "sendMessage" and "Choose a section" in (c.text or ""), start
        )
        assert {"text": "🖥 Open cabinet", "web_app": {"url": f"{PUBLIC_URL}/app"}} in [
            b for row in menu.buttons() for b in row
        ]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/app") as response:
                assert response.status == 200
                assert (
                    "frame-ancestors https://web.telegram.org"
                    in (response.headers["Content-Security-Policy"])
                )
            headers = {"X-Telegram-Init-Data": init_data(1701, time.time())}
            async with http.get(f"{base}/app/api/cabinet", headers=headers) as response:
                assert response.status == 200
                assert "<p>Login: tg1701</p>" in await response.text()
            async with http.get(f"{base}/app/api/cabinet") as response:
                assert response.status == 401
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
    finally:
        await _stop(process, log)
