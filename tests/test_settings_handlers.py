"""Settings through the real dispatcher: each item valid, invalid and cancelled, in en and ru,
asserting the exact texts, the buttons and what the billing stored."""

from __future__ import annotations

from typing import Any

import pytest

from services.embedded import models as m
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, User

LANGS = ["en", "ru"]

# Texts both languages share the shape of; {login} etc. are filled by the tests.
L: dict[str, dict[str, str]] = {
    "en": {
        "root": "⚙️ <b>Settings</b>\nLogin: <code>{login}</code> (cannot be changed)\n\n"
        "⚠️ Required for payments and not filled in yet: "
        "last name, first name, e-mail, city, address.",
        "root_done": "⚙️ <b>Settings</b>\nLogin: <code>{login}</code> (cannot be changed)\n\n"
        "✅ Everything required for payments is filled in.",
        "general_btn": "General",
        "profile_btn": "Profile and contacts",
        "mails_btn": "Notice e-mails",
        "security_btn": "Security",
        "address_btn": "Postal address",
        "fill_btn": "Fill in the missing data",
        "general": "🔔 <b>General</b>\nNewsletter: <b>{newsletter}</b>\n"
        "Low-balance alert: <b>{threshold}</b>\nAuto-renewal of new orders: <b>{auto}</b>\n"
        "Currency: <b>{currency}</b> (balance: {balance})\n"
        "Payment without authorization: <b>{pay}</b>\nLanguage: <b>{language}</b>\n"
        "{country_line}",
        "country_set": "Country: <b>{country}</b> — to change it, open a ticket.",
        "country_empty": "Country: <b>not specified</b> — set it once with the button below.",
        "on": "on",
        "off": "off",
        "below": "below {amount}",
        "lang_name": "🇬🇧 English",
        "not_specified": "not specified",
        "cancelled": "Cancelled. Nothing was changed.",
        "cancel_btn": "Cancel",
        "again": "Nothing was saved. Send another value or /cancel.",
        "profile": "👤 <b>Profile and contacts</b>\nProfile type: <b>{ptype}</b>\n"
        "Last name: <b>{last}</b>{last_req}\nFirst name: <b>{first}</b>{first_req}\n"
        "E-mail: <b>{email}</b>{email_req}\nMobile phone: <b>{phone}</b>",
        "required": " (required)",
        "individual": "individual",
        "security": "🔐 <b>Security</b>\nCode word: <b>{code_word}</b>\n"
        "IP allow-list: <b>{ips}</b>\nShow last IP: <b>{show_ip}</b>\nPassword: <b>{password}</b>",
        "not_set": "not set",
        "set": "set",
        "pw_not_set": "not set",
        "pw_set": "set",
        "code_word_set": "set (cannot be viewed or changed)",
        "no_restriction": "no restriction",
    },
    "ru": {
        "root": "⚙️ <b>Настройки</b>\nЛогин: <code>{login}</code> (изменить нельзя)\n\n"
        "⚠️ Для оплаты нужно заполнить: фамилия, имя, e-mail, город, адрес.",
        "root_done": "⚙️ <b>Настройки</b>\nЛогин: <code>{login}</code> (изменить нельзя)\n\n"
        "✅ Всё, что нужно для оплаты, заполнено.",
        "general_btn": "Общие",
        "profile_btn": "Профиль и контакты",
        "mails_btn": "Адреса для писем",
        "security_btn": "Безопасность",
        "address_btn": "Почтовый адрес",
        "fill_btn": "Заполнить недостающие данные",
        "general": "🔔 <b>Общие</b>\nПодписка на новости: <b>{newsletter}</b>\n"
        "Оповещение о низком балансе: <b>{threshold}</b>\n"
        "Автопродление новых заказов: <b>{auto}</b>\n"
        "Валюта: <b>{currency}</b> (баланс: {balance})\n"
        "Оплата без авторизации: <b>{pay}</b>\nЯзык: <b>{language}</b>\n"
        "{country_line}",
        "country_set": "Страна: <b>{country}</b> — чтобы изменить, создайте обращение в поддержку.",
        "country_empty": "Страна: <b>не указана</b> — укажите её один раз кнопкой ниже.",
        "on": "вкл.",
        "off": "выкл.",
        "below": "ниже {amount}",
        "lang_name": "🇷🇺 Русский",
        "not_specified": "не указана",
        "cancelled": "Отменено. Ничего не изменено.",
        "cancel_btn": "Отмена",
        "again": "Ничего не сохранено. Отправьте другое значение или /cancel.",
        "profile": "👤 <b>Профиль и контакты</b>\nТип профиля: <b>{ptype}</b>\n"
        "Фамилия: <b>{last}</b>{last_req}\nИмя: <b>{first}</b>{first_req}\n"
        "E-mail: <b>{email}</b>{email_req}\nМобильный телефон: <b>{phone}</b>",
        "required": " (обязательно)",
        "individual": "частное лицо",
        "security": "🔐 <b>Безопасность</b>\nКодовое слово: <b>{code_word}</b>\n"
        "Ограничение по IP: <b>{ips}</b>\nПоказывать последний IP: <b>{show_ip}</b>\n"
        "Пароль: <b>{password}</b>",
        "not_set": "не задано",
        "set": "задано",
        "pw_not_set": "не задан",  # «пароль» is masculine, «кодовое слово» neuter
        "pw_set": "задан",
        "code_word_set": "задано (просмотр и изменение невозможны)",
        "no_restriction": "без ограничений",
    },
}


def eur(lang: str, amount: str) -> str:
    """'10.50' as Babel formats euros in the language."""
    return f"€{amount}" if lang == "en" else amount.replace(".", ",") + "\xa0€"


def usd(lang: str, amount: str) -> str:
    return f"${amount}" if lang == "en" else amount.replace(".", ",") + "\xa0$"


def edited(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "editMessageText")


def answer(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "answerCallbackQuery")


def sent(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.method == "sendMessage"]


def general(lang: str, **values: str) -> str:
    t = L[lang]
    defaults = {
        "newsletter": t["off"],
        "threshold": t["off"],
        "auto": t["on"],
        "currency": "EUR",
        "balance": eur(lang, "0.00"),
        "pay": t["off"],
        "language": t["lang_name"],
    }
    country = values.pop("country", None)
    line = t["country_set"].format(country=country) if country else t["country_empty"]
    return t["general"].format(**{**defaults, **values, "country_line": line})


def profile(lang: str, **values: str) -> str:
    t = L[lang]
    defaults = {
        "ptype": t["individual"],
        "last": "—",
        "last_req": t["required"],
        "first": "—",
        "first_req": t["required"],
        "email": "—",
        "email_req": t["required"],
        "phone": "—",
    }
    return t["profile"].format(**{**defaults, **values})


def security(lang: str, **values: str) -> str:
    t = L[lang]
    defaults = {
        "code_word": t["not_set"],
        "ips": t["no_restriction"],
        "show_ip": t["off"],
        "password": t["pw_not_set"],
    }
    return t["security"].format(**{**defaults, **values})


async def open_group(driver: BotDriver, user: User, lang: str, group: str) -> Call:
    root = (await driver.send(user, "/settings"))[-1]
    return edited(await driver.click(user, root, L[lang][f"{group}_btn"]))


