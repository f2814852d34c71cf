"""The one typed billing interface handlers and jobs use, and how to open a transaction on it.

Handlers receive a `Billing` bound to the update's transaction (see bot/middlewares.py);
jobs open their own with `gateway.transaction()`. Implementations: services.embedded
(SQLAlchemy) — an HTTP adapter to an external billing implements the same Protocols.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from services.contracts.accounts import AccountsApi, CatalogueApi, LedgerApi
from services.contracts.alerts import AlertsApi, OutboxApi
from services.contracts.orders import OrdersApi
from services.contracts.payments import PaymentsApi
from services.contracts.profile import ProfileApi
from services.contracts.tickets import TicketsApi


class Billing(
    AccountsApi,
    LedgerApi,
    CatalogueApi,
    ProfileApi,
    AlertsApi,
    OutboxApi,
    PaymentsApi,
    OrdersApi,
    TicketsApi,
    Protocol,
):
    """Everything the bot can ask of a billing, one domain Protocol per section."""


class BillingGateway(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Billing]:
        """A Billing bound to one transaction: committed on success, rolled back on error."""

    async def close(self) -> None: ...
