"""Settings as a new customer meets them (issue 15): one length limit said the same in the prompt
and the error, the Telegram name offered for an empty profile name, the country set once while
it is empty (a change after that is a ticket), /cancel back to the screen being edited, and no
"Confirm e-mail" without SMTP. The profile items run on the embedded billing and over WHMCS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from bot.factory import create_bot, create_dispatcher
from services.billing import per_call
from services.contracts.common import Account
from services.errors import AlreadyDone, ValidationFailed
from services.validation import NAME_MAX, TEXT_LIMITS, validate_name, validate_text
from tests.conftest import _gateway, make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.telegram import Call, FakeTelegram, User
from tests.harness.whmcs import Client, WhmcsStandIn
from tests.whmcs_fixtures import linked_account

AGAIN = "\nNothing was saved. Send another value or /cancel."


def edited(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "editMessageText")


def answer(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "answerCallbackQuery")


@dataclass
class Cabinet:
    kind: str
    driver: BotDriver
    whmcs: WhmcsStandIn | None = None
    client: Client | None = None

    async def customer(self, user: User) -> Account:
        """A customer with an empty name and no country (linked to a WHMCS client so)."""
        if self.whmcs is None:
            await self.driver.send(user, "/start")
            account = await per_call(self.driver.gateway).find_account_by_telegram(user.id)
            assert account is not None
            return account
        self.client = self.whmcs.add_client("", "", f"c{user.id}@example.com", country="")
        return await linked_account(self.driver.gateway, user.id, self.client)

    async def stored(self, account: Account, name: str) -> str | None:
        """What the billing itself holds (WHMCS's client for WHMCS fields)."""
        if self.client is not None:
            column = {"last_name": "lastname", "first_name": "firstname"}.get(name, name)
            return getattr(self.client, column) or None
        async with self.driver.gateway.transaction() as billing:
            row = await billing._account_row(account.id)
            return getattr(row, name)


@pytest.fixture(params=["embedded", "whmcs"])
def cabinet(request: pytest.FixtureRequest) -> Iterator[Cabinet]:
    if request.param == "embedded":
        yield Cabinet("embedded", request.getfixturevalue("driver"))
    else:
        whmcs: WhmcsStandIn = request.getfixturevalue("whmcs")
        yield Cabinet("whmcs", request.getfixturevalue("whmcs_driver"), whmcs)


async def open_group(driver: BotDriver, user: User, button: str) -> Call:
    root = (await driver.send(user, "/settings"))[-1]
    return edited(await driver.click(user, root, button))


# ---- 1. one limit, said the same in the prompt, the error and the check ------------------------
def test_an_overlong_paste_is_refused_with_the_fields_own_limit() -> None:
    for text in ("x" * 150, "x" * 250, "x " * 300):
        with pytest.raises(ValidationFailed) as info:
            validate_name(text)
        assert (info.value.detail, info.value.params["limit"]) == ("too_long", NAME_MAX)
    for field, limit in TEXT_LIMITS.items():
        for text in ("1" * (limit + 1), "1" * (limit * 2 + 5)):
            with pytest.raises(ValidationFailed) as info:
                validate_text(field, text, required=True)
            assert info.value.params["limit"] == limit, field


async def test_name_and_postcode_errors_give_the_prompts_number(driver: BotDriver) -> None:
    user = driver.user(1501)
    screen = await open_group(driver, user, "Profile and contacts")
    prompt = edited(await driver.click(user, screen, "✏️ Last name"))
    assert f"up to {NAME_MAX} characters" in prompt.text
    name_error = f"❌ Too long: at most {NAME_MAX} characters." + AGAIN
    assert (await driver.send(user, "a" * 150))[-1].text == name_error
    assert (await driver.send(user, "a" * 250))[-1].text == name_error

    screen = await open_group(driver, user, "Postal address")
    prompt = edited(await driver.click(user, screen, "✏️ Postcode"))
    assert "letters, digits, spaces and hyphens, up to 20." in prompt.text
    postcode_error = "❌ Too long: at most 20 characters." + AGAIN
    assert (await driver.send(user, "1" * 30))[-1].text == postcode_error
    assert (await driver.send(user, "1" * 50))[-1].text == postcode_error


# ---- 2. the Telegram name, one tap to accept ----------------------------------------------------
async def test_the_telegram_name_is_offered_while_the_profile_name_is_empty(
    cabinet: Cabinet,
) -> None:
    driver = cabinet.driver
    user = driver.user(1502, first_name="Jane", last_name="Doe")
    account = await cabinet.customer(user)
    screen = await open_group(driver, user, "Profile and contacts")
    prompt = edited(await driver.click(user, screen, "✏️ Last name"))
    assert prompt.button_texts() == ["✅ Use «Doe»", "✖️ Cancel"]
    calls = await driver.click(user, prompt, "Use «Doe»")
    assert edited(calls).text.startswith(
        "✅ Last name saved: <b>Doe</b>\n\n👤 <b>Profile and contacts</b>"
    )
    assert answer(calls)["text"] == "✅ Saved"
    assert await cabinet.stored(account, "last_name") == "Doe"

    # Set now: no offer (the customer types a change).
    prompt = edited(await driver.click(user, edited(calls), "✏️ Last name"))
    assert prompt.button_texts() == ["✖️ Cancel"]
    # The button of the earlier prompt no longer answers anything.
    await driver.send(user, "/settings")
    stale = await driver.press(user, prompt, "st:tg_name:last_name")
    assert answer(stale)["text"].startswith("This button is out of date.")


async def test_the_guided_fill_in_offers_the_telegram_names(cabinet: Cabinet) -> None:
    driver = cabinet.driver
    user = driver.user(1503, first_name="Jane", last_name="Doe")
    account = await cabinet.customer(user)
    root = (await driver.send(user, "/settings"))[-1]
    step1 = edited(await driver.click(user, root, "Fill in the missing data"))
    assert "Step 1 of" in step1.text and step1.button_texts() == ["✅ Use «Doe»", "✖️ Cancel"]
    step2 = edited(await driver.click(user, step1, "Use «Doe»"))
    assert step2.text.startswith("✅ Last name saved: <b>Doe</b>\n\n✍️ Step 2 of")
    assert step2.button_texts() == ["✅ Use «Jane»", "✖️ Cancel"]
    step3 = edited(await driver.click(user, step2, "Use «Jane»"))
    assert step3.text.startswith("✅ First name saved: <b>Jane</b>\n\n✍️ Step 3 of")
    assert step3.button_texts() == ["✖️ Cancel"]  # nothing to offer for the next field
    assert await cabinet.stored(account, "last_name") == "Doe"
    assert await cabinet.stored(account, "first_name") == "Jane"


async def test_a_telegram_name_that_is_no_valid_name_is_not_offered(driver: BotDriver) -> None:
    user = driver.user(1504, first_name="🦄 J4ne")
    screen = await open_group(driver, user, "Profile and contacts")
    prompt = edited(await driver.click(user, screen, "✏️ First name"))
    assert prompt.button_texts() == ["✖️ Cancel"]


# ---- 3. the country: once while empty, a ticket afterwards --------------------------------------
async def test_the_customer_sets_an_empty_country_once(cabinet: Cabinet) -> None:
    driver = cabinet.driver
    user = driver.user(1505)
    account = await cabinet.customer(user)
    screen = await open_group(driver, user, "Postal address")
    prompt = edited(await driver.click(user, screen, "✏️ Country"))
    assert prompt.text == (
        "🌍 Send your country: its two-letter code (e.g. DE, US, GB) or its name. You can set "
        "it once; later changes go through a ticket.\n\n/cancel — leave without changes."
    )
    assert (await driver.send(user, "Atlantis"))[-1].text == (
        "❌ This is not a country we know. Send its two-letter code (e.g. DE) or its name." + AGAIN
    )
    assert (await driver.send(user, "EU"))[-1].text.startswith("❌ This is not a country")
    question = (await driver.send(user, "germany"))[-1]
    assert question.text == (
        "🌍 Country: <b>Germany</b> (DE). It can be set only once: later changes go through a "
        "ticket. Save it?"
    )
    assert question.button_texts() == ["✅ Save the country", "✖️ Cancel"]
    assert await cabinet.stored(account, "country") in (None, "")
    calls = await driver.click(user, question, "Save the country")
    saved = edited(calls)
    assert saved.text.startswith("✅ Country saved: <b>Germany</b>\n\n🏠 <b>Postal address</b>\n")
    assert "Country: <b>Germany</b>" in saved.text
    assert saved.callback_data("🎫") == "nt:country"  # set: a change is a ticket now
    assert await cabinet.stored(account, "country") == "DE"

    # The confirmation pressed again (or forged for another country) changes nothing.
    again = await driver.press(user, question, "st:cset:FR")
    assert answer(again)["text"] == "This has already been done."
    assert await cabinet.stored(account, "country") == "DE"
    # An old "✏️ Country" button is out of date.
    old = await driver.press(user, screen, "st:country:address")
    assert answer(old)["text"].startswith("This button is out of date.")


async def test_a_typed_iso_code_from_the_general_screen_returns_there(driver: BotDriver) -> None:
    user = driver.user(1506)
    screen = await open_group(driver, user, "General")
    await driver.click(user, screen, "✏️ Country")
    question = (await driver.send(user, " lv "))[-1]
    assert question.text.startswith("🌍 Country: <b>Latvia</b> (LV).")
    saved = edited(await driver.click(user, question, "Save the country"))
    assert saved.text.startswith("✅ Country saved: <b>Latvia</b>\n\n🔔 <b>General</b>\n")
    assert saved.text.endswith("Country: <b>Latvia</b> — to change it, open a ticket.")


async def test_the_service_sets_the_country_once_only(cabinet: Cabinet) -> None:
    user = cabinet.driver.user(1507)
    account = await cabinet.customer(user)
    billing = per_call(cabinet.driver.gateway)
    with pytest.raises(ValidationFailed) as info:
        await billing.set_country(account.id, "ZZ")
    assert info.value.detail == "country_invalid"
    profile = await billing.set_country(account.id, "fi")
    assert profile.country == "FI"
    with pytest.raises(AlreadyDone):
        await billing.set_country(account.id, "SE")
    assert (await billing.get_profile(account.id)).country == "FI"


async def test_over_whmcs_a_client_with_a_country_cannot_set_another(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    client = whmcs.add_client("Al", "Li", "al@example.com")  # the stand-in's default: GB
    account = await linked_account(whmcs_driver.gateway, 1508, client)
    updates_before = len(whmcs.called("UpdateClient"))
    with pytest.raises(AlreadyDone):
        await per_call(whmcs_driver.gateway).set_country(account.id, "DE")
    assert client.country == "GB" and len(whmcs.called("UpdateClient")) == updates_before


# ---- 4. /cancel goes back to the screen being edited -------------------------------------------
@pytest.mark.parametrize(
    ("group", "button", "title"),
    [
        ("Postal address", "✏️ City", "🏠 <b>Postal address</b>"),
        ("General", "✏️ Low-balance", "🔔 <b>General</b>"),
        ("Profile and contacts", "✏️ Last name", "👤 <b>Profile and contacts</b>"),
        ("Security", "✏️ IP allow-list", "🔐 <b>Security</b>"),
        ("Postal address", "✏️ Country", "🏠 <b>Postal address</b>"),
    ],
)
async def test_cancel_returns_to_the_screen_being_edited(
    driver: BotDriver, group: str, button: str, title: str
) -> None:
    user = driver.user(1509)
    screen = await open_group(driver, user, group)
    await driver.click(user, screen, button)
    calls = await driver.send(user, "/cancel")
    assert calls[0].text == "Cancelled. Nothing was changed."
    assert calls[-1].text.startswith(title)
    assert (await driver.send(user, "Riga"))[-1].text.startswith("I did not understand")


async def test_cancel_in_the_phone_dialog_takes_its_keyboard_down(driver: BotDriver) -> None:
    user = driver.user(1510)
    screen = await open_group(driver, user, "Profile and contacts")
    await driver.click(user, screen, "✏️ Mobile phone")
    calls = await driver.send(user, "/cancel")
    assert calls[0].params["reply_markup"] == {"remove_keyboard": True}
    assert calls[-1].text.startswith("👤 <b>Profile and contacts</b>")


async def test_cancel_in_the_guided_fill_in_returns_to_the_settings(driver: BotDriver) -> None:
    user = driver.user(1511)
    root = (await driver.send(user, "/settings"))[-1]
    await driver.click(user, root, "Fill in")
    calls = await driver.send(user, "/cancel")
    assert calls[-1].text.startswith("⚙️ <b>Settings</b>")


# ---- 5. no "Confirm e-mail" without SMTP --------------------------------------------------------
NOT_AVAILABLE = "ℹ️ E-mail confirmation is not available: the bot cannot send e-mail."


@pytest.fixture
async def smtp_driver(sqlite_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[BotDriver]:
    """SMTP configured (nothing is sent in these tests)."""
    settings = make_settings(sqlite_url, smtp_host="127.0.0.1", smtp_port=1, smtp_tls="none")
    gw = await _gateway(sqlite_url)
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    drv = BotDriver(create_dispatcher(settings, gw), bot, fake_telegram, gw)
    yield drv
    drv.close()
    await gw.close()


async def unconfirmed_profile(driver: BotDriver, user: User) -> Call:
    await driver.send(user, "/start")
    billing = per_call(driver.gateway)
    account = await billing.find_account_by_telegram(user.id)
    assert account is not None
    await billing.set_email(account.id, "jane@example.com")
    return await open_group(driver, user, "Profile and contacts")


async def test_without_smtp_there_is_no_confirm_button_and_the_screen_says_so(
    driver: BotDriver,
) -> None:
    user = driver.user(1512)
    screen = await unconfirmed_profile(driver, user)
    assert "Confirm e-mail" not in " ".join(screen.button_texts())
    assert screen.text.endswith(
        "E-mail: <b>jane@example.com (not confirmed)</b>\nMobile phone: <b>—</b>\n" + NOT_AVAILABLE
    )
    # Cancelling an edit renders the same screen.
    prompt = edited(await driver.click(user, screen, "✏️ First name"))
    back = edited(await driver.click(user, prompt, "Cancel"))
    assert back.text.endswith(NOT_AVAILABLE)
    assert "Confirm e-mail" not in " ".join(back.button_texts())


async def test_with_smtp_the_confirm_button_stays(smtp_driver: BotDriver) -> None:
    user = smtp_driver.user(1513)
    screen = await unconfirmed_profile(smtp_driver, user)
    assert "📨 Confirm e-mail" in screen.button_texts()
    assert NOT_AVAILABLE not in screen.text