async def account_row(driver: BotDriver, telegram_id: int) -> m.Account:
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(telegram_id)
        assert account is not None
        return await billing._account_row(account.id)


def user_for(driver: BotDriver, user_id: int, lang: str) -> User:
    return driver.user(user_id, language_code=lang)


# ---- the root screen ----------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_settings_root_from_command_and_menu(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 801, lang)
    calls = await driver.send(user, "/settings")
    root = calls[-1]
    assert root.text == L[lang]["root"].format(login="tg801")
    buttons = {
        "en": [
            "✍️ Fill in the missing data",
            "🔔 General",
            "👤 Profile and contacts",
            "✉️ Notice e-mails",
            "🔐 Security",
            "🏠 Postal address",
            "⬅️ Main menu",
        ],
        "ru": [
            "✍️ Заполнить недостающие данные",
            "🔔 Общие",
            "👤 Профиль и контакты",
            "✉️ Адреса для писем",
            "🔐 Безопасность",
            "🏠 Почтовый адрес",
            "⬅️ Главное меню",
        ],
    }
    assert root.button_texts() == buttons[lang]
    menu = (await driver.send(user, "/menu"))[-1]
    via_menu = edited(await driver.click(user, menu, "⚙️"))
    assert via_menu.text == root.text


@pytest.mark.parametrize("lang", LANGS)
async def test_general_screen_shows_every_value_with_a_button(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 802, lang)
    screen = await open_group(driver, user, lang, "general")
    assert screen.text == general(lang)
    assert len(screen.button_texts()) == 8
    # Country: empty, so the customer may set it once here (a set one: a ticket, see
    # test_settings_first_contact.py).
    assert [row[0]["callback_data"] for row in screen.buttons()][-2:] == [
        "st:country:general",
        "st:open:",
    ]


# ---- toggles ------------------------------------------------------------------------------------
TOGGLES = {
    "en": [
        ("Newsletter", "✅ Newsletter: on", "newsletter"),
        ("Auto-renewal", "✅ Auto-renewal of new orders: off", "auto_renew_default"),
        ("Payment without", "✅ Payment without authorization: on", "pay_without_auth"),
    ],
    "ru": [
        ("Подписка", "✅ Подписка на новости: вкл.", "newsletter"),
        ("Автопродление", "✅ Автопродление новых заказов: выкл.", "auto_renew_default"),
        ("Оплата без", "✅ Оплата без авторизации: вкл.", "pay_without_auth"),
    ],
}


@pytest.mark.parametrize("lang", LANGS)
async def test_toggles_save_at_once_and_show_the_new_value(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 803, lang)
    screen = await open_group(driver, user, lang, "general")
    t = L[lang]
    for button, line, _column in TOGGLES[lang]:
        calls = await driver.click(user, screen, button)
        screen = edited(calls)
        assert screen.text.startswith(line + "\n\n")
        assert answer(calls)["text"] == line
    assert screen.text.endswith(general(lang, newsletter=t["on"], auto=t["off"], pay=t["on"]))
    row = await account_row(driver, 803)
    assert (row.newsletter, row.auto_renew_default, row.pay_without_auth) == (True, False, True)
    # Pressing again flips back.
    calls = await driver.click(user, screen, TOGGLES[lang][0][0])
    assert (await account_row(driver, 803)).newsletter is False
    assert answer(calls)["text"] == TOGGLES[lang][0][1].replace(t["on"], t["off"])


async def test_forged_toggle_is_refused(driver: BotDriver) -> None:
    user = driver.user(804)
    screen = await open_group(driver, user, "en", "general")
    calls = await driver.press(user, screen, "st:toggle:login")
    assert answer(calls)["text"] == "This button is out of date. Please open the menu again: /menu"
    assert (await account_row(driver, 804)).login == "tg804"


# ---- low-balance threshold ----------------------------------------------------------------------
THRESHOLD = {
    "en": {
        "prompt": "✏️ Send the amount in EUR: we will alert you when the balance falls below it "
        "(e.g. 10 or 10.50). Send «off» to turn the alert off.\nNow: off\n\n"
        "/cancel — leave without changes.",
        "bad": "❌ Send an amount, for example 10 or 10.50, or «off».\n"
        "Nothing was saved. Send another value or /cancel.",
        "decimals": "❌ At most 2 digits after the decimal point.\n"
        "Nothing was saved. Send another value or /cancel.",
        "negative": "❌ The amount must be greater than zero.\n"
        "Nothing was saved. Send another value or /cancel.",
        "saved": "✅ Low-balance alert: below €10.50",
        "off": "✅ Low-balance alert: off",
        "turn_off": "Turn the alert off",
    },
    "ru": {
        "prompt": "✏️ Отправьте сумму в EUR: мы оповестим вас, когда баланс опустится ниже неё "
        "(например, 10 или 10,50). Отправьте «выкл», чтобы отключить оповещение.\n"
        "Сейчас: выкл.\n\n/cancel — выйти без изменений.",
        "bad": "❌ Отправьте сумму, например 10 или 10,50, или «выкл».\n"
        "Ничего не сохранено. Отправьте другое значение или /cancel.",
        "decimals": "❌ Не больше 2 знаков после запятой.\n"
        "Ничего не сохранено. Отправьте другое значение или /cancel.",
        "negative": "❌ Сумма должна быть больше нуля.\n"
        "Ничего не сохранено. Отправьте другое значение или /cancel.",
        "saved": "✅ Оповещение о низком балансе: ниже 10,50\xa0€",
        "off": "✅ Оповещение о низком балансе: выкл.",
        "turn_off": "Отключить оповещение",
    },
}


@pytest.mark.parametrize("lang", LANGS)
async def test_threshold_valid_invalid_off_and_cancel(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 805, lang)
    t = THRESHOLD[lang]
    screen = await open_group(driver, user, lang, "general")
    prompt = edited(await driver.click(user, screen, "✏️ " + ("Low" if lang == "en" else "Опов")))
    assert prompt.text == t["prompt"]
    assert prompt.button_texts() == ["✖️ " + L[lang]["cancel_btn"]]
    assert (await driver.send(user, "ten euros"))[-1].text == t["bad"]
    assert (await driver.send(user, "10.555"))[-1].text == t["decimals"]
    assert (await driver.send(user, "-5"))[-1].text == t["negative"]
    assert (await account_row(driver, 805)).low_balance_threshold_minor is None
    saved = (await driver.send(user, "10,50" if lang == "ru" else "10.50"))[-1]
    assert saved.text == t["saved"] + "\n\n" + general(
        lang, threshold=L[lang]["below"].format(amount=eur(lang, "10.50"))
    )
    assert (await account_row(driver, 805)).low_balance_threshold_minor == 1050

    # /cancel leaves the edit; nothing changes.
    screen = await open_group(driver, user, lang, "general")
    await driver.click(user, screen, "✏️ " + ("Low" if lang == "en" else "Опов"))
    calls = await driver.send(user, "/cancel")
    assert calls[0].text == L[lang]["cancelled"]
    assert (await driver.send(user, "20"))[-1].text != t["saved"]
    assert (await account_row(driver, 805)).low_balance_threshold_minor == 1050

    # "off" by word and by button.
    screen = await open_group(driver, user, lang, "general")
    prompt = edited(await driver.click(user, screen, "✏️ " + ("Low" if lang == "en" else "Опов")))
    off = (await driver.send(user, "off" if lang == "en" else "выкл"))[-1]
    assert off.text.startswith(t["off"] + "\n\n")
    assert (await account_row(driver, 805)).low_balance_threshold_minor is None
    await driver.send(user, "/settings")
    screen = await open_group(driver, user, lang, "general")
    await driver.click(user, screen, "✏️ " + ("Low" if lang == "en" else "Опов"))
    await driver.send(user, "7")
    screen = await open_group(driver, user, lang, "general")
    prompt = edited(await driver.click(user, screen, "✏️ " + ("Low" if lang == "en" else "Опов")))
    calls = await driver.click(user, prompt, t["turn_off"])
    assert edited(calls).text.startswith(t["off"] + "\n\n")
    assert (await account_row(driver, 805)).low_balance_threshold_minor is None


