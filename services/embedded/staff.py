"""The staff desk's own rules in the embedded billing: the limit on code-word checks."""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import delete, select

from services.contracts.staff import CodeWordAttempt
from services.embedded import models as m
from services.embedded.base import EmbeddedBase
from services.errors import NotFound


class StaffMixin(EmbeddedBase):
    async def take_code_word_attempt(
        self, account_id: int, staff_user_id: int, *, limit: int, window: timedelta
    ) -> CodeWordAttempt:
        # The account's row is locked first: concurrent checks of one customer (several bot
        # instances on PostgreSQL) queue here and each sees the others' rows. SQLite writers
        # are one at a time anyway (BEGIN IMMEDIATE).
        found = await self.session.scalar(
            select(m.Account.id).where(m.Account.id == account_id).with_for_update()
        )
        if found is None:
            raise NotFound("account")
        now = self.now()
        since = now - window
        table = m.CodeWordCheck
        await self.session.execute(
            delete(table)
            .where(table.account_id == account_id, table.checked_at <= since)
            .execution_options(synchronize_session=False)
        )
        rows = (
            await self.session.execute(
                select(table.id, table.checked_at, table.refused)
                .where(table.account_id == account_id)
                .order_by(table.id)
            )
        ).all()
        counted = [row for row in rows if not row.refused]
        if len(counted) < limit:
            self.session.add(
                table(account_id=account_id, staff_user_id=staff_user_id, checked_at=now)
            )
            await self.session.flush()
            return CodeWordAttempt(
                allowed=True, left=limit - len(counted) - 1, retry_after_seconds=0
            )
        # Possible again once enough of the counted checks have left the window.
        frees_at = counted[len(counted) - limit].checked_at + window
        retry_after = max(1, math.ceil((frees_at - now).total_seconds()))
        last_allowed = counted[-1].id
        told = any(row.refused and row.id > last_allowed for row in rows)
        if not told:  # one refused row per lockout is enough to remember that staff were told
            self.session.add(
                table(
                    account_id=account_id, staff_user_id=staff_user_id, checked_at=now, refused=True
                )
            )
            await self.session.flush()
        return CodeWordAttempt(
            allowed=False, left=0, retry_after_seconds=retry_after, first_refusal=not told
        )
