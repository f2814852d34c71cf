"""Alert marks of the embedded bot store: every alert is produced once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    delete,
    select,
)

from services.contracts import alerts as dto
from services.embedded import models as m
from services.embedded.base import INSERT_CHUNK, EmbeddedBase, insert_ignore


class AlertMarksMixin(EmbeddedBase):
    async def add_alert_mark(
        self,
        kind: str,
        key: str,
        *,
        order_id: int | None = None,
        period: datetime | None = None,
        stage: int | None = None,
    ) -> bool:
        spec = dto.AlertMarkSpec(kind, key, order_id, period, stage)
        return bool(await self.add_alert_marks([spec]))

    async def add_alert_marks(self, marks: Sequence[dto.AlertMarkSpec]) -> set[tuple[str, str]]:
        added: set[tuple[str, str]] = set()
        now = self.now()
        for start in range(0, len(marks), INSERT_CHUNK):
            rows = [
                {
                    "kind": mark.kind,
                    "key": mark.key,
                    "order_id": mark.order_id,
                    "period": mark.period,
                    "stage": mark.stage,
                    "created_at": now,
                }
                for mark in marks[start : start + INSERT_CHUNK]
            ]
            result = await self.session.execute(
                insert_ignore(self.session, m.AlertMark)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(m.AlertMark.kind, m.AlertMark.key)
            )
            added.update((kind, key) for kind, key in result)
        return added

    async def has_alert_mark(self, kind: str, key: str) -> bool:
        found = await self.session.scalar(
            select(m.AlertMark.key).where(m.AlertMark.kind == kind, m.AlertMark.key == key)
        )
        return found is not None

    async def remove_alert_mark(self, kind: str, key: str) -> None:
        await self.session.execute(
            delete(m.AlertMark).where(m.AlertMark.kind == kind, m.AlertMark.key == key)
        )