async def test_threshold_in_a_display_currency_is_stored_in_base(driver: BotDriver) -> None:
    user = driver.user(806)
    screen = await open_group(driver, user, "en", "general")
    chooser = edited(await driver.click(user, screen, "Currency"))
    await driver.click(user, chooser, "USD")
    screen = await open_group(driver, user, "en", "general")
    prompt = edited(await driver.click(user, screen, "Low-balance"))
    assert prompt.text.startswith("✏️ Send the amount in USD:")
    saved = (await driver.send(user, "10.80"))[-1]
    assert saved.text.startswith("✅ Low-balance alert: below $10.80\n\n")
    assert (await account_row(driver, 806)).low_balance_threshold_minor == 1000  # €10.00


# ---- currency -----------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_currency_change_converts_the_display_not_the_ledger(
    driver: BotDriver, lang: str
) -> None:
    user = user_for(driver, 807, lang)
    await driver.send(user, "/start")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(807)
        assert account is not None
        await billing.credit(account.id, 1000, kind="topup", idempotency_key="h-807")
    screen = await open_group(driver, user, lang, "general")
    chooser = edited(
        await driver.click(user, screen, "✏️ " + ("Currency" if lang == "en" else "Валюта"))
    )
    texts = {
        "en": "💱 Choose the currency for prices, invoices and the balance display. The ledger "
        "keeps its original amounts in EUR; the balance is shown converted at the current rate.",
        "ru": "💱 Выберите валюту цен, счетов и отображения баланса. Журнал операций хранит "
        "исходные суммы в EUR; баланс показывается по текущему курсу.",
    }
    assert chooser.text == texts[lang]
    assert chooser.button_texts()[:3] == ["✅ EUR", "USD", "RUB"]
    calls = await driver.click(user, chooser, "USD")
    line = {
        "en": "✅ Currency saved: USD. Balance shown: $10.80",
        "ru": "✅ Валюта сохранена: USD. Баланс в ней: 10,80\xa0$",
    }
    assert edited(calls).text.startswith(line[lang] + "\n\n")
    assert edited(calls).text.endswith(general(lang, currency="USD", balance=usd(lang, "10.80")))
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(807)
        assert account is not None
        assert (account.currency, account.balance_minor) == ("USD", 1000)
        ledger = await billing.list_ledger(account.id)
    assert [(x.amount_minor, x.currency) for x in ledger.items] == [(1000, "EUR")]


async def test_forged_currency_is_refused(driver: BotDriver) -> None:
    user = driver.user(808)
    screen = await open_group(driver, user, "en", "general")
    calls = await driver.press(user, screen, "st:cur:GBP")
    assert answer(calls)["text"] == (
        "The request was rejected. Please check the input and try again."
    )
    assert (await account_row(driver, 808)).currency == "EUR"


# ---- language -----------------------------------------------------------------------------------
async def test_language_switch_from_settings_changes_everything(driver: BotDriver) -> None:
    user = driver.user(809)
    screen = await open_group(driver, user, "en", "general")
    chooser = edited(await driver.click(user, screen, "✏️ Language"))
    assert chooser.text == "🌐 Choose the interface language:"
    assert chooser.button_texts() == ["✅ 🇬🇧 English", "🇷🇺 Русский", "⬅️ Back"]
    calls = await driver.click(user, chooser, "Русский")
    assert answer(calls)["text"] == "Язык: русский"
    assert edited(calls).text == "✅ Язык сохранён: 🇷🇺 Русский\n\n" + general(
        "ru", language="🇷🇺 Русский"
    )
    assert (await account_row(driver, 809)).language == "ru"
    later = (await driver.send(user, "/settings"))[-1]
    assert later.text.startswith("⚙️ <b>Настройки</b>")
    back = edited(
        await driver.click(user, edited(await driver.click(user, later, "Общие")), "Язык")
    )
    calls = await driver.click(user, back, "English")
    assert edited(calls).text.startswith("✅ Language saved: 🇬🇧 English\n\n🔔 <b>General</b>")


async def test_forged_language_is_refused(driver: BotDriver) -> None:
    user = driver.user(810)
    screen = await open_group(driver, user, "en", "general")
    calls = await driver.press(user, screen, "st:lang:de")
    assert answer(calls)["text"] == "This language is not available."
    # "en" is Telegram's language, remembered at first contact; the press changed nothing
    assert (await account_row(driver, 810)).language == "en"


# ---- names ---------------------------------------------------------------------------------------
NAMES = {
    "en": {
        "prompt": "✏️ Send your last name: letters, spaces, hyphens and apostrophes, up to 100 "
        "characters.\nNow: —\n\n/cancel — leave without changes.",
        "chars": "❌ Use only letters, spaces, hyphens and apostrophes.\n"
        "Nothing was saved. Send another value or /cancel.",
        "long": "❌ Too long: at most 100 characters.\n"
        "Nothing was saved. Send another value or /cancel.",
        "saved": "✅ Last name saved: <b>Smith-Jones</b>",
        "first_saved": "✅ First name saved: <b>Anna</b>",
        "last_btn": "✏️ Last name",
        "first_btn": "✏️ First name",
    },
    "ru": {
        "prompt": "✏️ Отправьте вашу фамилию: буквы, пробелы, дефисы и апострофы, до 100 "
        "символов.\nСейчас: —\n\n/cancel — выйти без изменений.",
        "chars": "❌ Используйте только буквы, пробелы, дефисы и апострофы.\n"
        "Ничего не сохранено. Отправьте другое значение или /cancel.",
        "long": "❌ Слишком длинно: не более 100 символов.\n"
        "Ничего не сохранено. Отправьте другое значение или /cancel.",
        "saved": "✅ Фамилия — сохранено: <b>Smith-Jones</b>",
        "first_saved": "✅ Имя — сохранено: <b>Anna</b>",
        "last_btn": "✏️ Фамилия",
        "first_btn": "✏️ Имя",
    },
}


