"""The real process: a Stars top-up from /topup to the credited balance; the stand-in delivers
pre_checkout_query and a successful_payment that Telegram redelivers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, update

from bot.factory import create_gateway
from services.embedded import models as m
from tests.conftest import make_settings
from tests.e2e.conftest import LiveBot

PROFILE = {
    "last_name": "Lovelace",
    "first_name": "Ada",
    "email": "ada@example.com",
    "city": "London",
    "address": "12 St James's Square",
}


async def test_stars_topup_on_the_real_process(live_bot: LiveBot, tmp_path: Path) -> None:
    bot = live_bot
    user = bot.user(801)
    start = await bot.send(user, "/start")
    await bot.reply(lambda c: c.method == "sendMessage" and "Personal cabinet" in c.text, start)

    # The profile is filled in the settings section; here straight in the bot's database.
    gateway = create_gateway(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"))
    try:
        async with gateway.transaction() as billing:
            account = await billing.find_account_by_telegram(801)
            assert account is not None
            await billing.session.execute(
                update(m.Account).where(m.Account.id == account.id).values(**PROFILE)
            )

        start = await bot.send(user, "/topup")
        chooser = await bot.reply(
            lambda c: c.method == "sendMessage" and "Choose the currency" in c.text, start
        )
        start = await bot.press(user, chooser, "EUR")
        prompt = await bot.reply(
            lambda c: c.method == "editMessageText" and "Top-up in EUR" in c.text, start
        )
        start = await bot.press(user, prompt, "€10.00")
        invoice = await bot.reply(
            lambda c: c.method == "editMessageText" and "Invoice No." in c.text, start
        )
        start = await bot.press(user, invoice, "Telegram Stars")
        sent = await bot.reply(lambda c: c.method == "sendInvoice", start)
        assert (sent["currency"], sent["prices"], sent["payload"]) == (
            "XTR",
            [{"label": "Balance top-up", "amount": 500}],
            "inv:1",
        )

        start = len(bot.fake.calls)
        await bot.deliver(bot.fake.pre_checkout(user, "XTR", 500, "inv:1"))
        answer = await bot.reply(lambda c: c.method == "answerPreCheckoutQuery", start)
        assert answer["ok"] is True

        replies = []
        for _ in range(3):  # the same payment, delivered three times
            start = len(bot.fake.calls)
            await bot.deliver(
                bot.fake.successful_payment(user, "XTR", 500, "inv:1", "e2e-charge-801")
            )
            replies.append(
                await bot.reply(lambda c: c.method == "sendMessage" and c["chat_id"] == 801, start)
            )
        assert replies[0].text.startswith("✅ <b>Payment received</b>")
        assert replies[0].text.endswith("Credited: €10.00\nBalance: <b>€10.00</b>")
        assert [r.text for r in replies[1:]] == [
            "This payment has already been credited. Balance: <b>€10.00</b>"
        ] * 2

        async with gateway.transaction() as billing:
            assert (await billing.get_account(account.id)).balance_minor == 1000
            assert await billing.ledger_sum(account.id) == 1000
            payments = await billing.session.scalar(select(func.count()).select_from(m.Payment))
            assert payments == 1
            assert (await billing.get_invoice(account.id, 1)).status == "paid"
    finally:
        await gateway.close()
