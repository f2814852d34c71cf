"""Accounts, the ledger and the catalogue of the embedded billing, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError

from services.embedded.billing import EmbeddedGateway
from services.errors import InsufficientFunds, NotFound, ValidationFailed


async def _account(gateway: EmbeddedGateway, telegram_id: int = 42) -> int:
    async with gateway.transaction() as billing:
        account, created = await billing.get_or_create_account(telegram_id, telegram_id, name="A")
    assert created
    return account.id


async def test_account_is_created_once_with_a_login(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        again, created = await billing.get_or_create_account(42, 42, name="A")
        assert (again.id, created, again.login, again.balance_minor) == (
            account_id,
            False,
            "tg42",
            0,
        )
        assert again.currency == "EUR" and again.base_currency == "EUR"
        assert await billing.find_account_by_telegram(43) is None
        with pytest.raises(NotFound):
            await billing.get_account(999)


async def test_ledger_credit_debit_and_balance_follow_each_other(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        await billing.credit(account_id, 1500, kind="topup", description="Top-up")
        line = await billing.debit(account_id, 499, kind="order", reference="order:1")
        assert line is not None and line.amount_minor == -499 and line.balance_after_minor == 1001
    async with gateway.transaction() as billing:
        account = await billing.get_account(account_id)
        assert account.balance_minor == 1001 == await billing.ledger_sum(account_id)
        page = await billing.list_ledger(account_id, 0, 1)
        assert (page.total, page.has_next, page.items[0].kind) == (2, True, "order")


async def test_debit_never_goes_below_zero_and_rolls_back_nothing_else(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        await billing.credit(account_id, 100, kind="topup")
        with pytest.raises(InsufficientFunds) as info:
            await billing.debit(account_id, 250, kind="order")
        assert (info.value.missing_minor, info.value.currency) == (150, "EUR")
        with pytest.raises(ValidationFailed):
            await billing.debit(account_id, 0, kind="order")
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account_id)).balance_minor == 100
        assert await billing.ledger_sum(account_id) == 100


async def test_idempotency_key_credits_once(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    for _ in range(3):
        async with gateway.transaction() as billing:
            await billing.credit(account_id, 700, kind="topup", idempotency_key="tg:charge-1")
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account_id)).balance_minor == 700
        assert (await billing.list_ledger(account_id)).total == 1


async def test_concurrent_debits_never_overdraw(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        await billing.credit(account_id, 1000, kind="topup")

    async def debit_once() -> bool:
        try:
            async with gateway.transaction() as billing:
                await billing.debit(account_id, 300, kind="order")
            return True
        except InsufficientFunds:
            return False

    results = await asyncio.gather(*(debit_once() for _ in range(20)))
    assert results.count(True) == 3
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account_id)).balance_minor == 100
        assert await billing.ledger_sum(account_id) == 100


async def test_concurrent_same_key_credits_once(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)

    async def credit() -> None:
        async with gateway.transaction() as billing:
            await billing.credit(account_id, 500, kind="topup", idempotency_key="tg:same")

    await asyncio.gather(*(credit() for _ in range(10)))
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account_id)).balance_minor == 500


async def test_demo_catalogue_is_seeded_once(gateway: EmbeddedGateway) -> None:
    assert await gateway.seed_demo() == 0  # the fixture seeded it already
    async with gateway.transaction() as billing:
        assert await billing.list_product_types() == ["dedicated", "vps"]
        vps = await billing.list_tariffs("vps")
        assert [t.code for t in vps] == ["vps-1", "vps-2", "vps-4"]
        assert [(p.months, p.price_minor) for p in vps[0].prices] == [
            (1, 490),
            (3, 1426),
            (6, 2793),
            (12, 5292),
        ]
        assert (await billing.get_tariff(vps[0].id)).price_for(12) == 5292
        with pytest.raises(NotFound):
            await billing.get_tariff(10_000)


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "expected"),
    [
        (123450, "EUR", "en", "€1,234.50"),
        (123450, "EUR", "ru", "1\xa0234,50\xa0€"),
        (123450, "RUB", "en", "₽1,234.50"),
        (123450, "RUB", "ru", "1\xa0234,50\xa0₽"),
        (-5, "USD", "en", "-$0.05"),
        (250, "XTR", "en", "250 ⭐"),
    ],
)
def test_money_is_formatted_per_locale(
    minor: int, currency: str, locale: str, expected: str
) -> None:
    from services.money import format_money

    assert format_money(minor, currency, locale) == expected


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [("12", "EUR", 1200), ("12,5", "EUR", 1250), ("1 000.01", "USD", 100001), ("7", "XTR", 7)],
)
def test_amounts_parse_to_minor_units(text: str, currency: str, expected: int) -> None:
    from services.money import parse_amount

    assert parse_amount(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("abc", "not_a_number"),
        ("-5", "not_positive"),
        ("0", "not_positive"),
        ("1.234", "too_many_decimals"),
        ("1e5", "not_a_number"),
        ("", "not_a_number"),
    ],
)
def test_bad_amounts_are_rejected_with_a_reason(text: str, code: str) -> None:
    from services.money import parse_amount

    with pytest.raises(ValidationFailed) as info:
        parse_amount(text, "EUR")
    assert info.value.detail == code


async def test_a_read_only_transaction_refuses_writes_and_keeps_nothing(
    gateway: EmbeddedGateway,
) -> None:
    """Read-only calls run on their own pool, in autocommit: a write there must fail loudly
    (SQLite: query_only; PostgreSQL: a read-only session), never slip through unseen."""
    with pytest.raises(DBAPIError):
        async with gateway.transaction(read_only=True) as billing:
            await billing.get_or_create_account(4242, 4242, name="Nobody")
    async with gateway.transaction(read_only=True) as billing:
        assert await billing.find_account_by_telegram(4242) is None


async def test_the_lean_lookup_by_telegram_id_gives_the_full_account(
    gateway: EmbeddedGateway,
) -> None:
    async with gateway.transaction() as billing:
        created, _ = await billing.get_or_create_account(4343, 4343, name="Anna")
        await billing.credit(created.id, 1234, kind="topup", idempotency_key="lean-1")
    async with gateway.transaction(read_only=True) as billing:
        assert await billing.find_account_by_telegram(4343) == await billing.get_account(created.id)


async def test_sqlite_runs_wal_with_normal_synchronous(sqlite_gateway: EmbeddedGateway) -> None:
    """WAL with synchronous=NORMAL (1): no fsync per commit, durable across a killed process;
    on writers and readers alike."""
    for engine in (sqlite_gateway.engine, sqlite_gateway.read_engine):
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1