@pytest.mark.parametrize("lang", LANGS)
async def test_names_valid_invalid_overlong_and_cancel(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 811, lang)
    t = NAMES[lang]
    screen = await open_group(driver, user, lang, "profile")
    assert screen.text == profile(lang)
    prompt = edited(await driver.click(user, screen, t["last_btn"]))
    assert prompt.text == t["prompt"]
    assert (await driver.send(user, "Sm1th"))[-1].text == t["chars"]
    assert (await driver.send(user, "x" * 101))[-1].text == t["long"]
    assert (await account_row(driver, 811)).last_name is None
    saved = (await driver.send(user, "  Smith-Jones "))[-1]
    assert saved.text == t["saved"] + "\n\n" + profile(lang, last="Smith-Jones", last_req="")
    assert (await account_row(driver, 811)).last_name == "Smith-Jones"

    # Cancel button and /cancel both leave without a change.
    screen = await open_group(driver, user, lang, "profile")
    prompt = edited(await driver.click(user, screen, t["first_btn"]))
    calls = await driver.click(user, prompt, L[lang]["cancel_btn"])
    assert edited(calls).text == L[lang]["cancelled"] + "\n\n" + profile(
        lang, last="Smith-Jones", last_req=""
    )
    screen = await open_group(driver, user, lang, "profile")
    await driver.click(user, screen, t["first_btn"])
    assert (await driver.send(user, "/cancel"))[0].text == L[lang]["cancelled"]
    after = (await driver.send(user, "Anna"))[-1]
    assert after.text.startswith(("I did not understand", "Я не понял"))
    assert (await account_row(driver, 811)).first_name is None

    screen = await open_group(driver, user, lang, "profile")
    await driver.click(user, screen, t["first_btn"])
    assert (await driver.send(user, "Anna"))[-1].text.startswith(t["first_saved"] + "\n\n")


async def test_html_in_values_is_escaped(driver: BotDriver) -> None:
    user = driver.user(812)
    screen = await open_group(driver, user, "en", "address")
    await driver.click(user, screen, "✏️ Address")
    saved = (await driver.send(user, "Main st <b>1</b> & co"))[-1]
    assert saved.text.startswith("✅ Address saved: <b>Main st &lt;b&gt;1&lt;/b&gt; &amp; co</b>")


async def test_another_command_leaves_the_edit_unsaved(driver: BotDriver) -> None:
    user = driver.user(813)
    screen = await open_group(driver, user, "en", "address")
    await driver.click(user, screen, "✏️ City")
    calls = await driver.send(user, "/help")
    assert calls[-1].text.startswith("❓ <b>Help</b>")
    await driver.click(user, screen, "✏️ City")
    calls = await driver.send(user, "/nonsense")
    assert calls[-1].text.startswith("I did not understand that.")
    calls = await driver.send(user, "Riga")
    assert calls[-1].text.startswith("I did not understand that.")
    assert (await account_row(driver, 813)).city is None


# ---- postal address -----------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_postal_address_fields(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 814, lang)
    screen = await open_group(driver, user, lang, "address")
    texts = {
        "en": "🏠 <b>Postal address</b>\nCountry: <b>not specified</b> (set it once with the "
        "button below)\nRegion: <b>—</b>\nCity: <b>—</b> (required)\nPostcode: <b>—</b>\n"
        "Address: <b>—</b> (required)",
        "ru": "🏠 <b>Почтовый адрес</b>\nСтрана: <b>не указана</b> (укажите её один раз кнопкой "
        "ниже)\n"
        "Регион: <b>—</b>\nГород: <b>—</b> (обязательно)\nИндекс: <b>—</b>\n"
        "Адрес: <b>—</b> (обязательно)",
    }
    assert screen.text == texts[lang]
    # Country: empty, so set once here; no ticket for it yet.
    assert [row[0]["callback_data"] for row in screen.buttons()][-2:] == [
        "st:country:address",
        "st:open:",
    ]
    city_btn = "✏️ City" if lang == "en" else "✏️ Город"
    await driver.click(user, screen, city_btn)
    long = {
        "en": "❌ Too long: at most 100 characters.",
        "ru": "❌ Слишком длинно: не более 100 символов.",
    }
    assert (await driver.send(user, "R" * 101))[-1].text.startswith(long[lang] + "\n")
    saved = (await driver.send(user, "Riga"))[-1]
    line = {"en": "✅ City saved: <b>Riga</b>", "ru": "✅ Город — сохранено: <b>Riga</b>"}
    assert saved.text.startswith(line[lang] + "\n\n")
    post_btn = "✏️ Postcode" if lang == "en" else "✏️ Индекс"
    await driver.click(user, saved, post_btn)
    bad = {
        "en": "❌ A postcode may contain only letters, digits, spaces and hyphens.",
        "ru": "❌ Индекс может содержать только буквы, цифры, пробелы и дефисы.",
    }
    assert (await driver.send(user, "LV#1010"))[-1].text.startswith(bad[lang] + "\n")
    saved = (await driver.send(user, "LV-1010"))[-1]
    prompt = edited(await driver.click(user, saved, post_btn))
    clear = "Clear" if lang == "en" else "Очистить"
    calls = await driver.click(user, prompt, clear)
    cleared = {"en": "✅ Postcode cleared.", "ru": "✅ Индекс: значение удалено."}
    assert edited(calls).text.startswith(cleared[lang] + "\n\n")
    row = await account_row(driver, 814)
    assert (row.city, row.postcode) == ("Riga", None)


# ---- notice e-mails -----------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_notice_emails(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 815, lang)
    screen = await open_group(driver, user, lang, "mails")
    texts = {
        "en": "✉️ <b>Notice e-mails</b>\nInvoices and orders: <b>—</b>\nSupport: <b>—</b>\n"
        "Abuse reports: <b>—</b>",
        "ru": "✉️ <b>Адреса для уведомлений</b>\nСчета и заказы: <b>—</b>\n"
        "Техподдержка: <b>—</b>\nЖалобы: <b>—</b>",
    }
    assert screen.text == texts[lang]
    await driver.click(user, screen, "✏️ " + ("Invoices" if lang == "en" else "Счета"))
    bad = {
        "en": "❌ This does not look like an e-mail address (example: name@example.com).\n"
        "Nothing was saved. Send another value or /cancel.",
        "ru": "❌ Это не похоже на адрес e-mail (пример: name@example.com).\n"
        "Ничего не сохранено. Отправьте другое значение или /cancel.",
    }
    assert (await driver.send(user, "billing at example"))[-1].text == bad[lang]
    saved = (await driver.send(user, "Billing@Example.com"))[-1]
    line = {
        "en": "✅ E-mail for invoices and orders saved: <b>Billing@example.com</b>",
        "ru": "✅ E-mail для счетов и заказов — сохранено: <b>Billing@example.com</b>",
    }
    assert saved.text.startswith(line[lang] + "\n\n")
    await driver.click(user, saved, "✏️ " + ("Abuse" if lang == "en" else "Жалобы"))
    assert (await driver.send(user, "/cancel"))[0].text == L[lang]["cancelled"]
    row = await account_row(driver, 815)
    assert (row.email_invoices, row.email_abuse) == ("Billing@example.com", None)


