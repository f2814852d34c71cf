"""The main menu, navigation, the language switch and the fallbacks, through the dispatcher."""

from __future__ import annotations

from tests.harness.driver import BotDriver


async def test_start_creates_account_and_shows_menu_with_balance(driver: BotDriver) -> None:
    user = driver.user(501)
    calls = await driver.send(user, "/start")
    sent = [c for c in calls if c.method == "sendMessage"]
    assert len(sent) == 2
    assert sent[0]["chat_id"] == 501
    assert sent[0].text == "👋 Welcome! Your billing account <code>tg501</code> is ready."
    assert sent[1].text == (
        "💼 <b>Personal cabinet</b>\nLogin: <code>tg501</code>\nBalance: <b>€0.00</b>\n\n"
        "Choose a section:"
    )
    assert sent[1].button_texts() == [
        "📦 Orders",
        "🛒 New order",
        "🧾 Invoices",
        "💰 Balance",
        "💬 Tickets",
        "⚙️ Settings",
        "❓ Help",
        "🌐 Language",
    ]
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(501)
    assert account is not None and account.login == "tg501"

    again = await driver.send(user, "/start")
    assert [c.text for c in again if c.method == "sendMessage"] == [sent[1].text]


async def test_russian_telegram_user_gets_russian_menu(driver: BotDriver) -> None:
    user = driver.user(502, language_code="ru")
    calls = await driver.send(user, "/menu")
    menu = calls[-1]
    assert menu.text.startswith("💼 <b>Личный кабинет</b>\nЛогин: <code>tg502</code>\nБаланс:")
    assert "📦 Заказы" in menu.button_texts()


async def test_help_button_edits_the_menu_in_place_and_back_returns(driver: BotDriver) -> None:
    user = driver.user(503)
    menu = (await driver.send(user, "/menu"))[-1]
    calls = await driver.click(user, menu, "Help")
    edit = next(c for c in calls if c.method == "editMessageText")
    assert edit["message_id"] == menu.result["message_id"]
    assert edit.text.startswith("❓ <b>Help</b>")
    assert any(c.method == "answerCallbackQuery" for c in calls)
    back = await driver.click(user, edit, "Main menu")
    assert next(c for c in back if c.method == "editMessageText").text.startswith("💼")


async def test_pressing_the_same_button_twice_does_not_crash(driver: BotDriver) -> None:
    user = driver.user(504)
    menu = (await driver.send(user, "/menu"))[-1]
    data = menu.callback_data("Help")
    await driver.press(user, menu, data)
    calls = await driver.press(user, menu, data)  # same content: Telegram says "not modified"
    assert [c.method for c in calls if c.error is None] == ["answerCallbackQuery"]


async def test_language_switch_changes_the_whole_interface(driver: BotDriver) -> None:
    user = driver.user(505)
    menu = (await driver.send(user, "/menu"))[-1]
    chooser = next(
        c for c in await driver.click(user, menu, "Language") if c.method == "editMessageText"
    )
    calls = await driver.click(user, chooser, "Русский")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "Язык: русский"
    edited = next(c for c in calls if c.method == "editMessageText")
    assert edited.text.startswith("💼 <b>Личный кабинет</b>")
    # The choice sticks over Telegram's own language_code ("en").
    later = await driver.send(user, "/help")
    assert later[-1].text.startswith("❓ <b>Справка</b>")


async def test_unknown_text_and_stale_buttons_get_helpful_answers(driver: BotDriver) -> None:
    user = driver.user(506)
    calls = await driver.send(user, "hello?")
    assert calls[-1].text.startswith("I did not understand that.")
    menu = (await driver.send(user, "/menu"))[-1]
    calls = await driver.press(user, menu, "orders:page:forged")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["show_alert"] is True
    assert answer["text"].startswith("This button is out of date.")
    bad_lang = await driver.press(user, menu, "lang:xx")
    assert next(c for c in bad_lang if c.method == "answerCallbackQuery")["text"] == (
        "This language is not available."
    )


async def test_cancel_outside_and_inside_a_dialog(driver: BotDriver) -> None:
    user = driver.user(507)
    calls = await driver.send(user, "/cancel")
    assert calls[0].text == "There is nothing to cancel."
    assert calls[-1].text.startswith("💼")


async def test_group_messages_outside_staff_logic_are_ignored(driver: BotDriver) -> None:
    from tests.harness.telegram import Chat

    group = driver.fake.add_chat(Chat(id=-2002, type="supergroup", title="Random group"))
    user = driver.user(508)
    calls = await driver.send(user, "hello", chat=group)
    assert [c for c in calls if c.method.startswith("send")] == []


async def test_stand_in_get_chat_answers_a_valid_chat(driver: BotDriver) -> None:
    from tests.harness.telegram import Chat

    driver.fake.add_chat(Chat(id=-1009, type="supergroup", title="Desk", is_forum=True))
    chat = await driver.bot.get_chat(-1009)
    assert (chat.id, chat.type, chat.is_forum, chat.title) == (-1009, "supergroup", True, "Desk")


async def test_every_menu_section_and_command_has_a_screen(driver: BotDriver) -> None:
    from keyboards.callbacks import SECTIONS, MenuCb

    user = driver.user(509)
    menu = (await driver.send(user, "/menu"))[-1]
    for section in SECTIONS:
        calls = await driver.press(user, menu, MenuCb(section=section).pack())
        answer = next(c for c in calls if c.method == "answerCallbackQuery")
        assert not (answer.get("text") or "").startswith("This button is out of date"), section
        assert any(c.method in ("editMessageText", "sendMessage") for c in calls), section
        await driver.send(user, "/cancel")
    for command in (
        "orders",
        "neworder",
        "invoices",
        "history",
        "balance",
        "topup",
        "tickets",
        "newticket",
        "settings",
        "help",
        "language",
    ):
        calls = await driver.send(user, f"/{command}")
        sent = [c for c in calls if c.method == "sendMessage"]
        assert sent and not sent[0].text.startswith("I did not understand"), command
        await driver.send(user, "/cancel")


async def test_shutdown_can_wait_for_updates_in_flight(driver: BotDriver) -> None:
    import asyncio

    inflight = driver.dp["inflight"]
    assert await inflight.wait_idle(timeout=0.01)
    user = driver.user(510)
    release = asyncio.Event()
    original = driver.fake._m_sendMessage

    async def slow_send(params):  # type: ignore[no-untyped-def]
        await release.wait()
        return original(params)

    driver.fake._m_sendMessage = slow_send  # type: ignore[method-assign]
    task = asyncio.create_task(driver.send(user, "/help"))
    await asyncio.sleep(0.05)
    assert not await inflight.wait_idle(timeout=0.05)  # the update is still being handled
    release.set()
    assert await inflight.wait_idle(timeout=5)
    calls = await task
    assert calls[-1].text.startswith("❓ <b>Help</b>")


async def test_stand_in_rejects_malformed_html_like_telegram(driver: BotDriver) -> None:
    from aiogram.exceptions import TelegramBadRequest

    driver.user(511)
    for bad in ("<b>open", "a <script>", "<i>x</b>", "<b></b>"):
        try:
            await driver.bot.send_message(511, bad)
        except TelegramBadRequest as exc:
            assert "can't parse entities" in exc.message or "is empty" in exc.message
        else:
            raise AssertionError(f"accepted {bad!r}")
    ok = await driver.bot.send_message(511, "<b>x</b> &lt;3 " + "y" * 4000)
    assert ok.message_id
