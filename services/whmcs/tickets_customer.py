"""Support tickets over WHMCS, the customer's side (and what the staff side shares).

Ticket ids are WHMCS's numeric ticket ids (`id`/`ticketid`, not the `tid` mask). A ticket
belongs to an account when its `userid` is the account's linked client; any other is
NotFound. Files stay Telegram file ids, kept in the bot store by ticket and message
(`FILES_KIND`); WHMCS is told how many there were (`files_note`).

Kept locally (adapter_state, see ticket_texts.py): the ticket's language and when the bot
closed it (WHMCS gives no closing time: the reopen window counts from there, else from the last
reply), the files, the staff replies the bot posted (so the sync job does not send them twice)
and the per-account creation times of the hourly limit. The limits are counted against WHMCS
and the local record at the moment of the call; two bot instances creating tickets for one
customer at the same instant may both pass (WHMCS has no lock we could take).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contracts.common import Page
from services.contracts.tickets import (
    DEPARTMENTS,
    Attachment,
    Ticket,
    TicketMessage,
    checked_message,
    checked_subject,
)
from services.errors import AlreadyDone, InvalidState, LimitReached, NotFound, ValidationFailed
from services.whmcs import models as wm
from services.whmcs.base import WhmcsBase
from services.whmcs.errors import WhmcsError
from services.whmcs.ticket_texts import (
    ALL_ACTIVE,
    CURSOR_KIND,
    CUSTOMER_ECHO_KIND,
    FILES_KIND,
    META_KIND,
    RATE_KIND,
    WHMCS_CLOSED,
    WHMCS_OPEN,
    check_ticket_id,
    files_from,
    files_value,
    fingerprint,
    plain_text,
    split_files_note,
    status_of,
    utc,
    with_files_note,
)

log = logging.getLogger(__name__)

TICKET_RATE_WINDOW = timedelta(hours=1)
ECHO_LIFETIME = timedelta(days=7)  # a reply WHMCS never got (the call failed) is forgotten
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class WhmcsTicketsBase(WhmcsBase):
    # ---- reading tickets -------------------------------------------------------------------
    async def _fetch(self, ticket_id: int) -> tuple[wm.Ticket, tuple[wm.TicketNote, ...]]:
        """GetTicket; NotFound for an id WHMCS does not know."""
        if not check_ticket_id(ticket_id):
            raise NotFound("ticket")
        try:
            return await self.client.get_ticket_with_notes(ticket_id)
        except WhmcsError as exc:
            if "not found" in str(exc).lower():
                raise NotFound("ticket") from exc
            raise

    async def _own(self, account_id: int, ticket_id: int) -> wm.Ticket:
        client_id = await self._client_id(account_id)
        ticket, _notes = await self._fetch(ticket_id)
        if ticket.userid != client_id:
            raise NotFound("ticket")
        return ticket

    def _department_of(self, dept_id: int) -> str:
        for name, mapped in self.options.departments.items():
            if mapped == dept_id and name in DEPARTMENTS:
                return name
        return DEPARTMENTS[0]  # a WHMCS department we do not map: shown as technical

    def _dept_id(self, department: str) -> int:
        if department not in DEPARTMENTS:
            raise ValidationFailed("department")
        dept_id = self.options.departments.get(department)
        if dept_id is None:
            log.warning("WHMCS_DEPARTMENTS maps no WHMCS department to %r", department)
            raise ValidationFailed("department", setting="WHMCS_DEPARTMENTS", name=department)
        return dept_id

    async def _meta(self, ticket_id: int) -> dict[str, Any]:
        return await self.local.get_adapter_state(META_KIND, str(ticket_id)) or {}

    def _dto(self, ticket: wm.Ticket, account_id: int, meta: dict[str, Any]) -> Ticket:
        created = utc(ticket.opened) or _EPOCH
        updated = utc(ticket.lastreply) or created
        closed_at: datetime | None = None
        if ticket.status == WHMCS_CLOSED:
            stored = meta.get("closed_at")
            closed_at = datetime.fromisoformat(stored) if isinstance(stored, str) else updated
        language = meta.get("language")
        return Ticket(
            id=ticket.id,
            account_id=account_id,
            department=self._department_of(ticket.deptid),
            subject=plain_text(ticket.subject),
            status=status_of(ticket.status),
            created_at=created,
            updated_at=updated,
            closed_at=closed_at,
            language=language if isinstance(language, str) else None,
        )

    async def _replies(self, ticket: wm.Ticket) -> list[TicketMessage]:
        """The conversation (no notes); files of messages the bot posted come from the store."""
        messages = []
        for reply in ticket.replies:
            text, announced = split_files_note(plain_text(reply.message))
            files: list[Attachment] = []
            if announced:
                key = f"{ticket.id}:{fingerprint(plain_text(reply.message))}"
                files = files_from(await self.local.get_adapter_state(FILES_KIND, key))
            messages.append(
                TicketMessage(
                    id=reply.reply_id,
                    ticket_id=ticket.id,
                    author="staff" if reply.admin else "customer",
                    author_name=reply.admin or reply.name,
                    text=text,
                    created_at=utc(reply.posted) or utc(ticket.opened) or _EPOCH,
                    attachments=files,
                )
            )
        return messages

    async def _keep_files(self, ticket_id: int, sent: str, attachments: list[Attachment]) -> None:
        if attachments:
            key = f"{ticket_id}:{fingerprint(sent)}"
            await self.local.put_adapter_state(FILES_KIND, key, files_value(attachments))

    async def _remember_echo(self, kind: str, ticket_id: int, message: str) -> None:
        """Before the bot posts a reply: the sync job may see it in WHMCS at once and must
        know it as the bot's own (ticket_sync.py)."""
        key = f"{ticket_id}:{fingerprint(message)}"
        known = await self.local.get_adapter_state(kind, key) or {}
        count = known.get("count")
        value = {"count": (count if isinstance(count, int) else 0) + 1}
        expires = _now() + ECHO_LIFETIME
        await self.local.put_adapter_state(kind, key, value, expires_at=expires)

    async def _set_status(self, ticket_id: int, status: str) -> None:
        await self.client.update_ticket(ticket_id, status=status)
        closed_at = _now().isoformat() if status == WHMCS_CLOSED else None
        meta = await self._meta(ticket_id)
        await self.local.put_adapter_state(
            META_KIND, str(ticket_id), meta | {"closed_at": closed_at}
        )


