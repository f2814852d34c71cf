"""Where the web side is served (issue 17, item 1): on the webhook's aiohttp application, in
polling mode beside /healthz on WEB_HOST:WEB_PORT (or on a site of its own when METRICS_PORT
moves the ops endpoints away); with PUBLIC_URL unset nothing of it exists: no routes, no menu
button, no buttons in the chat. And the settings that configure it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

from bot.config import ConfigError, load_settings
from bot.factory import create_bot, create_dispatcher
from bot.health import OpsState, create_ops_app
from bot.runners import create_webhook_app, start_polling_web
from bot.web.app import set_menu_button
from handlers.web_links import pay_url, signing_key
from keyboards.payments import InvoiceAction, InvoiceCb
from services.embedded.billing import EmbeddedGateway
from services.web_auth import verify_pay_token
from tests.conftest import _gateway, make_settings
from tests.harness.driver import BotDriver
from tests.harness.server import free_port
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram
from tests.harness.web import PUBLIC_URL

WEB_PATHS = ("/app", "/app/static/app.js", "/pay/anything", "/login")


async def bot_for(
    url: str, fake: FakeTelegram, **overrides: object
) -> tuple[Bot, Dispatcher, EmbeddedGateway]:
    settings = make_settings(url, **overrides)
    gateway = await _gateway(url)
    bot = create_bot(settings, session=RecordingSession(fake))
    return bot, create_dispatcher(settings, gateway), gateway


@pytest.fixture
async def gateways() -> AsyncIterator[list[EmbeddedGateway]]:
    opened: list[EmbeddedGateway] = []
    yield opened
    for gateway in opened:
        await gateway.close()


async def statuses(client: TestClient, paths: tuple[str, ...]) -> list[int]:
    found = []
    for path in paths:
        async with client.get(path) as response:
            found.append(response.status)
    return found


@pytest.mark.parametrize("public_url", [PUBLIC_URL, None])
async def test_the_webhook_app_serves_the_web_side_only_with_public_url(
    sqlite_url: str,
    fake_telegram: FakeTelegram,
    gateways: list[EmbeddedGateway],
    public_url: str | None,
) -> None:
    bot, dp, gateway = await bot_for(sqlite_url, fake_telegram, public_url=public_url)
    gateways.append(gateway)
    settings = dp["settings"]
    client = TestClient(TestServer(create_webhook_app(dp, bot, settings, "s" * 32)))
    await client.start_server()
    try:
        expected = [200, 200, 400, 200] if public_url else [404, 404, 404, 404]
        assert await statuses(client, WEB_PATHS) == expected
        async with client.post(settings.webhook_path, json={}) as response:
            assert response.status == 401  # the webhook is as it was
            assert "Content-Security-Policy" not in response.headers
    finally:
        await client.close()


async def test_polling_serves_it_beside_healthz_or_on_its_own_site(
    sqlite_url: str, fake_telegram: FakeTelegram, gateways: list[EmbeddedGateway]
) -> None:
    # Beside /healthz on WEB_HOST:WEB_PORT.
    bot, dp, gateway = await bot_for(sqlite_url, fake_telegram, public_url=PUBLIC_URL)
    gateways.append(gateway)
    ops_app = create_ops_app(OpsState(engine=gateway.read_engine, heads=frozenset()))
    assert await start_polling_web(ops_app, dp, bot, dp["settings"]) is None
    client = TestClient(TestServer(ops_app))
    await client.start_server()
    try:
        assert await statuses(client, (*WEB_PATHS, "/healthz")) == [200, 200, 400, 200, 200]
    finally:
        await client.close()

    # METRICS_PORT moves /healthz away: the web side gets WEB_HOST:WEB_PORT to itself.
    port = free_port()
    bot, dp, gateway = await bot_for(
        sqlite_url,
        fake_telegram,
        public_url=PUBLIC_URL,
        web_host="127.0.0.1",
        web_port=port,
        metrics_port=free_port(),
    )
    gateways.append(gateway)
    ops_app = create_ops_app(OpsState(engine=gateway.read_engine, heads=frozenset()))
    runner = await start_polling_web(ops_app, dp, bot, dp["settings"])
    assert runner is not None
    try:
        async with ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/app") as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 404
    finally:
        await runner.cleanup()
    assert "/app" not in {r.resource.canonical for r in ops_app.router.routes() if r.resource}

    # No PUBLIC_URL: nothing is served, no site is opened.
    bot, dp, gateway = await bot_for(sqlite_url, fake_telegram, metrics_port=free_port())
    gateways.append(gateway)
    ops_app = create_ops_app(OpsState(engine=gateway.read_engine, heads=frozenset()))
    assert await start_polling_web(ops_app, dp, bot, dp["settings"]) is None
    assert {r.resource.canonical for r in ops_app.router.routes() if r.resource} == {
        "/healthz",
        "/readyz",
        "/metrics",
    }


@pytest.mark.parametrize(
    ("public_url", "language", "expected"),
    [
        (PUBLIC_URL, "en", "Cabinet"),
        (PUBLIC_URL + "/", "ru", "Кабинет"),
        ("http://cabinet.example.com", "en", None),  # Telegram opens Mini Apps over https only
        (None, "en", None),
    ],
)
async def test_the_menu_button_is_set_only_for_an_https_public_url(
    sqlite_url: str,
    fake_telegram: FakeTelegram,
    gateways: list[EmbeddedGateway],
    public_url: str | None,
    language: str,
    expected: str | None,
) -> None:
    bot, dp, gateway = await bot_for(
        sqlite_url, fake_telegram, public_url=public_url, default_language=language
    )
    gateways.append(gateway)
    assert await set_menu_button(bot, dp["settings"], dp["i18n"]) is (expected is not None)
    calls = fake_telegram.calls_of("setChatMenuButton")
    if expected is None:
        assert calls == []
        return
    (call,) = calls
    assert call["menu_button"] == {
        "type": "web_app",
        "text": expected,
        "web_app": {"url": "https://cabinet.example.com/app"},
    }


async def test_a_refused_menu_button_is_logged_and_the_bot_goes_on(
    sqlite_url: str,
    fake_telegram: FakeTelegram,
    gateways: list[EmbeddedGateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot, dp, gateway = await bot_for(sqlite_url, fake_telegram, public_url=PUBLIC_URL)
    gateways.append(gateway)
    fake_telegram.fail_next("setChatMenuButton", 400, "Bad Request: BUTTON_URL_INVALID")
    with caplog.at_level(logging.WARNING, logger="bot.web.app"):
        assert await set_menu_button(bot, dp["settings"], dp["i18n"]) is False
    assert "setChatMenuButton refused" in caplog.text


@pytest.mark.parametrize("public_url", [PUBLIC_URL, None])
async def test_the_chat_offers_the_cabinet_and_pay_links_only_with_public_url(
    sqlite_url: str,
    fake_telegram: FakeTelegram,
    gateways: list[EmbeddedGateway],
    public_url: str | None,
) -> None:
    bot, dp, gateway = await bot_for(sqlite_url, fake_telegram, public_url=public_url)
    gateways.append(gateway)
    driver = BotDriver(dp, bot, fake_telegram, gateway)
    try:
        user = driver.user(901)
        welcome, menu = [c for c in await driver.send(user, "/start") if c.method == "sendMessage"]
        assert welcome.text.startswith("👋 Welcome!")
        cabinet = [b for row in menu.buttons() for b in row if "web_app" in b]
        if public_url:
            assert cabinet == [
                {"text": "🖥 Open cabinet", "web_app": {"url": "https://cabinet.example.com/app"}}
            ]
        else:
            assert cabinet == []
        async with gateway.transaction() as billing:
            account = await billing.find_account_by_telegram(901)
            assert account is not None
            invoice = await billing.create_invoice(account.id, 2000, "EUR")
        data = InvoiceCb(action=InvoiceAction.VIEW, invoice_id=invoice.id).pack()
        calls = await driver.press(user, menu, data)
        (screen,) = [c for c in calls if c.method == "editMessageText"]
        links = [b for row in screen.buttons() for b in row if "url" in b]
        if public_url is None:
            assert links == []
            return
        (link,) = links
        assert link["text"] == "🌐 Pay in browser"
        token = link["url"].removeprefix(PUBLIC_URL + "/pay/")
        secret = dp["settings"].web_secret
        assert secret is None  # unset: the key is derived from the bot token
        claim = verify_pay_token(signing_key(dp["settings"]), token, now=0)
        assert (claim.invoice_id, claim.account_id) == (invoice.id, account.id)
    finally:
        driver.close()


def test_pay_url_is_stable_for_a_day_and_signed_with_the_setting() -> None:
    settings = make_settings("sqlite://", public_url=PUBLIC_URL, web_secret="k" * 32)
    day = 20_000 * 86400
    first = pay_url(settings, 7, 3, now=day + 10)
    assert first == pay_url(settings, 7, 3, now=day + 86399)
    assert first != pay_url(settings, 7, 3, now=day + 86400)
    assert first is not None
    claim = verify_pay_token(b"k" * 32, first.rsplit("/", 1)[1], now=day)
    assert claim.expires_at == day + 31 * 86400
    assert pay_url(make_settings("sqlite://"), 7, 3) is None


def test_web_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    settings = load_settings(_env_file=None)
    assert (settings.public_url, settings.web_enabled) == (None, False)
    assert (settings.web_initdata_max_age, settings.web_pay_link_days) == (3600, 30)
    monkeypatch.setenv("PUBLIC_URL", " https://cabinet.example.com/billing/ ")
    monkeypatch.setenv("WEB_INITDATA_MAX_AGE", "600")
    settings = load_settings(_env_file=None)
    assert (settings.public_url, settings.web_enabled) == (
        "https://cabinet.example.com/billing",
        True,
    )
    assert settings.web_initdata_max_age == 600
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1, 10.1.2.3/8,::1")
    assert load_settings(_env_file=None).trusted_proxies == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
    ]
    monkeypatch.delenv("TRUSTED_PROXIES")
    for name, value, message in [
        ("PUBLIC_URL", "cabinet.example.com", "PUBLIC_URL"),
        ("PUBLIC_URL", "https://cabinet.example.com/?x=1", "PUBLIC_URL"),
        ("WEB_SECRET", "short", "WEB_SECRET"),
        ("WEB_INITDATA_MAX_AGE", "10", "WEB_INITDATA_MAX_AGE"),
        ("WEB_PAY_LINK_DAYS", "0", "WEB_PAY_LINK_DAYS"),
        ("TRUSTED_PROXIES", "10.0.0.0/33", "TRUSTED_PROXIES"),
        ("TRUSTED_PROXIES", "proxy.local", "TRUSTED_PROXIES"),
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=message):
            load_settings(_env_file=None)
        monkeypatch.delenv(name)