# ---- profile type -------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_company_profile_asks_details_and_blocks_payments(
    driver: BotDriver, lang: str
) -> None:
    user = user_for(driver, 816, lang)
    screen = await open_group(driver, user, lang, "profile")
    chooser = edited(
        await driver.click(user, screen, "✏️ " + ("Profile type" if lang == "en" else "Тип"))
    )
    texts = {
        "en": (
            "Choose the profile type. For a company we ask its name and tax number; payments "
            "are blocked until our staff verify them.",
            ["✅ Individual", "Company", "⬅️ Back"],
            "🏢 Send the company's full name (up to 256 characters).\n\n"
            "/cancel — leave without changes.",
            "🏢 Now send the company's tax number (4 to 64 letters or digits).",
            "❌ A tax number has 4 to 64 letters or digits (spaces, hyphens, slashes and dots "
            "are allowed).\nNothing was saved. Send another value or /cancel.",
            "✅ Profile type saved: <b>company «ACME Ltd», tax number 7701234567 (waiting for "
            "verification)</b>\n⏳ Payments are blocked until our staff verify your company "
            "details.",
        ),
        "ru": (
            "Выберите тип профиля. Для компании мы спросим название и ИНН; оплата будет "
            "заблокирована, пока наши сотрудники их не проверят.",
            ["✅ Частное лицо", "Компания", "⬅️ Назад"],
            "🏢 Отправьте полное название компании (до 256 символов).\n\n"
            "/cancel — выйти без изменений.",
            "🏢 Теперь отправьте ИНН компании (от 4 до 64 букв или цифр).",
            "❌ ИНН — от 4 до 64 букв или цифр (допускаются пробелы, дефисы, косые черты и "
            "точки).\nНичего не сохранено. Отправьте другое значение или /cancel.",
            "✅ Тип профиля сохранён: <b>компания «ACME Ltd», ИНН 7701234567 (ожидает "
            "проверки)</b>\n⏳ Оплата заблокирована, пока наши сотрудники не проверят данные "
            "компании.",
        ),
    }
    choose, buttons, ask_name, ask_tax, bad_tax, saved = texts[lang]
    assert chooser.text == choose
    assert chooser.button_texts() == buttons
    prompt = edited(await driver.click(user, chooser, buttons[1]))
    assert prompt.text == ask_name
    assert (await driver.send(user, "ACME Ltd"))[-1].text == ask_tax
    assert (await driver.send(user, "7$"))[-1].text == bad_tax
    assert (await account_row(driver, 816)).profile_type == "individual"
    done = (await driver.send(user, "7701234567"))[-1]
    assert done.text.startswith(saved + "\n\n")
    row = await account_row(driver, 816)
    assert (row.profile_type, row.company_name, row.company_tax_id, row.company_verified) == (
        "company",
        "ACME Ltd",
        "7701234567",
        False,
    )
    root = (await driver.send(user, "/settings"))[-1]
    blocked = {
        "en": "\n⏳ Payments are blocked until our staff verify your company details.",
        "ru": "\n⏳ Оплата заблокирована, пока наши сотрудники не проверят данные компании.",
    }
    assert root.text.endswith(blocked[lang])
    # Cancelling in the middle of the company dialog changes nothing.
    screen = await open_group(driver, user, lang, "profile")
    chooser = edited(
        await driver.click(user, screen, "✏️ " + ("Profile type" if lang == "en" else "Тип"))
    )
    await driver.click(user, chooser, buttons[0].removeprefix("✅ "))
    assert (await account_row(driver, 816)).profile_type == "individual"
    chooser = edited(await driver.click(user, chooser, "⬅️"))
    screen = await open_group(driver, user, lang, "profile")
    chooser = edited(
        await driver.click(user, screen, "✏️ " + ("Profile type" if lang == "en" else "Тип"))
    )
    await driver.click(user, chooser, buttons[1])
    await driver.send(user, "Other Co")
    assert (await driver.send(user, "/cancel"))[0].text == L[lang]["cancelled"]
    assert (await account_row(driver, 816)).company_name == "ACME Ltd"


