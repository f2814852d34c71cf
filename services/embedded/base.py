"""State every embedded-billing mixin shares: the session of the current transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.embedded import models as m
from services.embedded.config import BillingConfig
from services.errors import NotFound

# Accounts with a private chat that has not blocked the bot.
REACHABLE = and_(m.Account.chat_id.is_not(None), m.Account.unreachable.is_(False))
# Reachable, or blocked the bot with a confirmed e-mail (its alerts go by e-mail instead).
REACHABLE_OR_EMAILABLE = and_(
    m.Account.chat_id.is_not(None),
    or_(m.Account.unreachable.is_(False), m.Account.email_confirmed.is_(True)),
)
INSERT_CHUNK = 500  # rows per multi-row INSERT (SQLite allows 32766 bound parameters)


def dialect_name(session: AsyncSession) -> str:
    """ "sqlite" or "postgresql": the database the session is bound to."""
    bind = session.bind
    assert bind is not None, "billing sessions are made bound to their engine"
    return bind.dialect.name


def insert_ignore(session: AsyncSession, table: type[m.Base]) -> Any:
    """INSERT ... ON CONFLICT of the session's dialect (SQLite and PostgreSQL); the caller adds
    `.on_conflict_do_nothing(...)`."""
    if dialect_name(session) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class EmbeddedBase:
    def __init__(self, session: AsyncSession, config: BillingConfig) -> None:
        self.session = session
        self.config = config
        self.base_currency = config.base_currency

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    async def _account_row(self, account_id: int) -> m.Account:
        row = await self.session.get(m.Account, account_id, populate_existing=True)
        if row is None:
            raise NotFound("account")
        return row

    async def _lock_account(self, account_id: int) -> None:
        """Serialize this transaction with the account's other writers until it ends, so that
        a count-then-insert rule (a per-customer limit) holds under concurrent calls from
        several bot instances. PostgreSQL: a row lock; SQLite: writers already hold the
        database's write lock (BEGIN IMMEDIATE), FOR UPDATE is not rendered there."""
        locked = await self.session.scalar(
            select(m.Account.id).where(m.Account.id == account_id).with_for_update()
        )
        if locked is None:
            raise NotFound("account")
