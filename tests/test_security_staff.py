"""Who counts as staff (issue 11): the staff group's administrators and creator, STAFF_IDS and
ADMIN_IDS — plain and restricted members are not; `chat_member` updates change that at once;
and /verify is limited per customer, in the database (restarts, several instances)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.factory import create_bot, create_dispatcher, create_gateway
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.security import hash_secret_sync
from tests.conftest import _gateway, make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.telegram import Call, Chat, FakeTelegram, User
from tests.test_tickets_handlers import STAFF, open_ticket, sends, staff_forum, tickets_in_db

CUSTOMER = 501
ANNA = User(id=77, first_name="Anna")
MIKE = User(id=78, first_name="Mike")
AGENT = User(id=4242, first_name="Agent")  # in STAFF_IDS, not an admin of the group
ADMIN = User(id=9001, first_name="Boss")
ANONYMOUS = User(id=1087968824, first_name="Group")  # Telegram's GroupAnonymousBot
STAFF_ONLY = "⛔ Only support staff can use this command."
REFUSED = (
    "⛔ Not checked (ticket #1): a customer's code word can be checked at most 3 times per "
    "60 minutes.\nThe next check is possible in 60 minutes."
)
NOTICE = (
    "🚨 The code word of account #1 (ticket #1) was checked 3 times within 60 minutes; further "
    "checks are refused for now. If that was not your team, someone may be trying to guess it."
)


@pytest.fixture
async def staff_driver(sqlite_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[BotDriver]:
    """The production dispatcher with STAFF_IDS set."""
    settings = make_settings(sqlite_url, staff_ids="4242, 4343")
    gateway = await _gateway(sqlite_url)
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    drv = BotDriver(create_dispatcher(settings, gateway), bot, fake_telegram, gateway)
    yield drv
    drv.close()
    await gateway.close()


async def forum_ticket(driver: BotDriver) -> Chat:
    group = staff_forum(driver)
    await open_ticket(driver, driver.user(CUSTOMER))
    return group


def replies(calls: list[Call]) -> list[str]:
    return [c.text for c in sends(calls, STAFF)]


def to_customer(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.get("chat_id") == CUSTOMER]


async def test_plain_and_restricted_members_are_not_staff(driver: BotDriver) -> None:
    group = await forum_ticket(driver)
    user = User(id=CUSTOMER)
    async with driver.gateway.transaction() as billing:
        invoice = await billing.create_invoice(1, 1000, "EUR")
    await driver.feed(driver.fake.successful_payment(user, "XTR", 500, invoice.payload, "st-1"))
    async with driver.gateway.transaction() as billing:
        assert (await billing.get_account(1)).balance_minor == 1000
    driver.fake.set_member(STAFF, ANNA.id, "member")
    driver.fake.set_member(STAFF, MIKE.id, "restricted")

    for person in (ANNA, MIKE):
        for command in ("/info", "/close"):
            calls = await driver.send(person, command, chat=group, thread_id=100)
            assert replies(calls) == [STAFF_ONLY], (person.id, command)
            assert to_customer(calls) == []
        calls = await driver.send(person, "/refund st-1", chat=group, thread_id=100)
        assert [c.method for c in calls if c.method != "getChatMember"] == []  # ignored
        calls = await driver.send(person, "Hello from a member", chat=group, thread_id=100)
        assert [c.method for c in calls if c.method != "getChatMember"] == []  # not relayed
        calls = await driver.send(person, "/verify anything", chat=group, thread_id=100)
        assert replies(calls) == [STAFF_ONLY]
    # One lookup per person: the refusal is cached like any answer.
    assert [c["user_id"] for c in driver.fake.calls_of("getChatMember")] == [ANNA.id, MIKE.id]

    [ticket] = await tickets_in_db(driver)
    assert ticket.status == "open"
    assert driver.fake.refunds == []
    async with driver.gateway.transaction() as billing:
        assert (await billing.get_account(1)).balance_minor == 1000
        thread = await billing.staff_ticket_messages(1)
        checks = (await billing.session.scalars(select(m.CodeWordCheck))).all()
    assert [x.author for x in thread] == ["customer"]
    assert checks == []  # a refused outsider does not use up the customer's checks


async def test_administrators_creator_and_anonymous_admins_are_staff(driver: BotDriver) -> None:
    group = await forum_ticket(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    driver.fake.set_member(STAFF, MIKE.id, "creator")
    for person in (ANNA, MIKE):
        calls = await driver.send(person, "/info", chat=group, thread_id=100)
        assert replies(calls)[0].startswith("👤 <b>Account #1</b> <code>tg501</code>\n")
    calls = await driver.send(
        ANONYMOUS, "/info", chat=group, thread_id=100, extra={"sender_chat": group.as_dict()}
    )
    assert replies(calls)[0].startswith("👤 <b>Account #1</b>")
    # Posting as another chat (a channel) is not the group's anonymous admin.
    channel = {"id": -100777, "type": "channel", "title": "Some channel"}
    calls = await driver.send(
        ANONYMOUS, "/info", chat=group, thread_id=100, extra={"sender_chat": channel}
    )
    assert replies(calls) == [STAFF_ONLY]
    # Administrators of the group are still not ADMIN_IDS.
    calls = await driver.send(ANNA, "/credit 1 10 gift", chat=group, thread_id=100)
    assert replies(calls) == ["⛔ Only administrators can use this command."]
    async with driver.gateway.transaction() as billing:
        assert (await billing.get_account(1)).balance_minor == 0


async def test_a_demoted_or_removed_admin_loses_access_at_once(driver: BotDriver) -> None:
    group = await forum_ticket(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert replies(calls)[0].startswith("👤 <b>Account #1</b>")
    assert len(driver.fake.calls_of("getChatMember")) == 1

    # Demoted: the chat_member update arrives; the cached answer is not trusted any longer.
    assert await driver.feed(driver.fake.member_changed(group, ANNA, "member", by=MIKE)) == []
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=100)
    assert replies(calls) == [STAFF_ONLY]
    calls = await driver.send(ANNA, "Still here", chat=group, thread_id=100)
    assert calls == []
    assert len(driver.fake.calls_of("getChatMember")) == 1  # the update answered, no lookup

    # Promoted again, then removed from the group.
    await driver.feed(driver.fake.member_changed(group, ANNA, "administrator", by=MIKE))
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert replies(calls)[0].startswith("👤 <b>Account #1</b>")
    for status in ("left", "kicked"):
        await driver.feed(driver.fake.member_changed(group, ANNA, status, by=MIKE))
        calls = await driver.send(ANNA, "/close", chat=group, thread_id=100)
        assert replies(calls) == [STAFF_ONLY], status
        await driver.feed(driver.fake.member_changed(group, ANNA, "administrator", by=MIKE))
    assert len(driver.fake.calls_of("getChatMember")) == 1
    [ticket] = await tickets_in_db(driver)
    assert ticket.status == "open"


async def test_a_promoted_member_gains_access_at_once(driver: BotDriver) -> None:
    group = await forum_ticket(driver)
    driver.fake.set_member(STAFF, ANNA.id, "member")
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert replies(calls) == [STAFF_ONLY]  # cached as "not staff"

    await driver.feed(driver.fake.member_changed(group, ANNA, "administrator", by=MIKE))
    calls = await driver.send(ANNA, "We are on it", chat=group, thread_id=100)
    assert [(c.method, c["chat_id"], c.text) for c in calls] == [
        (
            "sendMessage",
            CUSTOMER,
            "💬 <b>Support</b> answered in ticket #1 «Invoice question»:\n\nWe are on it",
        ),
        ("editForumTopic", STAFF, None),  # the title's mark: answered
    ]
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=100)
    assert replies(calls) == ["✅ Ticket #1 is closed.\nThe customer was notified."]
    assert len(driver.fake.calls_of("getChatMember")) == 1


async def test_membership_answers_expire_and_updates_of_other_chats_change_nothing(
    driver: BotDriver,
) -> None:
    group = await forum_ticket(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    await driver.send(ANNA, "/info", chat=group, thread_id=100)
    other = driver.fake.add_chat(Chat(id=-2002, type="supergroup", title="Other"))
    assert await driver.feed(driver.fake.member_changed(other, ANNA, "left")) == []
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert replies(calls)[0].startswith("👤 <b>Account #1</b>")

    # Without an update (the bot missed it), a demotion counts within the cache's lifetime.
    driver.fake.set_member(STAFF, ANNA.id, "member")
    roster = driver.dp["staff_roster"]
    now = roster.clock()
    roster.clock = lambda: now + 61
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert replies(calls) == [STAFF_ONLY]
    assert len(driver.fake.calls_of("getChatMember")) == 2


async def test_the_bot_losing_admin_rights_drops_every_cached_answer(driver: BotDriver) -> None:
    group = await forum_ticket(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    await driver.send(ANNA, "/info", chat=group, thread_id=100)
    bot_user = User(id=driver.bot.id, first_name="Cabinet")
    update = driver.fake.member_changed(group, bot_user, "member", by=MIKE)
    update["my_chat_member"] = update.pop("chat_member")
    update["my_chat_member"]["new_chat_member"]["user"]["is_bot"] = True
    update["my_chat_member"]["old_chat_member"]["user"]["is_bot"] = True
    assert await driver.feed(update) == []
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert [c.method for c in calls] == ["getChatMember", "sendMessage"]


async def test_staff_ids_are_staff_without_being_group_admins(staff_driver: BotDriver) -> None:
    driver = staff_driver
    group = await forum_ticket(driver)  # AGENT is not even a member of the group
    calls = await driver.send(AGENT, "/info", chat=group, thread_id=100)
    assert replies(calls)[0].startswith("👤 <b>Account #1</b>")
    calls = await driver.send(AGENT, "On it", chat=group, thread_id=100)
    assert [(c.method, c["chat_id"]) for c in calls] == [
        ("sendMessage", CUSTOMER),
        ("editForumTopic", STAFF),  # the title's mark: answered
    ]
    calls = await driver.send(AGENT, "/credit 1 10 gift", chat=group, thread_id=100)
    assert replies(calls) == ["⛔ Only administrators can use this command."]
    assert driver.fake.calls_of("getChatMember") == []
    # Outside the staff group STAFF_IDS have no staff commands either.
    driver.user(AGENT.id)
    calls = await driver.send(AGENT, "/info")
    assert [c.text for c in calls] == [
        "This command is for support staff and works only in the staff group."
    ]


def test_chat_member_updates_are_asked_for() -> None:
    """Telegram delivers chat_member only when allowed_updates lists it; polling and setWebhook
    both use the dispatcher's resolved update types."""
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    dp = create_dispatcher(settings, create_gateway(settings))
    used = dp.resolve_used_update_types()
    assert {"chat_member", "my_chat_member", "message", "callback_query"} <= set(used)


