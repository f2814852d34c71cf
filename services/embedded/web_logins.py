"""The web login's attempt limits (services/contracts/store.py WebLoginsApi), in the bot's own
database so they hold across restarts and instances."""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import delete, select, text

from services.embedded import models as m
from services.embedded.base import EmbeddedBase


class WebLoginsMixin(EmbeddedBase):
    async def take_web_login_attempt(
        self, login: str, ip: str, *, per_login: int, per_ip: int, window: timedelta
    ) -> int:
        table = m.WebLoginAttempt
        key = login.strip().lower()[:64]
        if self.session.get_bind().dialect.name == "postgresql":
            # Concurrent attempts at one login or from one address (several instances) queue
            # here and each counts the others'; SQLite's writers are one at a time anyway.
            for name in sorted({f"web-login:{key}", f"web-ip:{ip}"}):
                await self.session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name}
                )
        now = self.now()
        since = now - window
        # Every row out of the window goes, whoever's: a spray of logins and addresses leaves
        # at most a window's worth of rows.
        await self.session.execute(
            delete(table)
            .where(table.attempted_at <= since)
            .execution_options(synchronize_session=False)
        )
        waits = []
        for column, value, limit in ((table.login, key, per_login), (table.ip, ip, per_ip)):
            times = (
                await self.session.scalars(
                    select(table.attempted_at)
                    .where(column == value, table.attempted_at > since)
                    .order_by(table.attempted_at.desc())
                    .limit(limit)
                )
            ).all()
            if len(times) >= limit:  # possible again once the oldest of the last `limit` leaves
                waits.append(max(1, math.ceil((times[-1] + window - now).total_seconds())))
        if waits:
            return max(waits)
        self.session.add(table(login=key, ip=ip, attempted_at=now))
        await self.session.flush()
        return 0

    async def web_session_epoch(self, account_id: int) -> int:
        return (await self._account_row(account_id)).web_session_epoch

    async def end_web_sessions(self, account_id: int) -> int:
        row = await self._account_row(account_id)
        row.web_session_epoch += 1
        await self.session.flush()
        return row.web_session_epoch

    async def clear_web_login_attempts(self, login: str) -> None:
        table = m.WebLoginAttempt
        await self.session.execute(
            delete(table)
            .where(table.login == login.strip().lower()[:64])
            .execution_options(synchronize_session=False)
        )