# ---- phone --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_phone_typed_shared_foreign_and_call_password(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 817, lang)
    screen = await open_group(driver, user, lang, "profile")
    calls = await driver.click(user, screen, "✏️ " + ("Mobile" if lang == "en" else "Мобильный"))
    prompt = sent(calls)[-1]
    texts = {
        "en": (
            "📱 Send your mobile number with the country code (e.g. +44 7911 123456), or press "
            "«Share my contact» below: your own Telegram contact counts as verified.\nNow: —\n\n"
            "/cancel — leave without changes.",
            ["📱 Share my contact", "✖️ Cancel"],
            "❌ Add the country code: start the number with + (e.g. +7 912 345-67-89).\n"
            "Nothing was saved. Send another value or /cancel.",
            "❌ This is not your own contact. Press «Share my contact» or type your number.",
            "✅ Mobile phone saved: <b>+447911123456</b> (not verified)",
            "✅ Mobile phone saved: <b>+79123456789</b> (verified)",
        ),
        "ru": (
            "📱 Отправьте номер мобильного с кодом страны (например, +7 912 345-67-89) или "
            "нажмите «Поделиться контактом» ниже: ваш собственный контакт Telegram считается "
            "подтверждённым.\nСейчас: —\n\n/cancel — выйти без изменений.",
            ["📱 Поделиться контактом", "✖️ Отмена"],
            "❌ Укажите код страны: номер должен начинаться с + (например, +7 912 345-67-89).\n"
            "Ничего не сохранено. Отправьте другое значение или /cancel.",
            "❌ Это не ваш собственный контакт. Нажмите «Поделиться контактом» или введите номер.",
            "✅ Мобильный телефон сохранён: <b>+447911123456</b> (не подтверждён)",
            "✅ Мобильный телефон сохранён: <b>+79123456789</b> (подтверждён)",
        ),
    }
    ask, keyboard, no_country, foreign, typed, shared = texts[lang]
    assert prompt.text == ask
    assert prompt.button_texts() == keyboard
    assert prompt["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    assert (await driver.send(user, "89123456789"))[-1].text == no_country
    stranger = {"phone_number": "79990001122", "first_name": "Bob", "user_id": 999}
    assert (await driver.send(user, contact=stranger))[-1].text == foreign
    assert (await account_row(driver, 817)).phone is None
    calls = await driver.send(user, "+44 7911 123456")
    assert sent(calls)[0].text == typed
    assert sent(calls)[0]["reply_markup"] == {"remove_keyboard": True}
    assert sent(calls)[1].text == profile(lang, phone="+447911123456 (" + typed.split("(")[-1])
    row = await account_row(driver, 817)
    assert (row.phone, row.phone_verified) == ("+447911123456", False)

    # Call-password: the development telephony remembers the calling number.
    verify_btn = "📞"
    calls = await driver.click(user, sent(calls)[1], verify_btn)
    telephony = driver.dp["telephony"]
    called, caller = telephony.calls[-1]
    assert called == "+447911123456"
    ask_digits = {
        "en": "📞 We are calling +447911123456. You do not need to answer: send here the last 4 "
        "digits of the number that calls you. Wrong attempts allowed: 3.\n\n"
        "/cancel — leave without changes.",
        "ru": "📞 Мы звоним на +447911123456. Отвечать не нужно: отправьте сюда последние 4 "
        "цифры номера, с которого поступит звонок. Допустимо неверных попыток: 3.\n\n"
        "/cancel — выйти без изменений.",
    }
    assert edited(calls).text == ask_digits[lang]
    wrong = "0000" if caller[-4:] != "0000" else "1111"
    four = {"en": "❌ Send exactly 4 digits.", "ru": "❌ Отправьте ровно 4 цифры."}
    assert (await driver.send(user, "12"))[-1].text == four[lang]
    left = {"en": "❌ Wrong code. Attempts left: 2.", "ru": "❌ Неверный код. Осталось попыток: 2."}
    assert (await driver.send(user, wrong))[-1].text == left[lang]
    ok = (await driver.send(user, caller[-4:]))[-1]
    verified = {
        "en": "✅ Phone verified: <b>+447911123456</b>",
        "ru": "✅ Телефон подтверждён: <b>+447911123456</b>",
    }
    assert ok.text.startswith(verified[lang] + "\n\n")
    assert (await account_row(driver, 817)).phone_verified is True

    # The user's own shared contact counts as verified at once.
    screen = await open_group(driver, user, lang, "profile")
    await driver.click(user, screen, "✏️ " + ("Mobile" if lang == "en" else "Мобильный"))
    own = {"phone_number": "79123456789", "first_name": "Me", "user_id": 817}
    calls = await driver.send(user, contact=own)
    assert sent(calls)[0].text == shared
    row = await account_row(driver, 817)
    assert (row.phone, row.phone_verified) == ("+79123456789", True)

    # The reply-keyboard "Cancel" leaves the edit and removes the keyboard.
    screen = await open_group(driver, user, lang, "profile")
    await driver.click(user, screen, "✏️ " + ("Mobile" if lang == "en" else "Мобильный"))
    calls = await driver.send(user, keyboard[1])
    assert sent(calls)[0].text == L[lang]["cancelled"]
    assert sent(calls)[0]["reply_markup"] == {"remove_keyboard": True}
    assert (await account_row(driver, 817)).phone == "+79123456789"


async def test_call_password_wrong_digits_are_limited(driver: BotDriver) -> None:
    user = driver.user(818)
    screen = await open_group(driver, user, "en", "profile")
    await driver.click(user, screen, "✏️ Mobile")
    calls = await driver.send(user, "+7 912 000 11 22")
    calls = await driver.click(user, sent(calls)[1], "📞")
    _, caller = driver.dp["telephony"].calls[-1]
    wrong = "0000" if caller[-4:] != "0000" else "1111"
    assert (await driver.send(user, wrong))[-1].text == "❌ Wrong code. Attempts left: 2."
    assert (await driver.send(user, wrong))[-1].text == "❌ Wrong code. Attempts left: 1."
    last = (await driver.send(user, wrong))[-1]
    assert last.text.startswith("❌ Too many wrong codes. Request a new one.\n\n👤")
    # Out of the dialog now: the right digits are not taken as a code.
    assert (await driver.send(user, caller[-4:]))[-1].text.startswith("I did not understand")
    assert (await account_row(driver, 818)).phone_verified is False
    # A new call within the cooldown is refused.
    calls = await driver.click(user, last, "📞")
    assert answer(calls)["text"].startswith("Too many attempts. Please try again in ")


# ---- code word ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_code_word_set_once_deleted_and_hashed(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 819, lang)
    screen = await open_group(driver, user, lang, "security")
    assert screen.text == security(lang)
    prompt = edited(
        await driver.click(user, screen, "✏️ " + ("Code word" if lang == "en" else "Кодовое"))
    )
    texts = {
        "en": (
            "🔐 Send the code word (4 to 64 characters). It can be set only once: afterwards "
            "nobody can view or change it, and support staff can only check it. Your message "
            "will be deleted right away.\n\n/cancel — leave without changes.",
            "❌ The code word is too short: at least 4 characters.\n"
            "Nothing was saved. Send another value or /cancel.",
            "✅ Code word saved. It will never be shown again.",
        ),
        "ru": (
            "🔐 Отправьте кодовое слово (от 4 до 64 символов). Его можно задать только один "
            "раз: потом никто не сможет его увидеть или изменить, а поддержка сможет только "
            "проверить его. Ваше сообщение будет сразу удалено.\n\n/cancel — выйти без изменений.",
            "❌ Кодовое слово слишком короткое: не менее 4 символов.\n"
            "Ничего не сохранено. Отправьте другое значение или /cancel.",
            "✅ Кодовое слово сохранено. Больше оно нигде не будет показано.",
        ),
    }
    ask, short, saved = texts[lang]
    assert prompt.text == ask
    calls = await driver.send(user, "abc")
    deleted = [c for c in calls if c.method == "deleteMessage" and c.error is None]
    assert len(deleted) == 1
    assert calls[-1].text == short
    calls = await driver.send(user, "Blue Whale 42")
    user_message_id = calls[0]["message_id"]
    assert calls[0].method == "deleteMessage"
    assert (819, user_message_id) not in driver.fake.messages
    final = calls[-1]
    assert final.text == saved + "\n\n" + security(lang, code_word=L[lang]["code_word_set"])
    assert all("Blue Whale" not in (c.text or "") for c in driver.fake.calls)
    # Never editable again: the button is gone and a forged press is refused.
    assert not any("Code word" in b or "Кодовое" in b for b in final.button_texts())
    calls = await driver.press(user, final, "st:edit:code_word")
    refused = {
        "en": "The code word is already set and cannot be changed.",
        "ru": "Кодовое слово уже задано, изменить его нельзя.",
    }
    assert answer(calls)["text"] == refused[lang]
    row = await account_row(driver, 819)
    assert row.code_word_hash is not None and row.code_word_hash.startswith("scrypt$")
    assert "Blue" not in row.code_word_hash
    async with driver.gateway.transaction() as billing:
        assert await billing.check_code_word(row.id, "Blue Whale 42") is True


async def test_code_word_cancel_keeps_it_unset(driver: BotDriver) -> None:
    user = driver.user(820)
    screen = await open_group(driver, user, "en", "security")
    await driver.click(user, screen, "✏️ Code word")
    assert (await driver.send(user, "/cancel"))[0].text == "Cancelled. Nothing was changed."
    assert (await account_row(driver, 820)).code_word_hash is None


# ---- password -----------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_password_both_messages_deleted_mismatch_asks_again(
    driver: BotDriver, lang: str
) -> None:
    user = user_for(driver, 821, lang)
    screen = await open_group(driver, user, lang, "security")
    prompt = edited(await driver.click(user, screen, "🔑"))
    texts = {
        "en": (
            "🔑 Send the new password. Rules: 8 to 128 characters, at least one letter and one "
            "digit, no spaces. Your message will be deleted right away.\n\n"
            "/cancel — leave without changes.",
            "❌ The password needs at least one letter and one digit.\n"
            "Send another password or /cancel.",
            "🔑 Send the same password again to confirm it. This message will be deleted too.",
            "❌ The passwords do not match. Nothing was saved.",
            "✅ Password changed.",
        ),
        "ru": (
            "🔑 Отправьте новый пароль. Правила: от 8 до 128 символов, хотя бы одна буква и одна "
            "цифра, без пробелов. Ваше сообщение будет сразу удалено.\n\n"
            "/cancel — выйти без изменений.",
            "❌ В пароле должна быть хотя бы одна буква и одна цифра.\n"
            "Отправьте другой пароль или /cancel.",
            "🔑 Отправьте тот же пароль ещё раз для подтверждения. Это сообщение тоже будет "
            "удалено.",
            "❌ Пароли не совпадают. Ничего не сохранено.",
            "✅ Пароль изменён.",
        ),
    }
    ask, weak, confirm, mismatch, changed = texts[lang]
    assert prompt.text == ask

    def deleted(calls: list[Call]) -> list[Any]:
        return [c["message_id"] for c in calls if c.method == "deleteMessage" and c.error is None]

    calls = await driver.send(user, "longpassword")
    assert len(deleted(calls)) == 1 and calls[-1].text == weak
    first = await driver.send(user, "Horse9battery")
    assert len(deleted(first)) == 1 and first[-1].text == confirm
    second = await driver.send(user, "Horse9batterY")
    assert len(deleted(second)) == 1
    assert second[-1].text == mismatch + "\n\n" + ask
    assert (await account_row(driver, 821)).password_hash is None
    first = await driver.send(user, "Horse9battery")
    second = await driver.send(user, "Horse9battery")
    assert deleted(first) and deleted(second)
    for message_id in deleted(first) + deleted(second):
        assert (821, message_id) not in driver.fake.messages
    assert second[-1].text == changed + "\n\n" + security(lang, password=L[lang]["pw_set"])
    assert all("Horse9" not in (c.text or "") for c in driver.fake.calls)
    row = await account_row(driver, 821)
    assert row.password_hash is not None and "Horse9" not in row.password_hash
    async with driver.gateway.transaction() as billing:
        assert await billing.check_password(row.id, "Horse9battery") is True