# ---- /verify ------------------------------------------------------------------------------------
async def _set_code_word(gateway: EmbeddedGateway, account_id: int, word: str) -> None:
    async with gateway.transaction() as billing:
        row = await billing.session.get(m.Account, account_id)
        assert row is not None
        row.code_word_hash = hash_secret_sync(word)


async def test_verify_is_refused_after_three_tries_an_hour_and_staff_are_told_once(
    db_driver: BotDriver,
) -> None:
    driver = db_driver
    group = await forum_ticket(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    driver.fake.set_member(STAFF, MIKE.id, "administrator")
    await _set_code_word(driver.gateway, 1, "blue falcon")

    answers = []
    for person, word in [(ANNA, "red falcon"), (MIKE, "green falcon"), (ANNA, "blue falcon")]:
        calls = await driver.send(person, f"/verify {word}", chat=group, thread_id=100)
        answers.append(replies(calls))
    assert answers == [
        ["❌ The code word does not match (ticket #1)."],
        ["❌ The code word does not match (ticket #1)."],
        ["✅ The code word matches (ticket #1)."],
    ]

    fourth = driver.fake.user_message(ANNA, "/verify black falcon", chat=group, thread_id=100)
    calls = await driver.feed(fourth)
    assert [c.method for c in calls] == ["deleteMessage", "sendMessage", "sendMessage"]
    assert calls[0]["message_id"] == fourth["message"]["message_id"]  # the guess is gone
    assert [(c.text, c["message_thread_id"]) for c in calls[1:]] == [
        (REFUSED, 100),
        (NOTICE, 100),
    ]
    assert to_customer(calls) == []

    # Later refusals are answered, but the group is told only once.
    calls = await driver.send(MIKE, "/verify blue falcon", chat=group, thread_id=100)
    assert [c.method for c in calls] == ["deleteMessage", "sendMessage"]
    assert replies(calls) == [REFUSED]
    assert not any("falcon" in str(c.params) for c in driver.fake.calls)

    # A restart (a new dispatcher on the same database) keeps the count.
    restarted = BotDriver(
        create_dispatcher(driver.dp["settings"], driver.gateway),
        driver.bot,
        driver.fake,
        driver.gateway,
    )
    try:
        calls = await restarted.send(ANNA, "/verify blue falcon", chat=group, thread_id=100)
    finally:
        restarted.close()
    assert replies(calls) == [REFUSED]

    # An hour after the first try, one check is possible again; the next limit is told again.
    async with driver.gateway.transaction() as billing:
        first = await billing.session.scalar(
            select(m.CodeWordCheck.id).order_by(m.CodeWordCheck.id).limit(1)
        )
        await billing.session.execute(
            update(m.CodeWordCheck)
            .where(m.CodeWordCheck.id == first)
            .values(checked_at=m.utcnow() - timedelta(minutes=61))
        )
    calls = await driver.send(ANNA, "/verify blue falcon", chat=group, thread_id=100)
    assert replies(calls) == ["✅ The code word matches (ticket #1)."]
    calls = await driver.send(ANNA, "/verify blue falcon", chat=group, thread_id=100)
    assert replies(calls)[0].startswith(
        "⛔ Not checked (ticket #1): a customer's code word can be checked at most 3 times"
    )
    assert replies(calls)[1] == NOTICE
    async with driver.gateway.transaction() as billing:
        rows = (await billing.session.scalars(select(m.CodeWordCheck))).all()
    # Pruned to the window: the counted checks in it and one refusal per lockout.
    assert sorted((r.refused, r.staff_user_id) for r in rows) == [
        (False, ANNA.id),
        (False, ANNA.id),
        (False, MIKE.id),
        (True, ANNA.id),
        (True, ANNA.id),
    ]


async def test_verify_limit_is_per_customer_and_in_russian(
    sqlite_url: str, fake_telegram: FakeTelegram
) -> None:
    settings = make_settings(
        sqlite_url, default_language="ru", verify_max_attempts=1, verify_window_minutes=30
    )
    gateway = await _gateway(sqlite_url)
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    driver = BotDriver(create_dispatcher(settings, gateway), bot, fake_telegram, gateway)
    try:
        group = staff_forum(driver)
        driver.fake.set_member(STAFF, ANNA.id, "administrator")
        await open_ticket(driver, driver.user(CUSTOMER))
        await open_ticket(driver, driver.user(502), subject="Second one")
        await driver.send(ANNA, "/verify one", chat=group, thread_id=100)
        calls = await driver.send(ANNA, "/verify two", chat=group, thread_id=100)
        assert replies(calls) == [
            "⛔ Не проверено (обращение #1): кодовое слово клиента можно проверять не больше 1 "
            "раза за 30 минут.\nСледующая проверка возможна через 30 минут.",
            "🚨 Кодовое слово аккаунта #1 (обращение #1) проверили 1 раз за 30 минут, и новые "
            "проверки пока отклоняются. Если это были не сотрудники поддержки, возможно, кто-то "
            "пытается его подобрать.",
        ]
        calls = await driver.send(ANNA, "/verify one", chat=group, thread_id=101)
        assert replies(calls) == ["❌ Кодовое слово не совпадает (обращение #2)."]
    finally:
        driver.close()
        await gateway.close()


async def test_concurrent_checks_on_two_instances_never_exceed_the_limit(
    gateway: EmbeddedGateway, database_url: str
) -> None:
    other = create_gateway(make_settings(database_url))  # a second bot instance
    try:
        async with gateway.transaction() as billing:
            account, _created = await billing.get_or_create_account(601, 601, name="C")
        window = timedelta(hours=1)

        async def take(gw: EmbeddedGateway, staff_id: int):  # type: ignore[no-untyped-def]
            async with gw.transaction() as billing:
                return await billing.take_code_word_attempt(
                    account.id, staff_id, limit=3, window=window
                )

        results = await asyncio.gather(*(take((gateway, other)[i % 2], i) for i in range(8)))
        assert sorted(r.allowed for r in results) == [False] * 5 + [True] * 3
        assert sorted(r.left for r in results if r.allowed) == [0, 1, 2]
        assert [r.first_refusal for r in results].count(True) == 1
        assert all(3590 <= r.retry_after_seconds <= 3600 for r in results if not r.allowed)
        async with gateway.transaction() as billing:
            rows = (await billing.session.scalars(select(m.CodeWordCheck))).all()
        assert sorted(r.refused for r in rows) == [False, False, False, True]
    finally:
        await other.close()
