"""The real process, polling and webhook: /start → menu → a button → the edited message."""

from __future__ import annotations

import aiohttp

from tests.e2e.conftest import LiveBot


async def test_polling_start_menu_and_button(live_bot: LiveBot) -> None:
    commands = live_bot.fake.calls_of("setMyCommands")
    assert {c.get("language_code") for c in commands} == {"en", "ru", None}
    ru_commands = next(c for c in commands if c.get("language_code") == "ru")["commands"]
    assert {"command": "orders", "description": "Мои заказы"} in ru_commands

    user = live_bot.user(701, language_code="ru")
    start = await live_bot.send(user, "/start")
    menu = await live_bot.reply(
        lambda c: c.method == "sendMessage" and c["chat_id"] == 701 and "Личный кабинет" in c.text,
        start,
    )
    assert "Баланс: <b>0,00\xa0€</b>" in menu.text
    assert menu["parse_mode"] == "HTML"

    start = await live_bot.press(user, menu, "Справка")
    edited = await live_bot.reply(lambda c: c.method == "editMessageText", start)
    assert edited["message_id"] == menu.result["message_id"]
    assert edited.text.startswith("❓ <b>Справка</b>")
    await live_bot.reply(lambda c: c.method == "answerCallbackQuery", start)
    assert live_bot.fake.message(701, menu.result["message_id"])["text"].startswith("❓")


async def test_webhook_checks_the_secret_and_answers(live_webhook_bot: LiveBot) -> None:
    bot = live_webhook_bot
    assert bot.fake.webhook["url"].endswith("/telegram/webhook")
    assert bot.fake.webhook["secret_token"] == "s3cret-Token_1"

    user = bot.user(702)
    forged = bot.fake.user_message(user, "/start")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            bot.fake.webhook["url"],
            json=forged,
            headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
        ) as response,
    ):
        assert response.status == 401
    assert bot.fake.sent(702) == []

    start = await bot.send(user, "/start")
    menu = await bot.reply(
        lambda c: c.method == "sendMessage" and "Personal cabinet" in c.text, start
    )
    start = await bot.press(user, menu, "Help")
    edited = await bot.reply(lambda c: c.method == "editMessageText", start)
    assert edited.text.startswith("❓ <b>Help</b>")
    await bot.reply(lambda c: c.method == "answerCallbackQuery", start)
