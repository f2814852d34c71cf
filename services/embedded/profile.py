"""Profile settings and the payment gate of the embedded billing."""

from __future__ import annotations

from services.contracts.profile import REQUIRED_FOR_PAYMENT
from services.embedded.base import EmbeddedBase
from services.errors import PaymentBlocked
from services.security import verify_secret


class ProfileMixin(EmbeddedBase):
    async def missing_required_fields(self, account_id: int) -> list[str]:
        row = await self._account_row(account_id)
        return [name for name in REQUIRED_FOR_PAYMENT if not (getattr(row, name) or "").strip()]

    async def require_payment_allowed(self, account_id: int) -> None:
        missing = await self.missing_required_fields(account_id)
        if missing:
            raise PaymentBlocked(missing=missing)
        row = await self._account_row(account_id)
        if row.profile_type == "company" and not row.company_verified:
            raise PaymentBlocked(company_unverified=True)

    async def check_code_word(self, account_id: int, code_word: str) -> bool:
        row = await self._account_row(account_id)
        return verify_secret(code_word.strip(), row.code_word_hash)

    async def approve_company(self, account_id: int) -> None:
        row = await self._account_row(account_id)
        row.company_verified = True
        await self.session.flush()