async def test_password_cancel_in_the_middle_saves_nothing(driver: BotDriver) -> None:
    user = driver.user(822)
    screen = await open_group(driver, user, "en", "security")
    await driver.click(user, screen, "🔑")
    await driver.send(user, "Horse9battery")
    assert (await driver.send(user, "/cancel"))[0].text == "Cancelled. Nothing was changed."
    calls = await driver.send(user, "Horse9battery")
    assert calls[-1].text.startswith("I did not understand")
    assert (await account_row(driver, 822)).password_hash is None


# ---- IP allow-list ------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_ip_allowlist_errors_warning_and_confirmation(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 823, lang)
    screen = await open_group(driver, user, lang, "security")
    prompt = edited(
        await driver.click(user, screen, "✏️ " + ("IP" if lang == "en" else "Ограничение"))
    )
    texts = {
        "en": (
            "🌐 Send the IP addresses allowed to enter the web billing, one per line: an IPv4 or "
            "IPv6 address, or a range like 192.168.0.1-192.168.0.10. An empty list means no "
            "restriction.\nNow: no restriction\n\n/cancel — leave without changes.",
            "❌ Nothing was saved. Fix these lines and send the whole list again:\n"
            "Line 2 «10.0.0.9-10.0.0.1»: the range starts after it ends\n"
            "Line 4 «my home»: not an IP address",
            "Save this IP allow-list?\n<code>192.15.3.2\n2001:db8::1\n"
            "192.168.0.1-192.168.0.10</code>\n\n⚠️ Make sure your own IP address is in the "
            "list: otherwise you will not be able to log in to the web billing.",
            ["✅ Save the list", "✖️ Cancel"],
            "✅ IP allow-list saved: \n<code>192.15.3.2\n2001:db8::1\n"
            "192.168.0.1-192.168.0.10</code>",
        ),
        "ru": (
            "🌐 Отправьте IP-адреса, с которых разрешён вход в веб-биллинг, по одному в строке: "
            "адрес IPv4 или IPv6 либо диапазон вида 192.168.0.1-192.168.0.10. Пустой список — "
            "без ограничений.\nСейчас: без ограничений\n\n/cancel — выйти без изменений.",
            "❌ Ничего не сохранено. Исправьте эти строки и отправьте весь список заново:\n"
            "Строка 2 «10.0.0.9-10.0.0.1»: начало диапазона больше его конца\n"
            "Строка 4 «my home»: это не IP-адрес",
            "Сохранить этот список разрешённых IP?\n<code>192.15.3.2\n2001:db8::1\n"
            "192.168.0.1-192.168.0.10</code>\n\n⚠️ Убедитесь, что ваш собственный IP есть в "
            "списке: иначе вы не сможете войти в веб-биллинг.",
            ["✅ Сохранить список", "✖️ Отмена"],
            "✅ Список разрешённых IP сохранён: \n<code>192.15.3.2\n2001:db8::1\n"
            "192.168.0.1-192.168.0.10</code>",
        ),
    }
    ask, errors, confirm, buttons, saved = texts[lang]
    assert prompt.text == ask
    bad = "192.15.3.2\n10.0.0.9-10.0.0.1\n\nmy home"
    assert (await driver.send(user, bad))[-1].text == errors
    assert (await account_row(driver, 823)).ip_allowlist == ""
    good = "192.15.3.2\n\n2001:DB8::1\n192.15.3.2\n192.168.0.1-192.168.0.10"
    question = (await driver.send(user, good))[-1]
    assert question.text == confirm
    assert question.button_texts() == buttons
    assert (await account_row(driver, 823)).ip_allowlist == ""  # not before the confirmation
    calls = await driver.click(user, question, buttons[0])
    assert edited(calls).text.startswith(saved + "\n\n")
    assert (await account_row(driver, 823)).ip_allowlist == (
        "192.15.3.2\n2001:db8::1\n192.168.0.1-192.168.0.10"
    )
    # Pressing "save" again (stale) changes nothing.
    calls = await driver.press(user, question, question.callback_data(buttons[0]))
    assert answer(calls)["show_alert"] is True


async def test_ip_allowlist_without_the_last_seen_ip_warns_and_cancel_keeps_the_old(
    driver: BotDriver,
) -> None:
    user = driver.user(824)
    await driver.send(user, "/start")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(824)
        assert account is not None
        row = await billing._account_row(account.id)
        row.last_ip = "203.0.113.7"
    screen = await open_group(driver, user, "en", "security")
    await driver.click(user, screen, "✏️ IP")
    question = (await driver.send(user, "10.0.0.1"))[-1]
    assert question.text == (
        "Save this IP allow-list?\n<code>10.0.0.1</code>\n\n⚠️ Your last known address "
        "203.0.113.7 is not in this list: with this list you will not be able to log in to the "
        "web billing from it."
    )
    calls = await driver.click(user, question, "Cancel")
    assert edited(calls).text.startswith("Cancelled. Nothing was changed.\n\n🔐")
    assert (await account_row(driver, 824)).ip_allowlist == ""
    await driver.click(user, screen, "✏️ IP")
    question = (await driver.send(user, "203.0.113.0-203.0.113.255"))[-1]
    assert question.text == "Save this IP allow-list?\n<code>203.0.113.0-203.0.113.255</code>"
    # Show-last-IP toggle shows the address.
    await driver.click(user, question, "Save")
    calls = await driver.click(user, screen, "Show last IP")
    assert edited(calls).text.startswith("✅ Show last IP: on\n\n")
    assert edited(calls).text.endswith("\nLast IP: <b>203.0.113.7</b>")
    prompt = edited(await driver.click(user, screen, "✏️ IP"))
    calls = await driver.click(user, prompt, "No restriction")
    assert edited(calls).text.startswith("✅ IP allow-list saved: no restriction\n\n")
    assert (await account_row(driver, 824)).ip_allowlist == ""


