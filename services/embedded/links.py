"""The embedded bot store's part for an external billing: account links and adapter records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update

from services.embedded import models as m
from services.embedded.base import EmbeddedBase, insert_ignore


class BillingLinksMixin(EmbeddedBase):
    async def billing_client_id(self, account_id: int) -> int | None:
        return await self.session.scalar(
            select(m.Account.billing_client_id).where(m.Account.id == account_id)
        )

    async def account_id_of_billing_client(self, client_id: int) -> int | None:
        return await self.session.scalar(
            select(m.Account.id).where(m.Account.billing_client_id == client_id)
        )

    async def link_billing_client(self, account_id: int, client_id: int) -> None:
        await self._lock_account(account_id)  # NotFound for an unknown account
        await self.session.execute(
            update(m.Account)
            .where(m.Account.billing_client_id == client_id, m.Account.id != account_id)
            .values(billing_client_id=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(m.Account)
            .where(m.Account.id == account_id)
            .values(billing_client_id=client_id)
            .execution_options(synchronize_session=False)
        )

    async def unlink_billing_client(self, account_id: int) -> None:
        await self.session.execute(
            update(m.Account)
            .where(m.Account.id == account_id)
            .values(billing_client_id=None)
            .execution_options(synchronize_session=False)
        )

    async def linked_accounts(
        self, *, after_account_id: int = 0, limit: int = 500
    ) -> list[tuple[int, int]]:
        rows = await self.session.execute(
            select(m.Account.id, m.Account.billing_client_id)
            .where(m.Account.billing_client_id.is_not(None), m.Account.id > after_account_id)
            .order_by(m.Account.id)
            .limit(limit)
        )
        return [(account_id, client_id) for account_id, client_id in rows if client_id is not None]


class AdapterStateMixin(EmbeddedBase):
    def _live(self) -> Any:
        return or_(m.AdapterState.expires_at.is_(None), m.AdapterState.expires_at > self.now())

    async def get_adapter_state(self, kind: str, key: str) -> dict[str, Any] | None:
        return await self.session.scalar(
            select(m.AdapterState.value).where(
                m.AdapterState.kind == kind, m.AdapterState.key == key, self._live()
            )
        )

    async def put_adapter_state(
        self, kind: str, key: str, value: dict[str, Any], *, expires_at: datetime | None = None
    ) -> None:
        now = self.now()
        await self.session.execute(
            insert_ignore(self.session, m.AdapterState)
            .values(kind=kind, key=key, value=value, updated_at=now, expires_at=expires_at)
            .on_conflict_do_update(
                index_elements=[m.AdapterState.kind, m.AdapterState.key],
                set_={"value": value, "updated_at": now, "expires_at": expires_at},
            )
        )

    async def add_adapter_state(
        self, kind: str, key: str, value: dict[str, Any], *, expires_at: datetime | None = None
    ) -> bool:
        now = self.now()
        table = m.AdapterState.__table__
        added = await self.session.execute(
            insert_ignore(self.session, m.AdapterState)
            .values(kind=kind, key=key, value=value, updated_at=now, expires_at=expires_at)
            .on_conflict_do_update(  # only over an expired record: a live one stays
                index_elements=[m.AdapterState.kind, m.AdapterState.key],
                set_={"value": value, "updated_at": now, "expires_at": expires_at},
                where=table.c.expires_at.is_not(None) & (table.c.expires_at <= now),
            )
            .returning(m.AdapterState.kind)
        )
        return added.first() is not None

    async def take_adapter_state(self, kind: str, key: str) -> dict[str, Any] | None:
        taken = await self.session.execute(
            delete(m.AdapterState)
            .where(m.AdapterState.kind == kind, m.AdapterState.key == key)
            .returning(m.AdapterState.value, m.AdapterState.expires_at)
        )
        row = taken.first()
        if row is None or (row.expires_at is not None and row.expires_at <= self.now()):
            return None
        return dict(row.value)

    async def delete_adapter_state(self, kind: str, key: str) -> None:
        await self.session.execute(
            delete(m.AdapterState).where(m.AdapterState.kind == kind, m.AdapterState.key == key)
        )
