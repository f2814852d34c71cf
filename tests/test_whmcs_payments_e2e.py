"""Telegram payments through the production dispatcher in front of the WHMCS stand-in: a Stars
top-up is one AddTransaction and one receipt however often the update comes; with WHMCS down
the customer is told the payment is kept, and the replay job credits it once it is back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.scheduler import PAYMENT_REPLAY_GRACE, add_jobs, create_scheduler, replay_job
from services.billing import per_call
from services.contracts.payments import Invoice
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, User
from tests.harness.whmcs import Client, WhmcsStandIn
from tests.whmcs_fixtures import linked_account, whmcs_settings

STARS = 463  # 10.00 USD at the test rates (1 EUR = 1.08 USD, 50 Stars per EUR)
HELD = "Payment received. It will appear on your balance as soon as our billing is reachable again."


def sent(calls: list[Call]) -> list[str]:
    return [c.text for c in calls if c.method == "sendMessage" and c.error is None and c.text]


def receipts(texts: list[str]) -> list[str]:
    return [t for t in texts if t.startswith("✅ <b>Payment received</b>")]


async def stars_topup(
    driver: BotDriver, whmcs: WhmcsStandIn, user_id: int
) -> tuple[User, Client, Invoice]:
    """A linked customer with a top-up of 10.00 USD, its pre-checkout answered."""
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    account = await linked_account(driver.gateway, user_id, alice)
    user = driver.user(user_id)
    invoice, _ = await per_call(driver.gateway).topup_invoice(account.id, 1000, "USD")
    assert invoice.stars_amount == STARS
    calls = await driver.feed(driver.fake.pre_checkout(user, "XTR", STARS, invoice.payload))
    answers = [c for c in calls if c.method == "answerPreCheckoutQuery"]
    assert [a["ok"] for a in answers] == [True]
    return user, alice, invoice


def transactions(whmcs: WhmcsStandIn, charge_id: str) -> int:
    return sum(1 for t in whmcs.transactions if t.transid == charge_id and t.credit)


async def test_a_stars_topup_delivered_twice_is_credited_once_with_one_receipt(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    user, alice, invoice = await stars_topup(whmcs_driver, whmcs, 701)
    texts: list[str] = []
    for _ in range(2):  # Telegram delivers the update again
        texts += sent(
            await whmcs_driver.feed(
                whmcs_driver.fake.successful_payment(user, "XTR", STARS, invoice.payload, "st-e1")
            )
        )
    assert len(receipts(texts)) == 1
    assert "Credited: $10.00" in receipts(texts)[0]
    assert texts[1].startswith("This payment has already been credited.")
    assert transactions(whmcs, "st-e1") == 1
    assert len(whmcs.called("AddTransaction")) == 1
    assert alice.credit == Decimal("10.00")
    assert await per_call(whmcs_driver.gateway).payment_update_answered("st-e1")


async def test_whmcs_down_during_a_payment_then_the_replay_job_credits_it_once(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    user, alice, invoice = await stars_topup(whmcs_driver, whmcs, 702)
    billing = per_call(whmcs_driver.gateway)
    payment = whmcs_driver.fake.successful_payment(user, "XTR", STARS, invoice.payload, "st-e2")
    await whmcs.go_down()
    texts = sent(await whmcs_driver.feed(payment))
    assert texts == [HELD]
    assert not await billing.payment_update_answered("st-e2")
    later = datetime.now(UTC) + PAYMENT_REPLAY_GRACE + timedelta(seconds=1)
    # Still down: the job tries again, the customer hears nothing more.
    start = len(whmcs_driver.fake.calls)
    await replay_job(whmcs_driver.dp, whmcs_driver.bot, later)
    assert sent(whmcs_driver.fake.calls[start:]) == []
    assert (alice.credit, whmcs.transactions) == (Decimal(0), [])

    await whmcs.come_back()
    start = len(whmcs_driver.fake.calls)
    assert await replay_job(whmcs_driver.dp, whmcs_driver.bot, later) == 1
    texts = sent(whmcs_driver.fake.calls[start:])
    assert len(texts) == 1 and receipts(texts) == texts
    assert "Credited: $10.00" in texts[0] and "($10.00)</b>" in texts[0]
    assert await billing.payment_update_answered("st-e2")
    assert transactions(whmcs, "st-e2") == 1 and alice.credit == Decimal("10.00")

    start = len(whmcs_driver.fake.calls)
    assert await replay_job(whmcs_driver.dp, whmcs_driver.bot, later) == 0
    assert sent(whmcs_driver.fake.calls[start:]) == []
    assert transactions(whmcs, "st-e2") == 1


async def test_the_replay_job_runs_every_minute_in_front_of_whmcs(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn, sqlite_url: str
) -> None:
    settings = whmcs_settings(sqlite_url, whmcs)
    scheduler = create_scheduler(settings)
    dp = whmcs_driver.dp
    add_jobs(scheduler, settings, whmcs_driver.gateway, whmcs_driver.bot, dp["i18n"], dispatcher=dp)
    job = scheduler.get_job("payment_replay")
    assert job is not None and job.trigger.interval == timedelta(seconds=60)
    without = create_scheduler(settings)
    add_jobs(without, settings, whmcs_driver.gateway, whmcs_driver.bot, dp["i18n"])
    assert without.get_job("payment_replay") is None
