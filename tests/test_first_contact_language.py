"""A customer who never picked a language sees the screens in Telegram's language: alerts,
sent without an update to read language_code from, must speak it too (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

import keyboards.alerts as alert_kb
from bot.factory import create_i18n
from services.alerts import AlertPolicy, scan_low_balance
from services.embedded import models as m
from tests.harness.driver import BotDriver


async def _low_balance_alert(driver: BotDriver, telegram_id: int) -> str:
    async with driver.gateway.transaction() as billing:
        await billing.session.execute(  # type: ignore[attr-defined]
            update(m.Account)
            .where(m.Account.telegram_id == telegram_id)
            .values(balance_minor=500, low_balance_threshold_minor=1000)
        )
    now = datetime.now(UTC)
    await scan_low_balance(
        driver.gateway, create_i18n("en"), AlertPolicy(), now, keyboards=alert_kb
    )
    async with driver.gateway.transaction() as billing:
        rows = await billing.session.scalars(select(m.OutboxMessage))  # type: ignore[attr-defined]
        [row] = [r for r in rows if r.chat_id == telegram_id]
    return str(row.payload["text"])


async def test_an_alert_speaks_the_language_the_screens_do(driver: BotDriver) -> None:
    user = driver.user(9001, language_code="ru-RU")
    menu = (await driver.send(user, "/start"))[-1]
    assert "Личный кабинет" in (menu.text or "")
    assert (await _low_balance_alert(driver, user.id)).startswith("⚠️ <b>Низкий баланс</b>\n")


async def test_a_chosen_language_wins_over_telegrams(driver: BotDriver) -> None:
    user = driver.user(9002, language_code="ru")
    await driver.send(user, "/start")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(user.id)
        assert account is not None and account.language == "ru"
        await billing.set_language(account.id, "en")
    await driver.send(user, "/menu")  # Telegram still says ru: the choice stays
    assert (await _low_balance_alert(driver, user.id)).startswith("⚠️ <b>Low balance</b>\n")


async def test_an_unsupported_telegram_language_leaves_the_default(driver: BotDriver) -> None:
    user = driver.user(9003, language_code="de")
    await driver.send(user, "/start")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(user.id)
        assert account is not None and account.language is None
