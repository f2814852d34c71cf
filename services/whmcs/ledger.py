"""Balance and ledger over WHMCS.

The balance is the linked client's `credit` (GetClientsDetails). WHMCS keeps no ledger of the
bot's kind; the closest is the client's credit log (GetCredits: id, date, description, amount,
relid — api-reference/getcredits.md), which records every change of the credit: credit added or
removed (AddCredit), applied to invoices (ApplyCredit) and payments credited (AddTransaction
with credit=true). `list_ledger` shows it newest first, with the balance after each line
computed back from the current credit; `ledger_sum` is its sum (equal to the credit as long
as the credit was only ever changed in ways WHMCS logs).

Staff's /credit and /debit are AddCredit (type add / remove, api-reference/addcredit.md).
AddCredit has no idempotency key, so the key is kept in the bot store before the call
("pending") and after it ("done"), and written into the credit's description as a marker
`[bot:<kind>:<key>]`. A repeat of a done key is a no-op; a repeat of a pending key (the process
died, or WHMCS did not answer, between the two writes) looks the marker up in the credit log
first and only adds the credit when it is not there. What is left: two concurrent calls with
the same new key may both add it (the store has no insert-if-absent; staff commands are one
person's), and a credit log that WHMCS prunes loses the marker.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from services.contracts.common import LedgerLine, Page
from services.errors import InsufficientFunds, ValidationFailed
from services.money import AMOUNT_MINOR_MAX, to_decimal
from services.whmcs.base import WhmcsBase
from services.whmcs.errors import WhmcsAuthError, WhmcsError
from services.whmcs.models import CreditEntry

LEDGER_STATE = "ledger"  # adapter_state kind: idempotency key -> {"status": pending|done}
MARKER_PREFIX = "[bot:"
KEY_LIMIT = 128  # adapter_state.key


def state_key(key: str) -> str:
    """A store key for any text: itself when short enough, else its digest."""
    if len(key) <= KEY_LIMIT:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def marker(kind: str, key: str) -> str:
    return f"{MARKER_PREFIX}{kind}:{state_key(key)}]"


def line_kind(entry: CreditEntry) -> str:
    """Our kind of a credit log line: from our marker, else from WHMCS's own wording."""
    start = entry.description.find(MARKER_PREFIX)
    if start >= 0:
        kind = entry.description[start + len(MARKER_PREFIX) :].split(":", 1)[0]
        if kind:
            return kind
    if entry.description.startswith("Credit Applied to Invoice"):
        return "order"
    if "Transaction ID" in entry.description:
        return "topup"
    return "adjustment" if entry.amount_minor > 0 else "other"


def check_amount(amount_minor: int) -> None:
    if amount_minor <= 0:
        raise ValidationFailed("not_positive")
    if amount_minor > AMOUNT_MINOR_MAX:
        raise ValidationFailed("too_large")


