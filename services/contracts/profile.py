"""Profile settings of an account (the cabinet's Settings page) and the payment gate."""

from __future__ import annotations

from typing import Protocol

REQUIRED_FOR_PAYMENT = ("last_name", "first_name", "email", "city", "address")


class ProfileApi(Protocol):
    async def missing_required_fields(self, account_id: int) -> list[str]:
        """Names from REQUIRED_FOR_PAYMENT that are still empty, in that order."""

    async def require_payment_allowed(self, account_id: int) -> None:
        """Raise PaymentBlocked (missing fields, or an unverified company profile)."""

    async def check_code_word(self, account_id: int, code_word: str) -> bool:
        """Staff check: does `code_word` match the stored hash? Never reveals it."""

    async def approve_company(self, account_id: int) -> None:
        """Staff lift the payment block of a company profile."""
