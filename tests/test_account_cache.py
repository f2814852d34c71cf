"""The account lookup every update makes is answered from memory only while no commit can have
changed the account: by this process, by another engine on the same database (another
instance, an operator's script), on SQLite and PostgreSQL (services/embedded/account_cache.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text, update

from bot.factory import create_gateway
from services.billing import per_call
from services.contracts.common import Account
from services.embedded import models as m
from services.embedded.account_cache import AccountCache
from services.embedded.billing import EmbeddedGateway
from services.embedded.db import create_engine
from tests.conftest import make_settings

ACCOUNT = Account(
    id=1,
    telegram_id=77,
    chat_id=77,
    login="u1",
    language="en",
    currency="EUR",
    balance_minor=100,
    base_currency="EUR",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_read_before_a_commit_is_not_kept() -> None:
    cache = AccountCache(30)
    read_at = cache.generation
    cache.invalidate()  # a commit while the row was being read
    cache.put(77, ACCOUNT, read_at)
    assert cache.get(77) is None
    cache.put(77, ACCOUNT, cache.generation)
    assert cache.get(77) == ACCOUNT


def test_entries_expire_and_a_commit_drops_them() -> None:
    clock = Clock()
    cache = AccountCache(30, clock=clock)
    cache.put(77, ACCOUNT, cache.generation)
    clock.now = 29.9
    assert cache.get(77) == ACCOUNT
    clock.now = 30.1
    assert cache.get(77) is None
    cache.put(77, ACCOUNT, cache.generation)
    cache.invalidate()
    assert cache.get(77) is None


def test_a_changed_data_version_drops_the_entries() -> None:
    version = [1]
    cache = AccountCache(30)
    cache.watch_version(lambda: version[0])
    cache.put(77, ACCOUNT, cache.generation)
    assert cache.get(77) == ACCOUNT
    version[0] = 2  # another connection committed
    assert cache.get(77) is None


def test_nothing_is_answered_while_changes_elsewhere_could_go_unseen() -> None:
    cache = AccountCache(30)
    cache.put(77, ACCOUNT, cache.generation)
    cache.live = False
    assert cache.get(77) is None
    cache.put(78, replace(ACCOUNT, telegram_id=78), cache.generation)
    cache.live = True
    assert cache.get(78) is None


def test_the_cache_holds_at_most_max_entries() -> None:
    cache = AccountCache(30, max_entries=3)
    for telegram_id in range(5):
        cache.put(telegram_id, replace(ACCOUNT, telegram_id=telegram_id), cache.generation)
    assert [cache.get(i) is not None for i in range(5)] == [False, False, True, True, True]


async def _wait_for_listener(gateway: EmbeddedGateway) -> None:
    for _ in range(200):
        if gateway.accounts.live:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the PostgreSQL listener never connected")


async def _lookup_until(billing: object, telegram_id: int, balance: int) -> Account:
    """PostgreSQL's NOTIFY arrives a moment after the other engine's commit."""
    account = None
    for _ in range(200):
        account = await billing.find_account_by_telegram(telegram_id)  # type: ignore[attr-defined]
        if account.balance_minor == balance:
            return account
        await asyncio.sleep(0.01)
    raise AssertionError(f"still {account}")


async def test_lookups_are_served_from_memory_until_a_commit(gateway: EmbeddedGateway) -> None:
    billing = per_call(gateway)
    account, _ = await billing.get_or_create_account(77, 77, name="Ann")
    await billing.find_account_by_telegram(77)
    if gateway.engine.dialect.name == "postgresql":
        await _wait_for_listener(gateway)
    first = await billing.find_account_by_telegram(77)
    assert await billing.find_account_by_telegram(77) is first  # from memory

    await billing.credit(account.id, 500, kind="adjustment")  # this process commits
    fresh = await billing.find_account_by_telegram(77)
    assert fresh is not first and fresh.balance_minor == first.balance_minor + 500


async def test_a_commit_by_another_engine_is_seen(gateway: EmbeddedGateway) -> None:
    """Another instance (or an operator's SQL) changes the balance behind this one's back."""
    billing = per_call(gateway)
    account, _ = await billing.get_or_create_account(77, 77, name="Ann")
    await billing.find_account_by_telegram(77)
    if gateway.engine.dialect.name == "postgresql":
        await _wait_for_listener(gateway)
    cached = await billing.find_account_by_telegram(77)
    assert await billing.find_account_by_telegram(77) is cached

    other = create_engine(gateway.engine.url.render_as_string(hide_password=False))
    async with other.begin() as conn:
        await conn.execute(
            update(m.Account).where(m.Account.id == account.id).values(balance_minor=12345)
        )
    await other.dispose()
    assert (await _lookup_until(billing, 77, 12345)).balance_minor == 12345


async def test_postgres_lookups_go_to_the_database_while_the_listener_is_down(
    postgres_url: str,
) -> None:
    gateway = create_gateway(make_settings(postgres_url))
    billing = per_call(gateway)
    try:
        await billing.get_or_create_account(77, 77, name="Ann")
        await billing.find_account_by_telegram(77)
        await _wait_for_listener(gateway)
        assert gateway._listener is not None
        listener_pid = gateway._listener._connection.get_server_pid()
        admin = create_engine(postgres_url)
        async with admin.begin() as conn:  # the listening connection dies
            await conn.execute(text(f"SELECT pg_terminate_backend({listener_pid})"))
        for _ in range(200):
            if not gateway.accounts.live:
                break
            await asyncio.sleep(0.01)
        assert not gateway.accounts.live
        async with admin.begin() as conn:  # a change nobody hears of
            await conn.execute(update(m.Account).values(balance_minor=4242))
        await admin.dispose()
        # Not live: read from the database, not from memory
        assert (await billing.find_account_by_telegram(77)).balance_minor == 4242
        await _wait_for_listener(gateway)  # it reconnects by itself
    finally:
        await gateway.close()


@pytest.mark.parametrize("seconds", [0])
async def test_account_cache_seconds_0_reads_every_time(sqlite_url: str, seconds: int) -> None:
    gateway = create_gateway(make_settings(sqlite_url, account_cache_seconds=seconds))
    billing = per_call(gateway)
    try:
        await billing.get_or_create_account(77, 77, name="Ann")
        first = await billing.find_account_by_telegram(77)
        assert await billing.find_account_by_telegram(77) is not first
    finally:
        await gateway.close()
