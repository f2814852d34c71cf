"""Settings on the real `python -m bot` process: switch the language, edit a contact field."""

from __future__ import annotations

from tests.e2e.conftest import LiveBot


async def test_language_and_last_name_on_the_real_process(live_bot: LiveBot) -> None:
    bot = live_bot
    user = bot.user(731)
    start = await bot.send(user, "/settings")
    root = await bot.reply(
        lambda c: c.method == "sendMessage" and c["chat_id"] == 731 and "Settings" in c.text, start
    )
    assert root.text.startswith("⚙️ <b>Settings</b>\nLogin: <code>tg731</code>")

    start = await bot.press(user, root, "General")
    general = await bot.reply(lambda c: c.method == "editMessageText", start)
    start = await bot.press(user, general, "✏️ Language")
    chooser = await bot.reply(lambda c: c.method == "editMessageText" and "🌐" in c.text, start)
    start = await bot.press(user, chooser, "Русский")
    switched = await bot.reply(
        lambda c: c.method == "editMessageText" and c.text.startswith("✅ Язык"), start
    )
    assert switched.text.startswith("✅ Язык сохранён: 🇷🇺 Русский\n\n🔔 <b>Общие</b>")

    # The whole interface is Russian now; edit the last name.
    start = await bot.send(user, "/settings")
    root = await bot.reply(
        lambda c: c.method == "sendMessage" and c.text.startswith("⚙️ <b>Настройки</b>"), start
    )
    start = await bot.press(user, root, "Профиль и контакты")
    profile = await bot.reply(lambda c: c.method == "editMessageText", start)
    start = await bot.press(user, profile, "✏️ Фамилия")
    await bot.reply(lambda c: c.method == "editMessageText" and "фамилию" in c.text, start)
    start = await bot.send(user, "Иван0в")
    refused = await bot.reply(lambda c: c.method == "sendMessage", start)
    assert refused.text.startswith("❌ Используйте только буквы, пробелы, дефисы и апострофы.")
    start = await bot.send(user, "Иванова-Петрова")
    saved = await bot.reply(lambda c: c.method == "sendMessage", start)
    assert saved.text.startswith("✅ Фамилия — сохранено: <b>Иванова-Петрова</b>\n\n👤")
    assert "Фамилия: <b>Иванова-Петрова</b>\n" in saved.text

    # Stored: a fresh screen shows it.
    start = await bot.send(user, "/settings")
    root = await bot.reply(lambda c: c.method == "sendMessage", start)
    assert "фамилия" not in root.text.split("\n")[-1]
    start = await bot.press(user, root, "Профиль и контакты")
    profile = await bot.reply(lambda c: c.method == "editMessageText", start)
    assert "Фамилия: <b>Иванова-Петрова</b>\n" in profile.text
