"""Alerts by e-mail for customers who blocked the bot.

An alert's outbox row carries its e-mail copy, rendered with its text in the customer's
language (services/alerts.py). When Telegram answers 403 (blocked, deactivated) and SMTP is
configured, the sender (services/outbox.py) turns such rows `email_pending` instead of closing
them; other rows (screens, receipts, ticket relays, broadcasts) are closed as before. This
sender then, for each due row:

1. claims it (locked_by/locked_until, like the Telegram rows: two instances or an overlapping
   run never take the same row) and commits;
2. reads the account's profile (its own short read: an external billing answers over HTTP)
   — no confirmed e-mail: the row is closed as unreachable, as it was before e-mail existed;
3. sends the e-mail with no transaction open, then marks the row `emailed`.

An SMTP failure (or a billing that does not answer) puts the row back with an exponential
backoff; after `max_attempts` it is failed and logged (one line, no traceback). A crash between
the e-mail and its mark sends it again once the claim has expired — at least once, like the
Telegram rows; a finished row is never claimed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.billing import BillingGateway
from services.contracts.alerts import OutboxEmail
from services.email import EmailError, Mailer
from services.errors import BillingUnavailable, NotFound

log = logging.getLogger(__name__)


@dataclass
class EmailReport:
    emailed: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0  # no confirmed e-mail


class _Retry(Exception):
    """This attempt failed for a reason that may pass (SMTP down, the billing unavailable)."""


class OutboxMailer:
    def __init__(
        self,
        gateway: BillingGateway,
        mailer: Mailer,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        batch_size: int = 5,
        lease: timedelta = timedelta(minutes=5),  # batch_size e-mails at SMTP's 20 s timeout
        max_attempts: int = 8,
        base_backoff: float = 60.0,
        max_backoff: float = 3600.0,
    ) -> None:
        self.gateway, self.mailer, self.owner, self.clock = gateway, mailer, owner, clock
        self.batch_size, self.lease = batch_size, lease
        self.max_attempts = max_attempts
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        self._stopping = False

    def stop(self) -> None:
        """No new e-mail starts; the one in flight finishes and is recorded."""
        self._stopping = True

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def backoff(self, attempts: int) -> float:
        """Seconds before e-mail attempt number `attempts + 1`: 1, 2, 4... minutes, at most
        max_backoff."""
        return min(self.max_backoff, self.base_backoff * 2.0 ** max(0, attempts - 1))

    async def send_due(self, *, budget: float | None = None) -> EmailReport:
        """Send the due e-mails, a claim of `batch_size` at a time, until none is due, stop()
        or `budget` seconds have passed (claimed rows not sent by then are given back)."""
        report = EmailReport()
        deadline = None if budget is None else self.clock() + budget
        while not self._stopping and (deadline is None or self.clock() < deadline):
            async with self.gateway.transaction() as billing:
                claimed = await billing.claim_outbox_emails(
                    self.owner, self.now(), self.lease, self.batch_size
                )
            for done, email in enumerate(claimed):
                if self._stopping or (deadline is not None and self.clock() >= deadline):
                    await self._give_back(claimed[done:])
                    return report
                await self._send_one(email, report)
            if len(claimed) < self.batch_size:
                break
        return report

    async def _give_back(self, emails: list[OutboxEmail]) -> None:
        async with self.gateway.transaction() as billing:
            await billing.release_outbox([email.id for email in emails], self.owner)

    async def _send_one(self, email: OutboxEmail, report: EmailReport) -> None:
        try:
            address = await self._confirmed_address(email.account_id)
            if address is None:
                await self._dropped(email, report)
                return
            await self.mailer.send(address, email.subject, email.body)
        except (_Retry, EmailError) as exc:
            await self._retry(email, str(exc) or type(exc).__name__, report)
            return
        async with self.gateway.transaction() as billing:
            marked = await billing.mark_outbox_emailed(email.id, self.owner, self.now())
        if not marked:  # the claim had expired and another sender took the row
            log.warning("Outbox row %s: e-mailed, but no longer claimed by this sender", email.id)
        report.emailed += 1
        log.info("Outbox row %s: the alert went by e-mail (the chat is unreachable)", email.id)

    async def _confirmed_address(self, account_id: int) -> str | None:
        try:
            async with self.gateway.transaction(read_only=True) as billing:
                profile = await billing.get_profile(account_id)
        except NotFound:
            return None
        except BillingUnavailable as exc:
            raise _Retry(f"billing {exc.reason}") from None
        return profile.email if profile.email and profile.email_confirmed else None

    async def _dropped(self, email: OutboxEmail, report: EmailReport) -> None:
        async with self.gateway.transaction() as billing:
            await billing.mark_outbox_email_dropped(email.id, self.owner, "no confirmed e-mail")
        report.dropped += 1
        log.info("Outbox row %s: the chat is unreachable and no e-mail is confirmed", email.id)

    async def _retry(self, email: OutboxEmail, error: str, report: EmailReport) -> None:
        attempts = email.attempts + 1
        error = f"e-mail: {error}"
        if attempts >= self.max_attempts:
            async with self.gateway.transaction() as billing:
                await billing.mark_outbox_failed(email.id, self.owner, error)
            report.failed += 1
            log.warning("Outbox row %s: %s; given up after %s attempts", email.id, error, attempts)
            return
        not_before = self.now() + timedelta(seconds=self.backoff(attempts))
        async with self.gateway.transaction() as billing:
            await billing.mark_outbox_email_retry(email.id, self.owner, not_before, error)
        report.retried += 1
        log.warning("Outbox row %s: %s; e-mail retried at %s", email.id, error, not_before)
