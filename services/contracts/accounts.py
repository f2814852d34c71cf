"""Accounts, balance/ledger and the tariff catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.contracts.common import Account, LedgerLine, Page, Tariff, read_only
from services.contracts.profile import CodeCheck

LINK_CODE_TTL_SECONDS = 15 * 60
LINK_CODE_MAX_ATTEMPTS = 5
LINK_RESEND_COOLDOWN_SECONDS = 60


@dataclass(frozen=True, slots=True)
class LinkCodeLetter:
    """The e-mail with a linking code, in the user's language: `html` has the placeholders
    {code} and {minutes}."""

    subject: str = "Your Telegram link code"
    html: str = (
        "<p>Your code to link Telegram to your account: <b>{code}</b></p>"
        "<p>It is valid for {minutes} minutes. If you did not ask for it, ignore this e-mail.</p>"
    )


class AccountsApi(Protocol):
    base_currency: str

    async def get_or_create_account(
        self,
        telegram_id: int,
        chat_id: int,
        *,
        name: str = "",
        username: str | None = None,
        language: str | None = None,
    ) -> tuple[Account, bool]:
        """Return the caller's account, creating it on first contact (second item: created).
        `language` (one of SUPPORTED_LANGUAGES, from Telegram's language_code) becomes the
        account's language while it has none: pushes sent without an update (alerts) then
        speak the language the screens do."""

    @read_only
    async def find_account_by_telegram(self, telegram_id: int) -> Account | None: ...

    @read_only
    async def find_account_by_login(self, login: str) -> Account | None:
        """The account with this billing login (Settings shows it), compared ignoring case
        and surrounding spaces; None when there is none (the web login)."""

    @read_only
    async def get_account(self, account_id: int) -> Account:
        """Raise NotFound when there is no such account."""

    async def set_language(self, account_id: int, language: str) -> Account: ...

    async def set_chat_reachable(self, chat_id: int, reachable: bool) -> None:
        """Mark a private chat (un)reachable: 403 from Telegram, or the user wrote again."""

    # ---- linking a Telegram account to a client of an external billing --------------------
    # The embedded billing's accounts ARE its clients: `is_linked` is always True there and
    # the other linking methods raise InvalidState("no_linking"); the handlers never offer
    # linking then. Passwords are never asked for: a code by e-mail, or a signed deep link.

    @read_only
    async def is_linked(self, account_id: int) -> bool:
        """Whether the account may use the cabinet (is linked to a billing client)."""

    async def start_linking(
        self, account_id: int, email: str, *, letter: LinkCodeLetter | None = None
    ) -> None:
        """E-mail a one-time code (in `letter`, the words of the user's language; English
        without it) to the client with this address (stored hashed, valid
        LINK_CODE_TTL_SECONDS, LINK_CODE_MAX_ATTEMPTS attempts). An address that is no client's
        is answered exactly the same way (no e-mail goes out, and no code can ever match): the
        caller never learns whether an address is a client. ValidationFailed for a malformed
        address; RateLimited within LINK_RESEND_COOLDOWN_SECONDS of the previous request."""

    async def confirm_linking(self, account_id: int, code: str) -> CodeCheck:
        """Check the code of `start_linking` (CodeCheck: ok, wrong, expired, exhausted, none);
        every attempt counts. On ok the account is linked to the client (a Telegram account
        linked to it before loses the link)."""

    async def link_with_token(self, account_id: int, token: str) -> bool:
        """Link by a one-time signed deep-link token (`/start <token>`); False for a token
        that is malformed, forged, expired or already used."""

    async def unlink(self, account_id: int) -> None:
        """Forget the account's link; it sees the linking explanation again."""


class LedgerApi(Protocol):
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
        """Append a credit; return None when `idempotency_key` was already used (no-op)."""

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
        """Append a debit; never below zero (InsufficientFunds); None on a repeated key."""

    @read_only
    async def list_ledger(
        self, account_id: int, offset: int = 0, limit: int = 10
    ) -> Page[LedgerLine]: ...

    @read_only
    async def ledger_sum(self, account_id: int) -> int:
        """SUM of the ledger: equals the account's balance (checked by tests)."""


class CatalogueApi(Protocol):
    @read_only
    async def list_product_types(self, *, account_id: int | None = None) -> list[str]:
        """`account_id`: priced for that customer (an external billing prices its catalogue in
        each client's currency); None: in the base currency."""

    @read_only
    async def list_tariffs(
        self, product_type: str | None = None, *, account_id: int | None = None
    ) -> list[Tariff]:
        """Prices in the currency of `account_id`'s balance (its base currency)."""

    @read_only
    async def get_tariff(self, tariff_id: int, *, account_id: int | None = None) -> Tariff:
        """Raise NotFound for an unknown or inactive tariff."""