async def test_last_ip_is_unknown_until_seen(driver: BotDriver) -> None:
    user = driver.user(825)
    screen = await open_group(driver, user, "en", "security")
    calls = await driver.click(user, screen, "Show last IP")
    assert edited(calls).text.endswith(
        "\nShow last IP: <b>on</b>\nPassword: <b>not set</b>\nLast IP: <b>unknown</b>"
    )


# ---- the guided flow --------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
async def test_guided_flow_asks_exactly_what_is_missing(driver: BotDriver, lang: str) -> None:
    user = user_for(driver, 826, lang)
    await driver.send(user, "/start")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(826)
        assert account is not None
        await billing.set_profile_field(account.id, "first_name", "Jane")
        await billing.set_profile_field(account.id, "city", "Oslo")
    root = (await driver.send(user, "/settings"))[-1]
    calls = await driver.click(user, root, L[lang]["fill_btn"])
    texts = {
        "en": [
            "To pay, we still need: last name, e-mail, address.\n\n✍️ Step 1 of 3. Send your "
            "last name: letters, spaces, hyphens and apostrophes, up to 100 characters.\n\n"
            "/cancel — stop here.",
            "❌ Use only letters, spaces, hyphens and apostrophes.\n"
            "Nothing was saved. Send another value or /cancel.",
            "✅ Last name saved: <b>Doe</b>\n\n✍️ Step 2 of 3. Send your e-mail address. We "
            "will send a confirmation code to it.\n\n/cancel — stop here.",
            "✅ E-mail saved: <b>jane@example.com</b>\n\n✍️ Step 3 of 3. Send your street "
            "address: street, house, flat (up to 300 characters).\n\n/cancel — stop here.",
            "✅ Address saved: <b>Main st 1</b>\n\n",
        ],
        "ru": [
            "Для оплаты ещё нужно указать: фамилия, e-mail, адрес.\n\n✍️ Шаг 1 из 3. Отправьте "
            "вашу фамилию: буквы, пробелы, дефисы и апострофы, до 100 символов.\n\n"
            "/cancel — остановиться.",
            "❌ Используйте только буквы, пробелы, дефисы и апострофы.\n"
            "Ничего не сохранено. Отправьте другое значение или /cancel.",
            "✅ Фамилия — сохранено: <b>Doe</b>\n\n✍️ Шаг 2 из 3. Отправьте ваш адрес e-mail. "
            "Мы пришлём на него код подтверждения.\n\n/cancel — остановиться.",
            "✅ E-mail — сохранено: <b>jane@example.com</b>\n\n✍️ Шаг 3 из 3. Отправьте адрес: "
            "улица, дом, квартира (до 300 символов).\n\n/cancel — остановиться.",
            "✅ Адрес — сохранено: <b>Main st 1</b>\n\n",
        ],
    }
    start, bad, step2, step3, done = texts[lang]
    assert edited(calls).text == start
    assert (await driver.send(user, "D0e"))[-1].text == bad
    assert (await driver.send(user, "Doe"))[-1].text == step2
    assert (await driver.send(user, "jane@example.com"))[-1].text == step3
    final = (await driver.send(user, "Main st 1"))[-1]
    assert final.text == done + L[lang]["root_done"].format(login="tg826")
    async with driver.gateway.transaction() as billing:
        assert await billing.missing_required_fields(account.id) == []
        await billing.require_payment_allowed(account.id)


async def test_guided_flow_stops_on_cancel_keeping_what_was_saved(driver: BotDriver) -> None:
    user = driver.user(827)
    root = (await driver.send(user, "/settings"))[-1]
    await driver.click(user, root, "Fill in")
    await driver.send(user, "Doe")
    assert (await driver.send(user, "/cancel"))[0].text == "Cancelled. Nothing was changed."
    row = await account_row(driver, 827)
    assert (row.last_name, row.first_name) == ("Doe", None)


async def test_a_long_ip_list_fits_in_one_message(driver: BotDriver) -> None:
    user = driver.user(828)
    screen = await open_group(driver, user, "en", "security")
    await driver.click(user, screen, "✏️ IP")
    ranges = "\n".join(
        f"2001:db8:aaaa:bbbb:cccc:dddd:eeee:{i:x}-2001:db8:aaaa:bbbb:cccc:dddd:eeee:{i:x}ff"
        for i in range(100)
    )
    question = (await driver.send(user, ranges))[-1]
    assert question.text.endswith(
        "\n… (+75)</code>\n\n⚠️ Make sure your own IP address is in the "
        "list: otherwise you will not be able to log in to the web billing."
    )
    calls = await driver.click(user, question, "Save the list")
    assert edited(calls).text.startswith("✅ IP allow-list saved: \n<code>2001:db8:aaaa:")
    assert len((await account_row(driver, 828)).ip_allowlist.splitlines()) == 100


# ---- /cancel leaves any edit, in both languages -------------------------------------------------
CANCELLABLE = [
    # (group, en button, ru button, a value that would have been valid)
    ("general", "✏️ Low-balance", "✏️ Оповещение", "15"),
    ("profile", "✏️ Last name", "✏️ Фамилия", "Doe"),
    ("profile", "✏️ E-mail", "✏️ E-mail", "x@example.com"),
    ("mails", "✏️ Support", "✏️ Техподдержка", "s@example.com"),
    ("security", "✏️ Code word", "✏️ Кодовое", "blue whale"),
    ("security", "✏️ IP allow-list", "✏️ Ограничение", "10.0.0.1"),
    ("security", "🔑", "🔑", "Horse9battery"),
    ("address", "✏️ City", "✏️ Город", "Riga"),
    ("address", "✏️ Address", "✏️ Адрес", "Main st 1"),
]
COLUMNS = (
    "low_balance_threshold_minor",
    "last_name",
    "email",
    "email_support",
    "code_word_hash",
    "ip_allowlist",
    "password_hash",
    "city",
    "address",
)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("how", ["command", "button"])
async def test_cancel_leaves_every_edit_unchanged(driver: BotDriver, lang: str, how: str) -> None:
    user_id = 840 + LANGS.index(lang) * 2 + (how == "button")
    user = user_for(driver, user_id, lang)
    await driver.send(user, "/menu")
    before = {c: getattr(await account_row(driver, user_id), c) for c in COLUMNS}
    for group, en_button, ru_button, _value in CANCELLABLE:
        screen = await open_group(driver, user, lang, group)
        prompt = edited(await driver.click(user, screen, en_button if lang == "en" else ru_button))
        if how == "command":
            calls = await driver.send(user, "/cancel")
            assert calls[0].text == L[lang]["cancelled"]
        else:
            calls = await driver.click(user, prompt, L[lang]["cancel_btn"])
            assert edited(calls).text.startswith(L[lang]["cancelled"] + "\n\n")
        after = (await driver.send(user, _value))[-1]
        assert after.text.startswith(("I did not understand", "Я не понял")), (group, en_button)
    row = await account_row(driver, user_id)
    assert {c: getattr(row, c) for c in COLUMNS} == before
