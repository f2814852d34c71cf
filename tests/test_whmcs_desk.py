"""The staff desk in front of WHMCS, through the production dispatcher: a ticket opened in
Telegram gets its topic in the staff group, a staff answer there becomes AddTicketReply with
the staff member's WHMCS admin, and a reply written in WHMCS's admin area reaches the customer
once, by the sync job."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.scheduler import add_jobs
from keyboards.tickets import answer_kb
from services.outbox import OutboxSender
from services.whmcs.ticket_sync import sync_ticket_replies, ticket_sync_job
from tests.harness.driver import BotDriver
from tests.harness.telegram import User
from tests.harness.whmcs import Reply, WhmcsStandIn
from tests.test_tickets_handlers import STAFF, open_ticket, sends, staff_forum
from tests.whmcs_fixtures import linked_account, whmcs_settings

CUSTOMER = 501
ANNA = User(id=7001, first_name="Anna", language_code="en")  # WHMCS admin "anna"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


async def sync_once(driver: BotDriver) -> int:
    i18n = driver.dp["i18n"]
    _name, _seconds, job = ticket_sync_job(driver.gateway, i18n, "en", answer_kb, STAFF)
    return await job(NOW)


async def deliver(driver: BotDriver) -> None:
    await OutboxSender(driver.gateway, driver.bot, owner="test").drain(budget=5)


async def test_ticket_topic_staff_answer_and_a_reply_made_in_whmcs(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    driver = whmcs_driver
    group = staff_forum(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    await linked_account(driver.gateway, CUSTOMER, alice)
    customer = driver.user(CUSTOMER)

    calls = await open_ticket(driver, customer, subject="Server down", text="It <is> down")
    [ticket] = list(whmcs.tickets.values())
    assert (ticket.userid, ticket.deptid, ticket.subject) == (alice.id, 2, "Server down")
    [topic] = driver.fake.calls_of("createForumTopic")
    assert topic["name"] == f"🔴 #{ticket.id} Server down"
    [header] = sends(calls, STAFF)
    assert header.text.startswith(f"🎫 <b>Ticket #{ticket.id}</b> · Server down")
    assert "It &lt;is&gt; down" in header.text

    thread_id = header["message_thread_id"]
    calls = await driver.send(ANNA, "Rebooted <it>", chat=group, thread_id=thread_id)
    reply = whmcs.called("AddTicketReply")[-1].params
    assert (reply["adminusername"], reply["message"]) == ("anna", "Rebooted <it>")
    pushed = [c for c in sends(calls, CUSTOMER)]
    assert [c.text for c in pushed] == [
        f"💬 <b>Support</b> answered in ticket #{ticket.id} «Server down»:\n\nRebooted &lt;it&gt;"
    ]

    # The bot's own reply is not sent again by the sync job.
    assert await sync_once(driver) == 0
    start = len(driver.fake.calls)
    await deliver(driver)
    assert sends(driver.fake.calls[start:], CUSTOMER) == []

    # A reply written in WHMCS's admin area: once, and a second run sends nothing.
    whmcs.admin_reply(ticket, "Demo Admin", "Fixed &amp; verified<br />Regards")
    assert await sync_once(driver) == 1
    start = len(driver.fake.calls)
    await deliver(driver)
    [message] = sends(driver.fake.calls[start:], CUSTOMER)
    assert message.text == (
        f"💬 <b>Support</b> answered in ticket #{ticket.id} «Server down»:\n\n"
        "Fixed &amp; verified\nRegards"
    )
    assert message.button_texts() == ["✍️ Reply", "📄 Open ticket"]
    assert await sync_once(driver) == 0
    start = len(driver.fake.calls)
    await deliver(driver)
    assert sends(driver.fake.calls[start:], CUSTOMER) == []

    # The customer answers in Telegram: the handler relays it, the sync job does not again.
    await driver.click(customer, message, "Reply")
    calls = await driver.send(customer, "Works now")
    assert [c.text for c in sends(calls, STAFF)] == [
        f"👤 <b>Customer</b> · ticket #{ticket.id}:\nWorks now"
    ]
    assert await sync_once(driver) == 0

    # ... and on the WHMCS website: the topic gets it, once.
    ticket.replies.append(
        Reply(alice.id, "", "Alice Smith", "One more &lt;thing&gt;", datetime(2026, 1, 16))
    )
    ticket.status = "Customer-Reply"
    assert await sync_once(driver) == 1
    start = len(driver.fake.calls)
    await deliver(driver)
    [relay] = sends(driver.fake.calls[start:], STAFF)
    assert (relay.text, relay["message_thread_id"]) == (
        f"👤 <b>Customer</b> · ticket #{ticket.id}:\nOne more &lt;thing&gt;",
        thread_id,
    )
    assert await sync_once(driver) == 0


async def test_sync_sends_no_history_of_a_ticket_it_never_saw(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    driver = whmcs_driver
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    await linked_account(driver.gateway, CUSTOMER, alice)
    ticket = whmcs.add_ticket(alice, "From the website", "hello")
    whmcs.admin_reply(ticket, "Demo Admin", "Old answer")
    assert await sync_once(driver) == 0  # first sight: the cursor only
    whmcs.admin_reply(ticket, "Demo Admin", "New answer")
    assert await sync_once(driver) == 1
    await deliver(driver)
    assert [c.text.split("\n\n")[-1] for c in driver.fake.sent(CUSTOMER)] == ["New answer"]


async def test_the_scheduler_leases_the_sync_job_with_whmcs_only(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn, sqlite_url: str
) -> None:
    driver = whmcs_driver
    job = ticket_sync_job(driver.gateway, driver.dp["i18n"], "en")
    for billing, expected in (("whmcs", True), ("embedded", False)):
        settings = whmcs_settings(sqlite_url, whmcs, billing=billing)
        scheduler = AsyncIOScheduler()
        add_jobs(
            scheduler, settings, driver.gateway, driver.bot, driver.dp["i18n"], billing_jobs=[job]
        )
        assert (scheduler.get_job("whmcs_ticket_sync") is not None) is expected
    assert await sync_ticket_replies(driver.gateway.local, driver.dp["i18n"], "en", None, NOW) == 0
    await whmcs.go_down()
    assert await sync_once(driver) == 0  # logged, retried by the next run


async def test_a_telegram_reply_to_an_answer_written_in_whmcs_goes_into_the_ticket(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    """The sync job's answer reaches the customer through the outbox, which links the message
    to the ticket: the customer's Telegram reply to it is a reply to the ticket."""
    driver = whmcs_driver
    staff_forum(driver)
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    await linked_account(driver.gateway, CUSTOMER, alice)
    customer = driver.user(CUSTOMER)
    await open_ticket(driver, customer, subject="Server down", text="It is down")
    [ticket] = list(whmcs.tickets.values())
    whmcs.admin_reply(ticket, "Demo Admin", "Try now")
    assert await sync_once(driver) == 1
    start = len(driver.fake.calls)
    await deliver(driver)
    [answer] = sends(driver.fake.calls[start:], CUSTOMER)

    calls = await driver.send(customer, "Works, thanks", reply_to=answer.result)
    assert [(c["chat_id"], c.text) for c in sends(calls, STAFF) + sends(calls, CUSTOMER)] == [
        (STAFF, f"👤 <b>Customer</b> · ticket #{ticket.id}:\nWorks, thanks"),
        (CUSTOMER, f"✅ Your reply is added to ticket #{ticket.id}."),
    ]
    reply = whmcs.called("AddTicketReply")[-1].params
    assert (reply["ticketid"], reply["message"]) == (str(ticket.id), "Works, thanks")
