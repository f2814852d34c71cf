"""Free text from customers is shown back (tickets, search, profile) inside HTML messages:
markup-looking input must arrive escaped, never break a message or reach staff as markup."""

from __future__ import annotations

from tests.harness.driver import BotDriver
from tests.test_tickets_handlers import STAFF, open_ticket, staff_forum

HOSTILE = "<b>x</i> & <script>alert(1)</script> <code"


async def test_ticket_subject_and_text_with_markup_reach_staff_escaped(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(521)
    await open_ticket(driver, user, subject="Help <b>me", text=HOSTILE)
    header = driver.fake.sent(STAFF)
    assert header, "nothing reached the staff group"
    assert any("&lt;script&gt;" in (c.text or "") for c in header)
    listing = (await driver.send(user, "/tickets"))[-1]
    assert "Help &lt;b&gt;me" in listing.text


async def test_order_search_with_markup_answers_cleanly(driver: BotDriver) -> None:
    user = driver.user(522)
    calls = await driver.send(user, "/orders <b>x</i> & <script>")
    assert calls[-1].text == "🔍 No orders match «&lt;b&gt;x&lt;/i&gt; &amp; &lt;script&gt;»."


async def test_city_with_markup_is_saved_as_text_and_shown_escaped(driver: BotDriver) -> None:
    user = driver.user(523)
    settings = (await driver.send(user, "/settings"))[-1]
    address = next(
        c
        for c in await driver.click(user, settings, "Postal address")
        if c.method == "editMessageText"
    )
    await driver.click(user, address, "City")
    calls = await driver.send(user, "Riga <b>")
    assert all(c.error is None for c in calls)
    assert "Riga &lt;b&gt;" in calls[-1].text
    async with driver.gateway.transaction() as billing:
        profile = await billing.get_profile(1)
    assert profile.city == "Riga <b>"
