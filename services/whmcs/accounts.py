"""Accounts over WHMCS: the bot's own account row (Telegram identity, language, settings) with
the balance and currency of the linked WHMCS client."""

from __future__ import annotations

from dataclasses import replace

from services.contracts.common import Account
from services.whmcs.base import WhmcsBase


class WhmcsAccountsMixin(WhmcsBase):
    async def _with_client(self, account: Account) -> Account:
        """The local account with its client's credit and currency; unlinked: as it is."""
        client_id = await self.local.billing_client_id(account.id)
        if client_id is None:
            return replace(account, balance_minor=0)
        client = await self._client_details(client_id)
        return replace(
            account, balance_minor=client.credit_minor, base_currency=client.currency_code
        )

    async def get_or_create_account(
        self, telegram_id: int, chat_id: int, *, name: str = "", username: str | None = None
    ) -> tuple[Account, bool]:
        account, created = await self.local.get_or_create_account(
            telegram_id, chat_id, name=name, username=username
        )
        return await self._with_client(account), created

    async def find_account_by_telegram(self, telegram_id: int) -> Account | None:
        account = await self.local.find_account_by_telegram(telegram_id)
        return None if account is None else await self._with_client(account)

    async def get_account(self, account_id: int) -> Account:
        return await self._with_client(await self.local.get_account(account_id))

    async def set_language(self, account_id: int, language: str) -> Account:
        return await self._with_client(await self.local.set_language(account_id, language))

    async def set_chat_reachable(self, chat_id: int, reachable: bool) -> None:
        await self.local.set_chat_reachable(chat_id, reachable)
