"""What the web login needs of the billing and the bot's store (issue 17, item 4), on SQLite and
PostgreSQL: the account by its login, the attempt limits per login and per client address, and
the last IP recorded with its time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway

WINDOW = timedelta(minutes=15)


async def new_account(gateway: EmbeddedGateway, telegram_id: int) -> int:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(telegram_id, chat_id=telegram_id)
        return account.id


async def take(gateway: EmbeddedGateway, login: str, ip: str) -> int:
    async with gateway.transaction() as billing:
        return await billing.take_web_login_attempt(login, ip, per_login=3, per_ip=5, window=WINDOW)


async def age_attempts(gateway: EmbeddedGateway, by: timedelta) -> None:
    async with gateway.transaction() as billing:
        for row in (await billing.session.scalars(select(m.WebLoginAttempt))).all():
            row.attempted_at = row.attempted_at - by


async def test_the_account_by_its_login(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7001)
    async with gateway.transaction(read_only=True) as billing:
        login = (await billing.get_account(account_id)).login
        assert login == "tg7001"
        for typed in ("tg7001", " TG7001 ", "Tg7001"):
            found = await billing.find_account_by_login(typed)
            assert found is not None and found.id == account_id, typed
        for typed in ("tg700", "", " ", "x" * 65, "tg7001%", "tg700_"):
            assert await billing.find_account_by_login(typed) is None, typed


async def test_attempts_are_limited_per_login_and_per_address(gateway: EmbeddedGateway) -> None:
    assert [await take(gateway, "tg1", "203.0.113.1") for _ in range(3)] == [0, 0, 0]
    wait = await take(gateway, "TG1", "203.0.113.2")  # the same login from elsewhere
    assert 15 * 60 - 5 <= wait <= 15 * 60
    # Other logins from the first address: two more make its five.
    assert [await take(gateway, "tg2", "203.0.113.1") for _ in range(2)] == [0, 0]
    assert await take(gateway, "tg3", "203.0.113.1") > 0
    assert await take(gateway, "tg3", "203.0.113.9") == 0
    # A refused attempt is not counted: the limits free up as the counted ones age out.
    async with gateway.transaction(read_only=True) as billing:
        table = m.WebLoginAttempt
        assert await billing.session.scalar(select(func.count()).select_from(table)) == 6
    await age_attempts(gateway, WINDOW)
    assert await take(gateway, "tg1", "203.0.113.1") == 0
    async with gateway.transaction(read_only=True) as billing:  # every old row is gone
        assert await billing.session.scalar(select(func.count()).select_from(table)) == 1


async def test_a_success_clears_its_logins_attempts(gateway: EmbeddedGateway) -> None:
    assert [await take(gateway, "tg5", "203.0.113.5") for _ in range(3)] == [0, 0, 0]
    assert await take(gateway, "tg5", "203.0.113.5") > 0
    async with gateway.transaction() as billing:
        await billing.clear_web_login_attempts(" TG5 ")
    assert await take(gateway, "tg5", "203.0.113.5") == 0


async def test_concurrent_attempts_never_pass_the_limit(gateway: EmbeddedGateway) -> None:
    results = await asyncio.gather(*(take(gateway, "tg6", f"198.51.100.{n}") for n in range(8)))
    assert sorted(results)[:3] == [0, 0, 0]
    assert all(r > 0 for r in sorted(results)[3:]), results


async def test_the_last_ip_is_recorded_with_its_time(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7002)
    before = datetime.now(UTC)
    async with gateway.transaction() as billing:
        await billing.record_last_ip(account_id, "2001:DB8::1")
        profile = await billing.get_profile(account_id)
    assert profile.last_ip == "2001:db8::1"
    assert profile.last_login_at is not None
    assert before - timedelta(seconds=1) <= profile.last_login_at <= datetime.now(UTC)
    async with gateway.transaction() as billing:
        await billing.record_last_ip(account_id, "not an address")
        assert (await billing.get_profile(account_id)).last_ip == "2001:db8::1"