class WhmcsLedgerCore(WhmcsBase):
    async def credit(
        self,
        account_id: int,
        amount_minor: int,
        *,
        kind: str,
        description: str = "",
        reference: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> LedgerLine | None:
        check_amount(amount_minor)
        return await self._change_credit(
            account_id, amount_minor, kind, description, idempotency_key, actor
        )

    async def debit(
        self,
        account_id: int,
        amount_minor: int,
        *,
        kind: str,
        description: str = "",
        reference: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> LedgerLine | None:
        check_amount(amount_minor)
        return await self._change_credit(
            account_id, -amount_minor, kind, description, idempotency_key, actor
        )

    async def _change_credit(
        self,
        account_id: int,
        delta: int,
        kind: str,
        description: str,
        key: str | None,
        actor: str | None,
    ) -> LedgerLine | None:
        """AddCredit add/remove once per key (see the module's docstring)."""
        client_id = await self._client_id(account_id)
        if key is not None and await self._key_applied(client_id, kind, key):
            await self._key_done(key, client_id, delta)
            return None
        client = await self._client_details(client_id, fresh=True)
        if delta < 0 and client.credit_minor < -delta:
            raise InsufficientFunds(-delta - client.credit_minor, client.currency_code)
        if key is not None:
            pending = {"status": "pending", "client_id": client_id, "delta": delta}
            await self.local.put_adapter_state(LEDGER_STATE, state_key(key), pending)
        text = self._credit_description(kind, description, key, actor)
        amount = to_decimal(abs(delta), client.currency_code)
        try:
            if delta > 0:
                balance = await self.client.add_credit(
                    client_id, amount, text, client.currency_code
                )
            else:
                balance = await self.client.remove_credit(
                    client_id, amount, text, client.currency_code
                )
        except WhmcsError as error:  # refused: it did not happen, the key is free again
            if key is not None:
                await self.local.delete_adapter_state(LEDGER_STATE, state_key(key))
            if isinstance(error, WhmcsAuthError):
                raise  # WHMCS refused the bot: BillingUnavailable
            raise ValidationFailed("billing_refused", message=error.message[:200]) from error
        finally:
            self._client_changed(client_id)
        if key is not None:
            await self._key_done(key, client_id, delta)
        return LedgerLine(
            id=0,  # AddCredit returns no id of the credit log line
            amount_minor=delta,
            currency=client.currency_code,
            balance_after_minor=balance,
            kind=kind,
            description=description[:300],
            reference=None,
            created_at=datetime.now(UTC),
            actor=actor,
        )

    async def _key_done(self, key: str, client_id: int, delta: int) -> None:
        done = {"status": "done", "client_id": client_id, "delta": delta}
        await self.local.put_adapter_state(LEDGER_STATE, state_key(key), done)

    @staticmethod
    def _credit_description(kind: str, description: str, key: str | None, actor: str | None) -> str:
        parts = [description.strip()[:200] or kind]
        if actor:
            parts.append(f"({actor[:64]})")
        if key is not None:
            parts.append(marker(kind, key))
        return " ".join(parts)

    async def _key_applied(self, client_id: int, kind: str, key: str) -> bool:
        """Whether the credit change of `key` happened (done, or pending and logged)."""
        state = await self.local.get_adapter_state(LEDGER_STATE, state_key(key))
        if state is None:
            return False
        return state.get("status") == "done" or await self._marker_logged(client_id, kind, key)

    async def _marker_logged(self, client_id: int, kind: str, key: str) -> bool:
        """The crash window: was the credit with this key's marker added after all?"""
        client = await self._client_details(client_id)
        wanted = marker(kind, key)
        entries = await self.client.get_credits(client_id, client.currency_code)
        return any(wanted in entry.description for entry in entries)

    async def _credit_log(self, account_id: int) -> tuple[list[LedgerLine], int]:
        """The client's credit log as ledger lines, newest first, and the current credit."""
        client = await self._client_of(account_id)
        entries = await self.client.get_credits(client.id, client.currency_code)
        entries.sort(key=lambda e: (e.date or datetime.min.date(), e.id), reverse=True)
        balance, lines = client.credit_minor, []
        for entry in entries:
            created = datetime.combine(entry.date or datetime.min.date(), datetime.min.time())
            lines.append(
                LedgerLine(
                    id=entry.id,
                    amount_minor=entry.amount_minor,
                    currency=client.currency_code,
                    balance_after_minor=balance,
                    kind=line_kind(entry),
                    description=entry.description[:300],
                    reference=f"invoice:{entry.relid}" if entry.relid else None,
                    created_at=created.replace(tzinfo=UTC),
                )
            )
            balance -= entry.amount_minor
        return lines, client.credit_minor

    async def list_ledger(
        self, account_id: int, offset: int = 0, limit: int = 10
    ) -> Page[LedgerLine]:
        offset, limit = max(0, offset), max(1, min(limit, 100))
        lines, _ = await self._credit_log(account_id)
        return Page(lines[offset : offset + limit], len(lines), offset, limit)

    async def ledger_sum(self, account_id: int) -> int:
        lines, _ = await self._credit_log(account_id)
        return sum(line.amount_minor for line in lines)
