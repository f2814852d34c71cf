"""What every part of the WHMCS adapter shares: the API client, the bot's own records (`local`,
a Billing on the bot's database whose every call is its own short transaction) and the options.

Ids: an account id is the bot's own (the local accounts row, linked to a WHMCS client id in the
bot store); order ids are WHMCS service ids, invoice and ticket ids WHMCS's own. Money is in
minor units of the client's WHMCS currency, which is the account's base currency here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.billing import Billing
from services.errors import NotLinked
from services.whmcs.client import WhmcsClient
from services.whmcs.models import ClientDetails

CLIENT_CACHE_SECONDS = 20.0  # a screen or two of one update read the client once


@dataclass(frozen=True)
class WhmcsOptions:
    payment_method: str = "telegram"  # WHMCS gateway system name recorded on Telegram payments
    # Our ticket departments (tech, billing, abuse) -> WHMCS department ids.
    departments: Mapping[str, int] = field(default_factory=dict)
    # Staff Telegram user id -> WHMCS admin username their replies are posted as.
    admin_usernames: Mapping[int, str] = field(default_factory=dict)
    default_admin_username: str | None = None
    # The per-customer limits of the settings (0: no limit).
    max_open_tickets: int = 3
    max_tickets_per_hour: int = 5
    max_open_invoices: int = 5
    link_code_minutes: int = 15
    link_token_hours: int = 24
    # LINK_TOKEN_SECRET: signs the deep-link tokens (services/whmcs/linking.py); None: off.
    link_token_secret: str | None = None


class WhmcsBase:
    def __init__(
        self, client: WhmcsClient, local: Billing, options: WhmcsOptions, base_currency: str
    ) -> None:
        self.client = client
        self.local = local
        self.options = options
        self.base_currency = base_currency  # of unlinked accounts (WHMCS's default currency)
        self._clients: dict[int, tuple[float, ClientDetails]] = {}

    async def _client_id(self, account_id: int) -> int:
        """The WHMCS client of the account; NotLinked until the user has linked one."""
        client_id = await self.local.billing_client_id(account_id)
        if client_id is None:
            raise NotLinked()
        return client_id

    async def _client_of(self, account_id: int, *, fresh: bool = False) -> ClientDetails:
        return await self._client_details(await self._client_id(account_id), fresh=fresh)

    async def _client_details(self, client_id: int, *, fresh: bool = False) -> ClientDetails:
        """GetClientsDetails, kept for a few seconds (`fresh` reads again)."""
        cached = self._clients.get(client_id)
        if cached is not None and not fresh and cached[0] > time.monotonic():
            return cached[1]
        details = await self.client.get_client(client_id)
        self._clients[client_id] = (time.monotonic() + CLIENT_CACHE_SECONDS, details)
        return details

    def _last_seen(self, client_id: int) -> ClientDetails | None:
        """The client's details as last read, however old (for when WHMCS is down)."""
        cached = self._clients.get(client_id)
        return None if cached is None else cached[1]

    def _client_changed(self, client_id: int) -> None:
        """Read the details again after a write that changes them (credit, profile); they stay
        known as the last seen ones meanwhile."""
        cached = self._clients.get(client_id)
        if cached is not None:
            self._clients[client_id] = (0.0, cached[1])
