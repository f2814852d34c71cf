"""Profile settings of an account (the cabinet's Settings page) and the payment gate.

Rules kept by every implementation:
- the login is never changed here;
- `currency` is the display ("site") currency: changing it changes how the balance and
  future invoices are shown/issued; the ledger keeps its amounts in the base currency;
- `low_balance_threshold_minor` is stored in base-currency minor units (the alerts job reads it
  so); the user types it in the display currency and sees it converted back;
- secrets (password, code word, one-time codes) are stored only as scrypt hashes and never
  returned; the code word can be set once;
- the country can be set by the customer once, while it is empty; changing it is staff's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.contracts.common import read_only

REQUIRED_FOR_PAYMENT = ("last_name", "first_name", "email", "city", "address")

# Text fields set with `set_profile_field`; value None (or "") clears an optional one.
TEXT_FIELDS = (
    "last_name",
    "first_name",
    "email_invoices",
    "email_support",
    "email_abuse",
    "region",
    "city",
    "postcode",
    "address",
)
OPTIONAL_FIELDS = ("email_invoices", "email_support", "email_abuse", "region", "postcode")
FLAGS = ("newsletter", "auto_renew_default", "pay_without_auth", "show_last_ip")

EMAIL_CODE_TTL_SECONDS = 15 * 60
PHONE_CODE_TTL_SECONDS = 10 * 60
CODE_MAX_ATTEMPTS = 5
PHONE_MAX_ATTEMPTS = 3
RESEND_COOLDOWN_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Profile:
    account_id: int
    login: str
    language: str | None
    currency: str  # display currency
    base_currency: str
    balance_minor: int  # base currency (the ledger's)
    balance_display_minor: int | None  # in `currency`; None when no rate is known
    newsletter: bool
    low_balance_threshold_minor: int | None  # base currency; None = alert off
    low_balance_threshold_display_minor: int | None  # the same in `currency`
    auto_renew_default: bool
    pay_without_auth: bool
    country: str | None
    profile_type: str  # individual, company
    company_name: str | None
    company_tax_id: str | None
    company_verified: bool
    last_name: str | None
    first_name: str | None
    email: str | None
    email_confirmed: bool
    phone: str | None
    phone_verified: bool
    email_invoices: str | None
    email_support: str | None
    email_abuse: str | None
    code_word_set: bool
    ip_allowlist: list[str] = field(default_factory=list)
    show_last_ip: bool = False
    last_ip: str | None = None
    last_login_at: datetime | None = None  # when last_ip was recorded (a web login)
    password_set: bool = False
    region: str | None = None
    city: str | None = None
    postcode: str | None = None
    address: str | None = None
    missing: list[str] = field(default_factory=list)  # REQUIRED_FOR_PAYMENT still empty

    @property
    def payments_blocked_by_company(self) -> bool:
        return self.profile_type == "company" and not self.company_verified


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """Outcome of entering a one-time code. status: ok, wrong, expired, exhausted, none
    (no pending code). `attempts_left` counts after this attempt."""

    status: str
    attempts_left: int = 0
    target: str | None = None


class ProfileApi(Protocol):
    @read_only
    async def missing_required_fields(self, account_id: int) -> list[str]:
        """Names from REQUIRED_FOR_PAYMENT that are still empty, in that order."""

    @read_only
    async def require_payment_allowed(self, account_id: int) -> None:
        """Raise PaymentBlocked (missing fields, or an unverified company profile)."""

    @read_only
    async def check_code_word(self, account_id: int, code_word: str) -> bool:
        """Staff check: does `code_word` match the stored hash? Never reveals it."""

    async def approve_company(self, account_id: int) -> None:
        """Staff lift the payment block of a company profile."""

    # ---- Settings page ---------------------------------------------------------------------
    @read_only
    async def get_profile(self, account_id: int) -> Profile: ...

    async def set_flag(self, account_id: int, flag: str, value: bool) -> Profile:
        """One of FLAGS on/off."""

    async def set_profile_field(self, account_id: int, name: str, value: str | None) -> Profile:
        """One of TEXT_FIELDS, validated (ValidationFailed); required ones cannot be cleared."""

    async def set_low_balance_threshold(
        self, account_id: int, amount_minor: int | None, currency: str
    ) -> Profile:
        """`amount_minor` in `currency` (None = off); stored converted to the base currency."""

    async def set_currency(self, account_id: int, currency: str) -> Profile:
        """A configured currency with a known rate; the ledger is not touched."""

    async def set_individual(self, account_id: int) -> Profile: ...

    async def set_country(self, account_id: int, country: str) -> Profile:
        """The customer sets the country once, while it is empty (an ISO 3166-1 alpha-2 code,
        services.validation.validate_country); AlreadyDone when it is set: a change goes
        through a ticket to staff."""

    async def set_company(self, account_id: int, name: str, tax_id: str) -> Profile:
        """Profile type company with its details; payments blocked until approve_company."""

    async def set_email(self, account_id: int, email: str) -> Profile:
        """Save a new main e-mail as unconfirmed (the same, already confirmed one: no change)."""

    async def start_email_confirmation(self, account_id: int) -> str:
        """A fresh one-time code for the current e-mail (stored hashed); the caller e-mails it.
        RateLimited within the resend cooldown; InvalidState when there is nothing to confirm."""

    async def set_phone(self, account_id: int, phone: str, *, verified: bool = False) -> Profile:
        """E.164 number; `verified` for the user's own shared Telegram contact."""

    @read_only
    async def phone_call_target(self, account_id: int) -> str:
        """The number to call for a call-password; RateLimited / InvalidState as above."""

    async def start_phone_confirmation(self, account_id: int, code: str) -> None:
        """Store the 4 digits the telephony placed as the caller's number ending."""

    async def discard_code(self, account_id: int, kind: str) -> None:
        """Forget the newest code of `kind` (it could not be delivered): no cooldown for it."""

    async def confirm_code(self, account_id: int, kind: str, code: str) -> CodeCheck:
        """kind: email or phone_call. Counts the attempt even when it is wrong."""

    async def set_code_word(self, account_id: int, code_word: str) -> None:
        """Once only (AlreadyDone afterwards); stored hashed."""

    async def set_ip_allowlist(self, account_id: int, entries: list[str]) -> Profile:
        """Entries from services.validation.parse_ip_allowlist; empty = no restriction."""

    async def record_last_ip(self, account_id: int, ip: str) -> None:
        """A web login (the Mini App opened, the web login form) notes the caller's address
        and the time for "show last IP"; anything that is not an IP address is ignored."""

    async def set_password(self, account_id: int, password: str) -> None:
        """Validated by the strength rules, stored hashed."""

    @read_only
    async def check_password(self, account_id: int, password: str) -> bool: ...
