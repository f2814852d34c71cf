"""Linking a Telegram user to a WHMCS client, end to end through the production dispatcher in
front of the WHMCS stand-in: the explanation an unlinked user gets, /link with a code by
e-mail, the deep-link token, unlinking, and WHMCS down while linking."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from services.billing import per_call
from services.embedded import models as m
from services.whmcs.linking import issue_link_token, read_link_token
from tests.harness.driver import BotDriver, texts
from tests.harness.telegram import User
from tests.harness.whmcs import Client, WhmcsStandIn

LINK_SECRET = "test-link-token-secret"
EXPLANATION = "personal cabinet of your hosting provider"
UNAVAILABLE = "The billing is unavailable right now"


@pytest.fixture(autouse=True)
def link_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """LINK_TOKEN_SECRET for the settings the driver fixture builds (read from the env)."""
    monkeypatch.setenv("LINK_TOKEN_SECRET", LINK_SECRET)


def alice_of(whmcs: WhmcsStandIn) -> Client:
    return whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal("12.50"))


async def client_of(driver: BotDriver, user: User) -> int | None:
    billing = per_call(driver.gateway.local)
    account = await billing.find_account_by_telegram(user.id)
    assert account is not None
    return await billing.billing_client_id(account.id)


def code_in(whmcs: WhmcsStandIn) -> str:
    match = re.search(r"<b>(\d{6})</b>", whmcs.emails[-1].message)
    assert match is not None
    return match.group(1)


async def ask_code(driver: BotDriver, user: User, email: str) -> list[str]:
    await driver.send(user, "/link")
    return texts(await driver.send(user, email))


async def test_an_unlinked_user_sees_the_explanation_and_the_link_button(
    whmcs_driver: BotDriver,
) -> None:
    user = whmcs_driver.user(501)
    calls = await whmcs_driver.send(user, "/start")
    screen = calls[-1]
    assert EXPLANATION in (screen.text or "")
    assert any("Link my account" in label for label in screen.button_texts())
    assert "Welcome" not in " ".join(texts(calls))
    # a section that needs the client: the same explanation (NotLinked)
    calls = await whmcs_driver.send(user, "/orders")
    assert EXPLANATION in " ".join(texts(calls))


async def test_link_by_code_wrong_then_right_shows_the_whmcs_credit(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice = alice_of(whmcs)
    user = whmcs_driver.user(501)
    await whmcs_driver.send(user, "/start")
    press = await whmcs_driver.click(user, whmcs_driver.screen_call(501), "Link my account")
    assert "e-mail address" in " ".join(texts(press))
    answer = texts(await whmcs_driver.send(user, "not an address"))
    assert "does not look like an e-mail" in answer[0]
    assert not whmcs.called("GetClientsDetails")  # bad input changes nothing
    answer = texts(await whmcs_driver.send(user, "Alice@Example.com"))
    assert "If this address belongs to an account" in answer[0]
    assert [(e.client_id, e.customtype) for e in whmcs.emails] == [(alice.id, "general")]
    sent = whmcs.called("SendEmail")[0].params
    assert sent["customtype"] == "general" and str(sent["id"]) == str(alice.id)
    code = code_in(whmcs)
    wrong = "000000" if code != "000000" else "111111"
    assert "Attempts left: 4" in texts(await whmcs_driver.send(user, wrong))[0]
    assert "6 digits" in texts(await whmcs_driver.send(user, "12ab"))[0]  # not counted
    assert await client_of(whmcs_driver, user) is None
    calls = await whmcs_driver.send(user, code)
    assert "linked" in texts(calls)[0]
    assert await client_of(whmcs_driver, user) == alice.id
    assert "$12.50" in (calls[-1].text or "")
    menu = texts(await whmcs_driver.send(user, "/menu"))
    assert "$12.50" in menu[-1] and EXPLANATION not in menu[-1]


async def test_too_many_wrong_codes_end_the_attempt(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice_of(whmcs)
    user = whmcs_driver.user(501)
    await ask_code(whmcs_driver, user, "alice@example.com")
    code = code_in(whmcs)
    wrong = "000000" if code != "000000" else "111111"
    answers = [texts(await whmcs_driver.send(user, wrong))[0] for _ in range(5)]
    assert "Attempts left: 1" in answers[3] and "No attempts left" in answers[4]
    await whmcs_driver.send(user, "/link")
    # the state is gone; the right code now is only a text outside a dialog
    billing = per_call(whmcs_driver.gateway)
    account = await billing.find_account_by_telegram(user.id)
    assert account is not None
    assert (await billing.confirm_linking(account.id, code)).status == "exhausted"
    assert await client_of(whmcs_driver, user) is None


async def test_an_unknown_email_gets_the_same_answer_and_no_email(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice_of(whmcs)
    known_user, other_user = whmcs_driver.user(501), whmcs_driver.user(502)
    known = await ask_code(whmcs_driver, known_user, "alice@example.com")
    unknown = await ask_code(whmcs_driver, other_user, "nobody@example.com")
    assert known == unknown
    assert len(whmcs.emails) == 1 and len(whmcs.called("GetClientsDetails")) >= 2
    answer = texts(await whmcs_driver.send(other_user, "123456"))
    assert "Attempts left: 4" in answer[0]  # as for a client: nothing tells them apart


async def test_a_second_code_within_the_cooldown_is_refused(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice_of(whmcs)
    user = whmcs_driver.user(501)
    await ask_code(whmcs_driver, user, "alice@example.com")
    again = await ask_code(whmcs_driver, user, "alice@example.com")
    assert "Too many attempts" in again[0]
    assert len(whmcs.emails) == 1


async def test_the_deep_link_token_links_once(whmcs_driver: BotDriver, whmcs: WhmcsStandIn) -> None:
    alice = alice_of(whmcs)
    token = issue_link_token(LINK_SECRET, alice.id, timedelta(hours=1))
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", token)
    user, other = whmcs_driver.user(501), whmcs_driver.user(502)
    calls = await whmcs_driver.send(user, f"/start {token}")
    assert "linked" in texts(calls)[0] and "$12.50" in (calls[-1].text or "")
    assert await client_of(whmcs_driver, user) == alice.id
    reused = texts(await whmcs_driver.send(other, f"/start {token}"))
    assert "invalid, expired or already used" in reused[0]
    assert await client_of(whmcs_driver, other) is None
    assert not whmcs.emails  # no password, no e-mail: the token is the proof


async def test_one_token_used_twice_at_once_links_one_account(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    """Both uses are in flight together (WHMCS answers slowly): the token is claimed before
    WHMCS is asked, so only one of them links."""
    alice = alice_of(whmcs)
    token = issue_link_token(LINK_SECRET, alice.id, timedelta(hours=1))
    users = [whmcs_driver.user(501), whmcs_driver.user(502)]
    for user in users:
        await whmcs_driver.send(user, "/start")  # their accounts exist, unlinked
    whmcs.slow(0.3, "GetClientsDetails")
    async with whmcs_driver.gateway.local.transaction() as billing:
        accounts = [await billing.find_account_by_telegram(user.id) for user in users]
    core = whmcs_driver.gateway.core  # type: ignore[attr-defined]
    linked = await asyncio.gather(
        *(core.link_with_token(account.id, token) for account in accounts if account)
    )
    assert sorted(linked) == [False, True]
    clients = [await client_of(whmcs_driver, user) for user in users]
    assert sorted(clients, key=lambda c: c is None) == [alice.id, None]


async def test_a_token_used_while_whmcs_is_down_still_works_afterwards(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice = alice_of(whmcs)
    token = issue_link_token(LINK_SECRET, alice.id, timedelta(hours=1))
    user = whmcs_driver.user(501)
    await whmcs.go_down()
    assert UNAVAILABLE in texts(await whmcs_driver.send(user, f"/start {token}"))[0]
    assert await client_of(whmcs_driver, user) is None
    await whmcs.come_back()
    assert "linked" in texts(await whmcs_driver.send(user, f"/start {token}"))[0]
    assert await client_of(whmcs_driver, user) == alice.id


@pytest.mark.parametrize("kind", ["expired", "forged", "garbage", "unknown_client"])
async def test_a_bad_token_links_nobody(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn, kind: str
) -> None:
    alice = alice_of(whmcs)
    tokens = {
        "expired": issue_link_token(LINK_SECRET, alice.id, timedelta(seconds=-1)),
        "forged": issue_link_token("another-secret", alice.id, timedelta(hours=1)),
        "garbage": "abc_-DEF123",
        "unknown_client": issue_link_token(LINK_SECRET, 99_999, timedelta(hours=1)),
    }
    user = whmcs_driver.user(501)
    calls = await whmcs_driver.send(user, f"/start {tokens[kind]}")
    assert "invalid, expired or already used" in texts(calls)[0]
    assert any("Link my account" in label for label in calls[0].button_texts())
    assert await client_of(whmcs_driver, user) is None


def test_a_token_with_one_changed_character_is_refused() -> None:
    token = issue_link_token(LINK_SECRET, 42, timedelta(hours=1))
    assert read_link_token(LINK_SECRET, token) is not None
    tampered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    assert read_link_token(LINK_SECRET, tampered) is None
    assert len(token) <= 64


async def test_unlink_from_settings(whmcs_driver: BotDriver, whmcs: WhmcsStandIn) -> None:
    alice = alice_of(whmcs)
    user = whmcs_driver.user(501)
    await whmcs_driver.send(
        user, f"/start {issue_link_token(LINK_SECRET, alice.id, timedelta(hours=1))}"
    )
    settings = await whmcs_driver.send(user, "/settings")
    ask = await whmcs_driver.click(user, settings[-1], "Unlink")
    assert "Unlink this Telegram" in " ".join(texts(ask))
    done = await whmcs_driver.click(user, whmcs_driver.screen_call(501), "Yes, unlink")
    assert any(EXPLANATION in t for t in texts(done))
    assert await client_of(whmcs_driver, user) is None
    assert EXPLANATION in texts(await whmcs_driver.send(user, "/menu"))[-1]
    assert "not linked" in texts(await whmcs_driver.send(user, "/unlink"))[-1]


async def test_whmcs_down_while_linking_tells_the_staff_once(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice_of(whmcs)
    user = whmcs_driver.user(501)
    await whmcs_driver.send(user, "/link")
    await whmcs.go_down()
    for _ in range(3):
        answer = texts(await whmcs_driver.send(user, "alice@example.com"))
        assert UNAVAILABLE in answer[0]
    async with whmcs_driver.gateway.local.transaction() as billing:
        rows = list(await billing.session.scalars(select(m.OutboxMessage)))  # type: ignore[attr-defined]
    staff = [row for row in rows if row.chat_id == -1001]
    assert len(staff) == 1 and (staff[0].idempotency_key or "").startswith(
        "billing_unavailable:unreachable:"
    )
    await whmcs.come_back()
    answer = texts(await whmcs_driver.send(user, "alice@example.com"))  # still in the dialog
    assert "If this address belongs to an account" in answer[0]
    assert len(whmcs.emails) == 1


async def test_the_embedded_billing_never_offers_linking(driver: BotDriver) -> None:
    """Its accounts are the clients: a /start payload is a plain /start, /link says so."""
    user = driver.user(601)
    calls = await driver.send(user, "/start sometoken")
    assert "Personal cabinet" in (calls[-1].text or "")
    assert "already linked" in texts(await driver.send(user, "/link"))[-1]
    assert "not linked to a billing account" in texts(await driver.send(user, "/unlink"))[-1]
    settings = await driver.send(user, "/settings")
    assert not any("Unlink" in label for label in settings[-1].button_texts())


async def test_the_menu_says_the_balance_is_unavailable_while_whmcs_is_down(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice = alice_of(whmcs)
    user = whmcs_driver.user(501)
    await whmcs_driver.send(user, "/start")
    billing = per_call(whmcs_driver.gateway.local)
    account = await billing.find_account_by_telegram(501)
    assert account is not None
    await billing.link_billing_client(account.id, alice.id)
    assert "$12.50" in texts(await whmcs_driver.send(user, "/menu"))[-1]
    await whmcs.go_down()
    whmcs_driver.gateway.core._client_changed(alice.id)
    menu = texts(await whmcs_driver.send(user, "/menu"))[-1]
    assert "Balance: <b>unavailable right now</b>" in menu
    await whmcs.come_back()
    assert "$12.50" in texts(await whmcs_driver.send(user, "/menu"))[-1]


async def test_the_code_email_is_in_the_users_language(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    alice_of(whmcs)
    user = whmcs_driver.user(502, language_code="ru")
    await whmcs_driver.send(user, "/start")
    await ask_code(whmcs_driver, user, "alice@example.com")
    [letter] = whmcs.emails
    assert letter.subject == "Код для привязки Telegram"
    assert "Код для привязки Telegram к вашей учётной записи" in letter.message
    assert re.search(r"<b>\d{6}</b>", letter.message)
    assert "{code}" not in letter.message and "{minutes}" not in letter.message
