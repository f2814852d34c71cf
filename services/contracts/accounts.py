"""Accounts, balance/ledger and the tariff catalogue."""

from __future__ import annotations

from typing import Protocol

from services.contracts.common import Account, LedgerLine, Page, Tariff, read_only


class AccountsApi(Protocol):
    base_currency: str

    async def get_or_create_account(
        self, telegram_id: int, chat_id: int, *, name: str = "", username: str | None = None
    ) -> tuple[Account, bool]:
        """Return the caller's account, creating it on first contact (second item: created)."""

    @read_only
    async def find_account_by_telegram(self, telegram_id: int) -> Account | None: ...

    @read_only
    async def get_account(self, account_id: int) -> Account:
        """Raise NotFound when there is no such account."""

    async def set_language(self, account_id: int, language: str) -> Account: ...

    async def set_chat_reachable(self, chat_id: int, reachable: bool) -> None:
        """Mark a private chat (un)reachable: 403 from Telegram, or the user wrote again."""


class LedgerApi(Protocol):
    async def credit(
        self,
        account_id: int,
        amount_minor: int,
        *,
        kind: str,
        description: str = "",
        reference: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> LedgerLine | None:
        """Append a credit; return None when `idempotency_key` was already used (no-op)."""

    async def debit(
        self,
        account_id: int,
        amount_minor: int,
        *,
        kind: str,
        description: str = "",
        reference: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> LedgerLine | None:
        """Append a debit; never below zero (InsufficientFunds); None on a repeated key."""

    @read_only
    async def list_ledger(
        self, account_id: int, offset: int = 0, limit: int = 10
    ) -> Page[LedgerLine]: ...

    @read_only
    async def ledger_sum(self, account_id: int) -> int:
        """SUM of the ledger: equals the account's balance (checked by tests)."""


class CatalogueApi(Protocol):
    @read_only
    async def list_product_types(self) -> list[str]: ...

    @read_only
    async def list_tariffs(self, product_type: str | None = None) -> list[Tariff]: ...

    @read_only
    async def get_tariff(self, tariff_id: int) -> Tariff:
        """Raise NotFound for an unknown or inactive tariff."""
