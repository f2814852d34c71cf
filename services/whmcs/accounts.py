"""Accounts over WHMCS: the bot's own account row (Telegram identity, language, settings) with
the balance and currency of the linked WHMCS client."""

from __future__ import annotations

from dataclasses import replace

from services.contracts.common import Account
from services.whmcs.errors import WhmcsAuthError, WhmcsUnavailable
from services.whmcs.linking import WhmcsLinkingMixin


class WhmcsAccountsMixin(WhmcsLinkingMixin):
    """Linking (services/whmcs/linking.py) comes with the accounts."""

    async def _with_client(self, account: Account, *, tolerant: bool = False) -> Account:
        """The local account with its client's credit and currency; unlinked: as it is.
        `tolerant` (the lookup every update makes): with WHMCS unreachable, the account comes
        with the last credit seen and `balance_known` False, so a payment or a ticket still
        reaches its handler; the screens that need WHMCS fail on their own call."""
        client_id = await self.local.billing_client_id(account.id)
        if client_id is None:
            return replace(account, balance_minor=0, linked=False)
        try:
            client = await self._client_details(client_id)
        except (WhmcsUnavailable, WhmcsAuthError):
            if not tolerant:
                raise
            last = self._last_seen(client_id)
            if last is None:
                return replace(account, balance_minor=0, balance_known=False)
            client = last
            return replace(
                account,
                balance_minor=client.credit_minor,
                base_currency=client.currency_code,
                balance_known=False,
            )
        return replace(
            account, balance_minor=client.credit_minor, base_currency=client.currency_code
        )

    async def get_or_create_account(
        self,
        telegram_id: int,
        chat_id: int,
        *,
        name: str = "",
        username: str | None = None,
        language: str | None = None,
    ) -> tuple[Account, bool]:
        account, created = await self.local.get_or_create_account(
            telegram_id, chat_id, name=name, username=username, language=language
        )
        return await self._with_client(account, tolerant=True), created

    async def find_account_by_telegram(self, telegram_id: int) -> Account | None:
        account = await self.local.find_account_by_telegram(telegram_id)
        return None if account is None else await self._with_client(account, tolerant=True)

    async def find_account_by_login(self, login: str) -> Account | None:
        # The login is the bot's own (kept locally, shown in Settings), as the password is.
        account = await self.local.find_account_by_login(login)
        return None if account is None else await self._with_client(account, tolerant=True)

    async def get_account(self, account_id: int) -> Account:
        return await self._with_client(await self.local.get_account(account_id))

    async def set_language(self, account_id: int, language: str) -> Account:
        return await self._with_client(await self.local.set_language(account_id, language))

    async def set_chat_reachable(self, chat_id: int, reachable: bool) -> None:
        await self.local.set_chat_reachable(chat_id, reachable)
