"""Per-customer limits (issue 11): open tickets and new tickets per hour (refused with a clear
message, no topic in the staff group), one invoice for a repeated top-up and a cap on unpaid
ones, and dialogs (FSM) that expire — in memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy import func, select, update

from bot.factory import billing_config, create_storage
from bot.fsm_storage import ExpiringMemoryStorage
from handlers.tickets_new import NewTicket
from keyboards.payments import TopupAmountCb, TopupCurrencyCb
from keyboards.tickets import TicketDeptCb, TicketDraftCb
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.errors import LimitReached
from tests.conftest import make_settings
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, Chat, User

STAFF = -1001
REDIS_URL = "redis://127.0.0.1:6379/0"
PROFILE = {
    "last_name": "Ivanov",
    "first_name": "Ivan",
    "email": "ivan@example.com",
    "city": "Moscow",
    "address": "Tverskaya 1",
}
TEXTS = {
    "en": {
        "open": "⚠️ You already have 3 open tickets. Please write in one of them, or close those "
        "that are solved, before opening a new one.",
        "hourly": "You can open at most 5 tickets an hour. Please try again in {minutes} min, or "
        "write in a ticket that is open.",
        "buttons": ["💬 Tickets", "⬅️ Main menu"],
        "created": "✅ Ticket #{id} is created. Support will answer here, in this chat.",
        "invoices": "⚠️ You already have 5 unpaid top-up invoices. Please pay or cancel one of "
        "them before creating a new one.",
        "invoice_buttons": ["🧾 Invoices", "⬅️ Main menu"],
        "new_invoice": "Invoice created.",
        "same_invoice": "You already have this invoice: here it is.",
    },
    "ru": {
        "open": "⚠️ У вас уже 3 открытых обращения. Напишите в одно из них или закройте "
        "решённые, прежде чем создавать новое.",
        "hourly": "Можно создать не больше 5 обращений в час. Попробуйте снова через {minutes} "
        "мин или напишите в открытое обращение.",
        "buttons": ["💬 Обращения", "⬅️ Главное меню"],
        "created": "✅ Обращение #{id} создано. Поддержка ответит здесь, в этом чате.",
        "invoices": "⚠️ У вас уже 5 неоплаченных счетов на пополнение. Оплатите или отмените "
        "один из них, прежде чем создавать новый.",
        "invoice_buttons": ["🧾 Счета", "⬅️ Главное меню"],
        "new_invoice": "Счёт выставлен.",
        "same_invoice": "Этот счёт уже выставлен: вот он.",
    },
}


def shown(calls: list[Call]) -> Call:
    found = [c for c in calls if c.method in ("sendMessage", "editMessageText") and not c.error]
    assert found, [(c.method, c.params) for c in calls]
    return found[-1]


def alert(calls: list[Call]) -> str:
    return next(c for c in calls if c.method == "answerCallbackQuery")["text"]


def topics(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.method == "createForumTopic"]


async def account_id_of(driver: BotDriver, telegram_id: int) -> int:
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(telegram_id)
        assert account is not None
        return account.id


async def count(driver: BotDriver, model: type[m.Base], account_id: int, *where: object) -> int:
    async with driver.gateway.transaction() as billing:
        total = await billing.session.scalar(
            select(func.count()).select_from(model).where(model.account_id == account_id, *where)  # type: ignore[attr-defined]
        )
    return int(total or 0)


# ---- tickets ------------------------------------------------------------------------------------
async def draft(driver: BotDriver, user: User, subject: str) -> Call:
    """The new-ticket dialog up to the draft with its «Create ticket» button."""
    calls = await driver.send(user, "/newticket")
    await driver.press(user, shown(calls), TicketDeptCb(department="tech").pack())
    await driver.send(user, subject)
    return shown(await driver.send(user, "The server does not answer"))


async def create(driver: BotDriver, user: User, subject: str) -> list[Call]:
    return await driver.press(
        user, await draft(driver, user, subject), TicketDraftCb(action="send").pack()
    )


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_the_fourth_open_ticket_is_refused_and_opens_no_topic(
    driver: BotDriver, lang: str
) -> None:
    driver.fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff", is_forum=True))
    user = driver.user(5101, language_code=lang)
    for index in range(3):
        assert len(topics(await create(driver, user, f"Question {index}"))) == 1
    account_id = await account_id_of(driver, 5101)

    # Asked before the dialog: nobody writes a ticket that cannot be created.
    calls = await driver.send(user, "/newticket")
    refusal = shown(calls)
    assert (refusal.text, refusal.button_texts()) == (TEXTS[lang]["open"], TEXTS[lang]["buttons"])
    context = driver.dp.fsm.get_context(driver.bot, chat_id=5101, user_id=5101)
    assert await context.get_state() is None
    assert len(topics(driver.fake.calls)) == 3
    assert await count(driver, m.Ticket, account_id) == 3

    # Closing one frees a slot.
    async with driver.gateway.transaction() as billing:
        await billing.close_ticket(account_id, 1)
    calls = await create(driver, user, "Question 3")
    assert len(topics(calls)) == 1
    assert shown(calls).text == TEXTS[lang]["created"].format(id=4)


async def test_a_draft_created_after_the_limit_was_reached_elsewhere_is_kept(
    driver: BotDriver,
) -> None:
    """The limit holds at «Create» too (another instance, another chat): the alert says why,
    no topic is opened, and the draft stays for when a slot is free again."""
    driver.fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff", is_forum=True))
    user = driver.user(5102)
    for index in range(2):
        await create(driver, user, f"Question {index}")
    account_id = await account_id_of(driver, 5102)
    pending = await draft(driver, user, "Third one")
    async with driver.gateway.transaction() as billing:
        await billing.create_ticket(account_id, "billing", "From elsewhere", "text")

    calls = await driver.press(user, pending, TicketDraftCb(action="send").pack())
    assert alert(calls) == TEXTS["en"]["open"].removeprefix("⚠️ ")
    assert topics(calls) == [] and not [c for c in calls if c.method == "sendMessage"]
    context = driver.dp.fsm.get_context(driver.bot, chat_id=5102, user_id=5102)
    assert await context.get_state() == NewTicket.message.state
    assert await count(driver, m.Ticket, account_id) == 3

    async with driver.gateway.transaction() as billing:
        await billing.close_ticket(account_id, 3)
    calls = await driver.press(user, pending, TicketDraftCb(action="send").pack())
    assert len(topics(calls)) == 1
    assert shown(calls).text == TEXTS["en"]["created"].format(id=4)


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_the_sixth_ticket_within_an_hour_is_refused(driver: BotDriver, lang: str) -> None:
    driver.fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff", is_forum=True))
    user = driver.user(5103, language_code=lang)
    await driver.send(user, "/start")
    account_id = await account_id_of(driver, 5103)
    for index in range(5):
        calls = await create(driver, user, f"Question {index}")
        assert len(topics(calls)) == 1
        async with driver.gateway.transaction() as billing:  # under the open-tickets limit
            await billing.close_ticket(account_id, index + 1)
    # The first one was opened 50 minutes ago: a slot frees in 10 minutes.
    async with driver.gateway.transaction() as billing:
        first = await billing.session.get(m.Ticket, 1)
        assert first is not None
        await billing.session.execute(
            update(m.Ticket)
            .where(m.Ticket.id == 1)
            .values(created_at=first.created_at - timedelta(minutes=50))
        )
    refusal = shown(await driver.send(user, "/newticket"))
    assert refusal.text == "⚠️ " + TEXTS[lang]["hourly"].format(minutes=10)
    assert refusal.button_texts() == TEXTS[lang]["buttons"]
    assert len(topics(driver.fake.calls)) == 5
    assert await count(driver, m.Ticket, account_id) == 5

    # An hour after the first, the sixth is created.
    async with driver.gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Ticket)
            .where(m.Ticket.id == 1)
            .values(created_at=first.created_at - timedelta(minutes=61))
        )
    calls = await create(driver, user, "Question 5")
    assert len(topics(calls)) == 1
    assert shown(calls).text == TEXTS[lang]["created"].format(id=6)


async def test_ticket_limits_hold_for_concurrent_creates(gateway: EmbeddedGateway) -> None:
    """Two instances creating at the same moment: the one that comes second waits for the
    first to commit, then finds the last slot taken."""
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(5104, 5104, name="Ann")
        for index in range(2):
            await billing.create_ticket(account.id, "tech", f"Question {index}", "text")

    async def other_instance() -> object:
        try:
            async with gateway.transaction() as billing:
                return await billing.create_ticket(account.id, "tech", "Second", "text")
        except LimitReached as error:
            return error

    async with gateway.transaction() as billing:
        await billing.create_ticket(account.id, "tech", "First", "text")
        second = asyncio.create_task(other_instance())
        await asyncio.sleep(0.3)  # it runs as far as it can while this one is still open
        assert not second.done()
    result = await second
    assert isinstance(result, LimitReached)
    assert (result.detail, result.limit) == ("open_tickets", 3)
    async with gateway.transaction() as billing:
        page = await billing.list_tickets(account.id, 0, 10)
    assert [t.subject for t in page.items] == ["First", "Question 1", "Question 0"]


async def test_the_hourly_limit_counts_closed_tickets_and_tells_when(
    gateway: EmbeddedGateway,
) -> None:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(5105, 5105, name="Ann")
        for index in range(5):
            ticket = await billing.create_ticket(account.id, "tech", f"Question {index}", "t")
            await billing.close_ticket(account.id, ticket.id)
        with pytest.raises(LimitReached) as info:
            await billing.create_ticket(account.id, "tech", "One more", "text")
        with pytest.raises(LimitReached):
            await billing.check_new_ticket(account.id)
    assert (info.value.detail, info.value.limit) == ("tickets_per_hour", 5)
    assert 3590 <= info.value.retry_after <= 3600


# ---- invoices -----------------------------------------------------------------------------------
async def customer(driver: BotDriver, user_id: int, lang: str = "en") -> tuple[User, int]:
    user = driver.user(user_id, language_code=lang)
    await driver.send(user, "/start")
    account_id = await account_id_of(driver, user_id)
    async with driver.gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Account).where(m.Account.id == account_id).values(**PROFILE)
        )
    return user, account_id


async def top_up(
    driver: BotDriver, user: User, amount_minor: int, currency: str = "EUR"
) -> list[Call]:
    chooser = shown(await driver.send(user, "/topup"))
    prompt = shown(await driver.press(user, chooser, TopupCurrencyCb(currency=currency).pack()))
    return await driver.press(
        user, prompt, TopupAmountCb(currency=currency, amount_minor=amount_minor).pack()
    )


async def unpaid(driver: BotDriver, account_id: int) -> int:
    return await count(driver, m.Invoice, account_id, m.Invoice.status == "unpaid")


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_a_repeated_top_up_reuses_the_open_invoice(driver: BotDriver, lang: str) -> None:
    user, account_id = await customer(driver, 5201, lang)
    first = await top_up(driver, user, 1000)
    assert alert(first) == TEXTS[lang]["new_invoice"]
    for _ in range(3):
        again = await top_up(driver, user, 1000)
        assert alert(again) == TEXTS[lang]["same_invoice"]
        assert shown(again).text == shown(first).text
        assert shown(again).button_texts() == shown(first).button_texts()
    # The same amount typed in the dialog: the same invoice again.
    chooser = shown(await driver.send(user, "/topup"))
    await driver.press(user, chooser, TopupCurrencyCb(currency="EUR").pack())
    assert shown(await driver.send(user, "10")).text == shown(first).text
    assert await count(driver, m.Invoice, account_id) == 1

    # Another amount or currency is another invoice; a paid or cancelled one is not reused.
    assert alert(await top_up(driver, user, 2000)) == TEXTS[lang]["new_invoice"]
    assert alert(await top_up(driver, user, 1080, "USD")) == TEXTS[lang]["new_invoice"]
    async with driver.gateway.transaction() as billing:
        await billing.cancel_invoice(account_id, 1)
    assert alert(await top_up(driver, user, 1000)) == TEXTS[lang]["new_invoice"]
    assert await count(driver, m.Invoice, account_id) == 4


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_unpaid_top_up_invoices_are_capped(driver: BotDriver, lang: str) -> None:
    user, account_id = await customer(driver, 5202, lang)
    for amount in (1000, 2000, 3000, 4000, 5000):
        assert alert(await top_up(driver, user, amount)) == TEXTS[lang]["new_invoice"]
    refused = await top_up(driver, user, 6000)
    assert shown(refused).text == TEXTS[lang]["invoices"]
    assert shown(refused).button_texts() == TEXTS[lang]["invoice_buttons"]
    assert await unpaid(driver, account_id) == 5
    # A typed amount is refused the same way, and the dialog ends.
    chooser = shown(await driver.send(user, "/topup"))
    await driver.press(user, chooser, TopupCurrencyCb(currency="EUR").pack())
    assert shown(await driver.send(user, "70")).text == TEXTS[lang]["invoices"]
    context = driver.dp.fsm.get_context(driver.bot, chat_id=5202, user_id=5202)
    assert await context.get_state() is None
    # At the cap, an open one is still shown again; paying or cancelling one frees a place.
    assert alert(await top_up(driver, user, 3000)) == TEXTS[lang]["same_invoice"]
    async with driver.gateway.transaction() as billing:
        await billing.record_payment(
            account_id, 1, currency="EUR", total_amount=1000, charge_id="cap-1"
        )
    assert alert(await top_up(driver, user, 6000)) == TEXTS[lang]["new_invoice"]
    assert await unpaid(driver, account_id) == 5
    assert await count(driver, m.Invoice, account_id) == 6


async def test_concurrent_identical_top_ups_issue_one_invoice(gateway: EmbeddedGateway) -> None:
    """A double click handled by two instances at once: one invoice, shown to both."""
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(5203, 5203, name="Ann")

    async def other_instance() -> tuple[int, bool]:
        async with gateway.transaction() as billing:
            invoice, created = await billing.topup_invoice(account.id, 1500, "EUR")
            return invoice.id, created

    async with gateway.transaction() as billing:
        invoice, created = await billing.topup_invoice(account.id, 1500, "EUR")
        second = asyncio.create_task(other_instance())
        await asyncio.sleep(0.3)
        assert not second.done()
    assert (invoice.id, created) == (1, True)
    assert await second == (1, False)
    async with gateway.transaction() as billing:
        assert (await billing.list_invoices(account.id)).total == 1


async def test_the_invoice_cap_counts_top_ups_only(gateway: EmbeddedGateway) -> None:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(5204, 5204, name="Ann")
        for amount in range(1, 6):
            await billing.topup_invoice(account.id, amount * 100, "EUR")
        with pytest.raises(LimitReached) as info:
            await billing.topup_invoice(account.id, 900, "EUR")
        await billing.create_invoice(account.id, 900, "EUR", purpose="order")  # not a top-up
    assert (info.value.detail, info.value.limit) == ("open_invoices", 5)


def test_limit_settings_and_their_defaults(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url)
    assert (
        settings.max_open_tickets,
        settings.max_tickets_per_hour,
        settings.max_open_invoices,
        settings.fsm_ttl_seconds,
        settings.throttle_rate,
        settings.throttle_burst,
    ) == (3, 5, 5, 3600, 3, 10)
    config = billing_config(
        make_settings(sqlite_url, max_open_tickets=1, max_tickets_per_hour=0, max_open_invoices=9)
    )
    assert (config.max_open_tickets, config.max_tickets_per_hour, config.max_open_invoices) == (
        1,
        0,
        9,
    )


# ---- dialogs expire -----------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_storage_forgets_dialogs_after_the_ttl_and_stays_bounded() -> None:
    from aiogram.fsm.storage.base import StorageKey

    clock = Clock()
    storage = ExpiringMemoryStorage(600, max_records=50, clock=clock)
    key = StorageKey(bot_id=1, chat_id=10, user_id=10)
    assert await storage.get_state(key) is None and await storage.get_data(key) == {}
    assert storage.records == {}  # asking creates nothing
    await storage.set_state(key, "Form:step")
    await storage.set_data(key, {"step": 2})
    clock.now += 599
    assert await storage.get_state(key) == "Form:step"
    assert await storage.get_value(key, "step") == 2
    await storage.update_data(key, {"more": True})  # a change: the dialog lives on
    clock.now += 599
    assert await storage.get_data(key) == {"step": 2, "more": True}
    clock.now += 2
    assert await storage.get_state(key) is None
    assert await storage.get_data(key) == {}
    assert await storage.get_value(key, "step", "gone") == "gone"

    # Clearing removes the record; many users' stale dialogs are forgotten, the newest kept.
    await storage.set_state(key, "Form:step")
    await storage.set_state(key, None)
    await storage.set_data(key, {})
    assert storage.records == {}
    for user_id in range(200):
        await storage.set_state(StorageKey(bot_id=1, chat_id=user_id, user_id=user_id), "F:s")
    assert len(storage.records) == 50
    assert await storage.get_state(StorageKey(bot_id=1, chat_id=199, user_id=199)) == "F:s"
    assert await storage.get_state(StorageKey(bot_id=1, chat_id=0, user_id=0)) is None
    clock.now += 601
    await storage.set_state(key, "Form:step")
    assert list(storage.records) == [key]


async def test_an_expired_dialog_no_longer_takes_the_answer(driver: BotDriver) -> None:
    storage = driver.dp.storage
    assert isinstance(storage, ExpiringMemoryStorage) and storage.ttl == 3600
    clock = Clock()
    storage.clock = clock
    user, account_id = await customer(driver, 5301)
    chooser = shown(await driver.send(user, "/topup"))
    await driver.press(user, chooser, TopupCurrencyCb(currency="EUR").pack())
    clock.now += 3601  # the amount prompt was left an hour ago
    calls = await driver.send(user, "25")
    assert shown(calls).text.startswith("I did not understand that.")
    assert await count(driver, m.Invoice, account_id) == 0
    # Within the hour, the answer is taken.
    chooser = shown(await driver.send(user, "/topup"))
    await driver.press(user, chooser, TopupCurrencyCb(currency="EUR").pack())
    clock.now += 3500
    assert shown(await driver.send(user, "25")).text.startswith("🧾 <b>Invoice No.")
    assert await count(driver, m.Invoice, account_id) == 1


async def test_redis_storage_gives_state_and_data_the_ttl(sqlite_url: str) -> None:
    storage = create_storage(make_settings(sqlite_url, redis_url=REDIS_URL, fsm_ttl_seconds=120))
    assert isinstance(storage, RedisStorage)
    assert (storage.state_ttl, storage.data_ttl) == (120, 120)
    storage.key_builder.prefix = f"test-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    from aiogram.fsm.storage.base import StorageKey

    key = StorageKey(bot_id=1, chat_id=5302, user_id=5302)
    try:
        await storage.set_state(key, "Form:step")
        await storage.set_data(key, {"step": 2})
        for part in ("state", "data"):
            ttl = await storage.redis.ttl(storage.key_builder.build(key, part))  # type: ignore[arg-type]
            assert 0 < ttl <= 120, part
        assert await storage.get_state(key) == "Form:step"
        # What Redis does when the TTL runs out: both are gone.
        for part in ("state", "data"):
            await storage.redis.pexpire(storage.key_builder.build(key, part), 1)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert await storage.get_state(key) is None and await storage.get_data(key) == {}
    finally:
        await storage.set_state(key, None)
        await storage.set_data(key, {})
        await storage.close()
    # Without REDIS_URL: the expiring memory storage, with the same TTL.
    memory = create_storage(make_settings(sqlite_url, fsm_ttl_seconds=120))
    assert isinstance(memory, ExpiringMemoryStorage) and memory.ttl == 120
