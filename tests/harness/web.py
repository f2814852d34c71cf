"""The web side (bot/web) over real HTTP: aiohttp's test server with the production routes,
the production dispatcher behind the same billing (for the chat half of a scenario), the
Telegram stand-in, a clock the test sets, and Telegram's way of signing a Mini App's initData."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from bot.factory import create_bot, create_dispatcher
from bot.web.app import WEB_KEY, WebContext, add_web
from bot.web.routes import INIT_DATA_HEADER
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from tests.conftest import _gateway, make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.telegram import TOKEN, FakeTelegram, User

PUBLIC_URL = "https://cabinet.example.com"
PROVIDER_TOKEN = "284685063:TEST:provider-token"
WEB_SECRET = "s" * 40
PROFILE = {
    "last_name": "Ivanov",
    "first_name": "Ivan",
    "email": "ivan@example.com",
    "city": "Moscow",
    "address": "Tverskaya 1",
}


def sign_init_data(fields: dict[str, str], token: str = TOKEN) -> str:
    """initData as Telegram signs it: HMAC-SHA256 over the sorted `key=value` lines with the
    key HMAC-SHA256("WebAppData", bot token)."""
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest})


def init_fields(user_id: int, auth_date: float, language: str = "en") -> dict[str, str]:
    user = {"id": user_id, "first_name": "Ivan", "language_code": language}
    return {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(user, separators=(",", ":")),
        "auth_date": str(int(auth_date)),
    }


def init_data(user_id: int, auth_date: float, language: str = "en", token: str = TOKEN) -> str:
    return sign_init_data(init_fields(user_id, auth_date, language), token)


@dataclass
class WebSite:
    client: TestClient
    driver: BotDriver
    gateway: EmbeddedGateway
    fake: FakeTelegram
    context: WebContext

    @property
    def now(self) -> float:
        return self.context.clock()

    def url(self, path: str) -> str:
        """`path` on the server's real port of 127.0.0.1 (what a browser opens)."""
        return str(self.client.make_url(path))

    def set_clock(self, now: float) -> None:
        self.context.clock = lambda: now

    def init(self, user_id: int, age: float = 0, language: str = "en") -> str:
        """initData Telegram signed `age` seconds before the web side's clock."""
        return init_data(user_id, self.now - age, language)

    async def customer(
        self, user_id: int, *, language: str = "en", profile: bool = True, **values: Any
    ) -> tuple[User, int]:
        """A customer who started the bot, with the profile paying needs (and `values`)."""
        user = self.driver.user(user_id, language_code=language)
        await self.driver.send(user, "/start")
        async with self.gateway.transaction() as billing:
            account = await billing.find_account_by_telegram(user_id)
            assert account is not None
            changes = {**(PROFILE if profile else {}), **values}
            if changes:
                await billing.session.execute(
                    update(m.Account).where(m.Account.id == account.id).values(**changes)
                )
        return user, account.id

    async def app_get(self, path: str, init: str | None) -> tuple[int, str]:
        headers = {INIT_DATA_HEADER: init} if init is not None else {}
        async with self.client.get(path, headers=headers) as response:
            return response.status, await response.text()

    async def app_post(self, path: str, init: str | None, body: Any) -> tuple[int, str]:
        headers = {INIT_DATA_HEADER: init} if init is not None else {}
        async with self.client.post(path, json=body, headers=headers) as response:
            return response.status, await response.text()


@asynccontextmanager
async def web_site(
    database_url: str, fake: FakeTelegram, **overrides: object
) -> AsyncIterator[WebSite]:
    """The web routes on an application of their own (as polling mode with METRICS_PORT
    serves them); PUBLIC_URL set unless `overrides` unset it."""
    values: dict[str, object] = {
        "public_url": PUBLIC_URL,
        "payment_provider_token": PROVIDER_TOKEN,
        "web_secret": WEB_SECRET,
        "bot_username": "cabinet_test_bot",
    }
    values.update(overrides)
    settings = make_settings(database_url, **values)
    gateway = await _gateway(database_url)
    bot = create_bot(settings, session=RecordingSession(fake))
    dp = create_dispatcher(settings, gateway)
    driver = BotDriver(dp, bot, fake, gateway)
    app = web.Application()
    assert add_web(app, dp, bot)
    context = app[WEB_KEY]
    frozen = float(int(time.time()))  # real time (the chat signs pay links with it), held
    context.clock = lambda: frozen
    client = TestClient(TestServer(app), cookie_jar=DummyCookieJar())  # cookies: by hand
    await client.start_server()
    try:
        yield WebSite(client, driver, gateway, fake, context)
    finally:
        await client.close()
        driver.close()
        await gateway.close()
