"""The webhook endpoint (issue 11): always a secret token (generated when WEBHOOK_SECRET is not
set), 401 for a request without the right one, 400 for a body that is not an update — never a
500, never a traceback — and the production dispatcher behind it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiohttp.test_utils import TestClient, TestServer

from bot.config import ConfigError, load_settings
from bot.factory import create_bot, create_dispatcher
from bot.runners import SECRET_HEADER, create_webhook_app, set_webhook, webhook_secret
from services.embedded.billing import EmbeddedGateway
from tests.conftest import _gateway, make_settings
from tests.harness.server import raw_webhook_post
from tests.harness.session import RecordingSession
from tests.harness.telegram import TOKEN, Chat, FakeTelegram, User

STAFF = -1001
ADMIN = User(id=9001, first_name="Boss")
TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
PATH = "/telegram/webhook"


@dataclass
class Webhook:
    client: TestClient
    fake: FakeTelegram
    gateway: EmbeddedGateway
    bot: Bot
    dp: Dispatcher
    secret: str
    group: Chat

    async def post(self, body: bytes | dict[str, Any], secret: str | None) -> tuple[int, str]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        async with self.client.post(PATH, data=data, headers=headers) as response:
            return response.status, await response.text()

    async def raw_post(self, header_value: bytes, body: bytes) -> int:
        server = self.client.server
        return await raw_webhook_post(str(server.host), server.port, PATH, header_value, body)

    def credit_update(self, text: str = "/credit 1 10 forged") -> dict[str, Any]:
        return self.fake.user_message(ADMIN, text, chat=self.group)

    async def balance(self) -> int:
        async with self.gateway.transaction() as billing:
            return (await billing.get_account(1)).balance_minor


@pytest.fixture
async def webhook(
    sqlite_url: str, fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Webhook]:
    """The webhook app of `python -m bot` in webhook mode, with no WEBHOOK_SECRET configured."""
    caplog.set_level(logging.INFO)
    settings = make_settings(sqlite_url, webhook_url="https://bot.example.com")
    assert settings.webhook_secret is None
    gateway = await _gateway(sqlite_url)
    async with gateway.transaction() as billing:
        await billing.get_or_create_account(501, 501, name="Customer")
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    dp = create_dispatcher(settings, gateway)
    secret, generated = webhook_secret(settings)
    assert generated is True
    await set_webhook(bot, dp, settings, secret)
    group = fake_telegram.add_chat(Chat(id=STAFF, type="supergroup", title="Staff"))
    client = TestClient(TestServer(create_webhook_app(dp, bot, settings, secret)))
    await client.start_server()
    yield Webhook(client, fake_telegram, gateway, bot, dp, secret, group)
    await client.close()
    await gateway.close()


def assert_quiet_log(caplog: pytest.LogCaptureFixture, secret: str) -> None:
    """No traceback, no error, and the secret never appears."""
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()
        assert secret not in record.getMessage()


async def test_a_generated_secret_is_registered_with_set_webhook(webhook: Webhook) -> None:
    [call] = webhook.fake.calls_of("setWebhook")
    assert call["url"] == "https://bot.example.com/telegram/webhook"
    assert call["secret_token"] == webhook.secret == webhook.fake.webhook["secret_token"]
    assert TELEGRAM_SECRET.match(webhook.secret) and len(webhook.secret) == 43
    assert {"message", "callback_query", "chat_member", "my_chat_member"} <= set(
        call["allowed_updates"]
    )
    # Every start draws a new one; a configured WEBHOOK_SECRET is used as it is.
    settings = make_settings("sqlite+aiosqlite:///:memory:", webhook_url="https://x.example")
    assert webhook_secret(settings)[0] != webhook.secret
    configured = make_settings(
        "sqlite+aiosqlite:///:memory:", webhook_url="https://x", webhook_secret="Abc_-9"
    )
    assert webhook_secret(configured) == ("Abc_-9", False)


async def test_forged_posts_get_401_and_change_nothing(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    calls_before = len(webhook.fake.calls)
    update = webhook.credit_update()
    for secret in (
        None,
        "",
        "wrong",
        webhook.secret + "x",
        webhook.secret[:-1],
        webhook.secret.swapcase(),
    ):
        assert await webhook.post(update, secret) == (401, "Unauthorized"), secret
    body = json.dumps(update).encode()
    for header in ("секрет".encode(), b"\xff\xfe\xfd", webhook.secret.encode() + "é".encode()):
        assert await webhook.raw_post(header, body) == 401, header
    assert webhook.fake.calls[calls_before:] == []  # no /credit reply, nothing at all
    assert await webhook.balance() == 0
    assert_quiet_log(caplog, webhook.secret)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals[0].startswith("Webhook request from 127.0.0.1 refused: no valid secret token")
    assert len(refusals) == 1  # one line a minute, however many are refused


async def test_bodies_that_are_not_updates_get_400(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    calls_before = len(webhook.fake.calls)
    for body in (
        b"{not json",
        b"",
        b"[]",
        b"null",
        b'{"update_id": "one"}',
        b'{"message": {"text": "/credit 1 10 x"}}',
        b"\xff\xfe\x00{",
        b"[" * 100_000 + b"]" * 100_000,
    ):
        assert await webhook.post(body, webhook.secret) == (400, "Bad Request"), body[:20]
    assert webhook.fake.calls[calls_before:] == []
    assert await webhook.balance() == 0
    assert_quiet_log(caplog, webhook.secret)


async def test_the_right_secret_is_handled(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    status, _text = await webhook.post(
        webhook.credit_update("/credit 1 10 Goodwill"), webhook.secret
    )
    assert status == 200
    reply, notice = [c for c in webhook.fake.calls if c.method == "sendMessage"]
    assert (reply["chat_id"], reply.text) == (
        STAFF,
        "✅ Credited €10.00 to account #1 (tg501). Balance: €10.00.",
    )
    assert notice.text == (  # the customer is told
        "💰 Our support credited €10.00 to your balance: Goodwill\nBalance: <b>€10.00</b>"
    )
    assert await webhook.balance() == 1000
    assert_quiet_log(caplog, webhook.secret)


@pytest.mark.parametrize(
    "value",
    ["with space", "slash/", "ключ", "a" * 257, "semi;colon", "new\nline"],
)
def test_webhook_secret_outside_telegrams_charset_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("WEBHOOK_SECRET", value)
    with pytest.raises(ConfigError) as error:
        load_settings(_env_file=None)
    assert str(error.value) == (
        "Configuration error: WEBHOOK_SECRET must be 1-256 characters, only A-Z, a-z, 0-9, _ "
        "and - (what Telegram accepts)"
    )
    assert value not in str(error.value)


def test_webhook_secret_in_telegrams_charset_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    for value in ("a", "s3cret-Token_1", "Z" * 256):
        monkeypatch.setenv("WEBHOOK_SECRET", value)
        settings = load_settings(_env_file=None)
        assert settings.webhook_secret is not None
        assert settings.webhook_secret.get_secret_value() == value
    monkeypatch.setenv("WEBHOOK_SECRET", "")
    assert load_settings(_env_file=None).webhook_secret is None