class WhmcsCustomerTicketsMixin(WhmcsTicketsBase):
    async def create_ticket(
        self,
        account_id: int,
        department: str,
        subject: str,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        language: str | None = None,
    ) -> Ticket:
        attachments = list(attachments or [])
        dept_id = self._dept_id(department)
        subject = checked_subject(subject)
        text = checked_message(text, attachments)
        client_id = await self._client_id(account_id)
        await self.check_new_ticket(account_id)
        message = with_files_note(text, attachments)
        try:
            opened = await self.client.open_ticket(client_id, dept_id, subject, message)
        except WhmcsError as exc:
            if "department" in str(exc).lower():
                log.warning("WHMCS refused department %s (%s): %s", dept_id, department, exc)
                raise ValidationFailed("department", setting="WHMCS_DEPARTMENTS") from exc
            raise
        await self._remember_new(account_id, opened.id, message, attachments, language)
        now = _now()
        return Ticket(opened.id, account_id, department, subject, "open", now, now, None, language)

    async def _remember_new(
        self,
        account_id: int,
        ticket_id: int,
        message: str,
        attachments: list[Attachment],
        language: str | None,
    ) -> None:
        """After OpenTicket: the files, the language, the sync cursor (every reply after the
        first message is new) and the hourly count."""
        await self._keep_files(ticket_id, message, attachments)
        await self.local.put_adapter_state(META_KIND, str(ticket_id), {"language": language})
        await self.local.put_adapter_state(
            CURSOR_KIND, str(ticket_id), {"reply_id": 0, "lastreply": ""}
        )
        now = _now()
        recent = [
            t for t in await self._recent_creations(account_id) if t > now - TICKET_RATE_WINDOW
        ]
        value = {"created": [t.isoformat() for t in [*recent, now]]}
        await self.local.put_adapter_state(RATE_KIND, str(account_id), value)

    async def _recent_creations(self, account_id: int) -> list[datetime]:
        state = await self.local.get_adapter_state(RATE_KIND, str(account_id)) or {}
        moments = state.get("created")
        if not isinstance(moments, list):
            return []
        return sorted(datetime.fromisoformat(m) for m in moments if isinstance(m, str))

    async def check_new_ticket(self, account_id: int) -> None:
        client_id = await self._client_id(account_id)
        open_limit = self.options.max_open_tickets
        hourly = self.options.max_tickets_per_hour
        if open_limit:
            count = 0
            async for _ticket in self.client.iter_tickets(client_id=client_id, status=ALL_ACTIVE):
                count += 1
            if count >= open_limit:
                raise LimitReached("open_tickets", open_limit)
        if hourly:
            now = _now()
            recent = [
                t for t in await self._recent_creations(account_id) if t > now - TICKET_RATE_WINDOW
            ]
            if len(recent) >= hourly:
                frees_at = recent[len(recent) - hourly] + TICKET_RATE_WINDOW
                wait = math.ceil((frees_at - now).total_seconds())
                raise LimitReached("tickets_per_hour", hourly, retry_after=max(1, wait))

    async def list_tickets(self, account_id: int, offset: int = 0, limit: int = 5) -> Page[Ticket]:
        client_id = await self._client_id(account_id)
        offset, limit = max(0, offset), max(1, min(limit, 100))
        found = [
            self._dto(ticket, account_id, {})
            async for ticket in self.client.iter_tickets(client_id=client_id)
            if ticket.userid == client_id
        ]
        found.sort(key=lambda t: (t.status == "closed", -t.updated_at.timestamp(), -t.id))
        return Page(found[offset : offset + limit], len(found), offset, limit)

    async def get_ticket(self, account_id: int, ticket_id: int) -> Ticket:
        ticket = await self._own(account_id, ticket_id)
        return self._dto(ticket, account_id, await self._meta(ticket_id))

    async def ticket_messages(self, account_id: int, ticket_id: int) -> list[TicketMessage]:
        # GetTicket's notes are never read into the customer's view.
        return await self._replies(await self._own(account_id, ticket_id))

    async def add_customer_message(
        self,
        account_id: int,
        ticket_id: int,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        reopen_window: timedelta,
    ) -> Ticket:
        attachments = list(attachments or [])
        ticket = await self._own(account_id, ticket_id)
        text = checked_message(text, attachments)
        meta = await self._meta(ticket_id)
        current = self._dto(ticket, account_id, meta)
        if current.closed_at is not None and _now() - current.closed_at > reopen_window:
            raise InvalidState("reopen_window")
        message = with_files_note(text, attachments)
        await self._remember_echo(CUSTOMER_ECHO_KIND, ticket_id, message)
        await self._keep_files(ticket_id, message, attachments)
        # WHMCS's default status after a client's reply is Customer-Reply, closed or not.
        client_id = await self._client_id(account_id)
        await self.client.add_ticket_reply(ticket_id, message, client_id=client_id)
        if current.closed_at is not None:
            await self.local.put_adapter_state(
                META_KIND, str(ticket_id), meta | {"closed_at": None}
            )
        return await self.get_ticket(account_id, ticket_id)

    async def close_ticket(self, account_id: int, ticket_id: int) -> Ticket:
        ticket = await self._own(account_id, ticket_id)
        if ticket.status == WHMCS_CLOSED:
            raise AlreadyDone("closed")
        await self._set_status(ticket_id, WHMCS_CLOSED)
        return await self.get_ticket(account_id, ticket_id)

    async def reopen_ticket(
        self, account_id: int, ticket_id: int, *, reopen_window: timedelta
    ) -> Ticket:
        ticket = await self._own(account_id, ticket_id)
        if ticket.status != WHMCS_CLOSED:
            raise AlreadyDone("not_closed")
        current = self._dto(ticket, account_id, await self._meta(ticket_id))
        if current.closed_at is not None and _now() - current.closed_at > reopen_window:
            raise InvalidState("reopen_window")
        await self._set_status(ticket_id, WHMCS_OPEN)
        return await self.get_ticket(account_id, ticket_id)
