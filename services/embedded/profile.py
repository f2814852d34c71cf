"""Profile settings and the payment gate of the embedded billing."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, update

from services.contracts.profile import (
    CODE_MAX_ATTEMPTS,
    EMAIL_CODE_TTL_SECONDS,
    FLAGS,
    OPTIONAL_FIELDS,
    PHONE_CODE_TTL_SECONDS,
    PHONE_MAX_ATTEMPTS,
    REQUIRED_FOR_PAYMENT,
    RESEND_COOLDOWN_SECONDS,
    TEXT_FIELDS,
    CodeCheck,
    Profile,
)
from services.embedded import models as m
from services.embedded.rates import RatesMixin
from services.errors import AlreadyDone, InvalidState, PaymentBlocked, RateLimited, ValidationFailed
from services.money import convert, exponent
from services.security import hash_code, hash_secret, verify_secret
from services.validation import (
    ascii_digits,
    normalize_phone,
    validate_code_word,
    validate_country,
    validate_email,
    validate_ip_allowlist,
    validate_password,
    validate_profile_field,
    validate_text,
)

THRESHOLD_MAX_BASE_UNITS = 1_000_000


class ProfileMixin(RatesMixin):
    async def missing_required_fields(self, account_id: int) -> list[str]:
        row = await self._account_row(account_id)
        return _missing(row)

    async def require_payment_allowed(self, account_id: int) -> None:
        missing = await self.missing_required_fields(account_id)
        if missing:
            raise PaymentBlocked(missing=missing)
        row = await self._account_row(account_id)
        if row.profile_type == "company" and not row.company_verified:
            raise PaymentBlocked(company_unverified=True)

    async def check_code_word(self, account_id: int, code_word: str) -> bool:
        row = await self._account_row(account_id)
        return await verify_secret(code_word.strip(), row.code_word_hash)

    async def approve_company(self, account_id: int) -> None:
        row = await self._account_row(account_id)
        row.company_verified = True
        await self.session.flush()

    # ---- reading -----------------------------------------------------------------------------
    async def _profile_rates(self) -> dict[str, Decimal]:
        """Units of each currency per 1 base unit: the rates in force (payments' get_rates)."""
        return dict((await self.get_rates()).rates)

    async def get_profile(self, account_id: int) -> Profile:
        row = await self._account_row(account_id)
        return await self._profile(row)

    async def _profile(self, row: m.Account) -> Profile:
        rates = await self._profile_rates()
        display = row.currency

        def shown(minor: int | None) -> int | None:
            if minor is None or display not in rates:
                return None
            return convert(minor, self.base_currency, display, rates)

        return Profile(
            account_id=row.id,
            login=row.login,
            language=row.language,
            currency=display,
            base_currency=self.base_currency,
            balance_minor=row.balance_minor,
            balance_display_minor=shown(row.balance_minor),
            newsletter=row.newsletter,
            low_balance_threshold_minor=row.low_balance_threshold_minor,
            low_balance_threshold_display_minor=shown(row.low_balance_threshold_minor),
            auto_renew_default=row.auto_renew_default,
            pay_without_auth=row.pay_without_auth,
            country=row.country,
            profile_type=row.profile_type,
            company_name=row.company_name,
            company_tax_id=row.company_tax_id,
            company_verified=row.company_verified,
            last_name=row.last_name,
            first_name=row.first_name,
            email=row.email,
            email_confirmed=row.email_confirmed,
            phone=row.phone,
            phone_verified=row.phone_verified,
            email_invoices=row.email_invoices,
            email_support=row.email_support,
            email_abuse=row.email_abuse,
            code_word_set=bool(row.code_word_hash),
            ip_allowlist=[line for line in (row.ip_allowlist or "").splitlines() if line],
            show_last_ip=row.show_last_ip,
            last_ip=row.last_ip,
            last_login_at=row.last_login_at,
            password_set=bool(row.password_hash),
            region=row.region,
            city=row.city,
            postcode=row.postcode,
            address=row.address,
            missing=_missing(row),
        )

    async def _saved(self, row: m.Account) -> Profile:
        await self.session.flush()
        return await self._profile(row)

    # ---- simple settings ---------------------------------------------------------------------
    async def set_flag(self, account_id: int, flag: str, value: bool) -> Profile:
        if flag not in FLAGS:
            raise ValidationFailed("unknown_setting")
        row = await self._account_row(account_id)
        setattr(row, flag, bool(value))
        return await self._saved(row)

    async def set_profile_field(self, account_id: int, name: str, value: str | None) -> Profile:
        if name not in TEXT_FIELDS:
            raise ValidationFailed("unknown_setting")
        cleaned = validate_profile_field(name, value or "")
        if cleaned is None and name not in OPTIONAL_FIELDS:
            raise ValidationFailed("empty")
        row = await self._account_row(account_id)
        setattr(row, name, cleaned)
        return await self._saved(row)

    async def set_low_balance_threshold(
        self, account_id: int, amount_minor: int | None, currency: str
    ) -> Profile:
        row = await self._account_row(account_id)
        if amount_minor is None:
            row.low_balance_threshold_minor = None
        else:
            if amount_minor <= 0:
                raise ValidationFailed("not_positive")
            rates = await self._profile_rates()
            if currency not in rates:
                raise ValidationFailed("currency_unavailable")
            base_minor = convert(amount_minor, currency, self.base_currency, rates)
            if base_minor > _max_threshold_minor(self.base_currency):
                raise ValidationFailed("too_large")
            row.low_balance_threshold_minor = max(base_minor, 1)
        # A new threshold is a new rule: the next scan may alert once for it.
        row.low_balance_alerted = False
        return await self._saved(row)

    async def set_currency(self, account_id: int, currency: str) -> Profile:
        currency = currency.upper()
        if currency not in self.config.currencies and currency != self.base_currency:
            raise ValidationFailed("currency_unavailable")
        if currency not in await self._profile_rates():
            raise ValidationFailed("currency_unavailable")
        row = await self._account_row(account_id)
        row.currency = currency
        return await self._saved(row)

    async def set_individual(self, account_id: int) -> Profile:
        row = await self._account_row(account_id)
        row.profile_type = "individual"
        return await self._saved(row)

    async def set_country(self, account_id: int, country: str) -> Profile:
        code = validate_country(country)
        row = await self._account_row(account_id)
        if row.country:
            raise AlreadyDone("country_set")
        row.country = code
        return await self._saved(row)

    async def set_company(self, account_id: int, name: str, tax_id: str) -> Profile:
        company = validate_text("company_name", name, required=True)
        tax = validate_text("company_tax_id", tax_id, required=True)
        row = await self._account_row(account_id)
        row.profile_type = "company"
        row.company_name, row.company_tax_id = company, tax
        row.company_verified = False  # new details: staff verify them again
        return await self._saved(row)

    # ---- e-mail and phone ----------------------------------------------------------------------
    async def set_email(self, account_id: int, email: str) -> Profile:
        address = validate_email(email)
        row = await self._account_row(account_id)
        if (row.email or "").lower() != address.lower():
            row.email = address
            row.email_confirmed = False
            await self._drop_codes(account_id, "email")
        return await self._saved(row)

    async def start_email_confirmation(self, account_id: int) -> str:
        row = await self._account_row(account_id)
        if not row.email or row.email_confirmed:
            raise InvalidState("nothing_to_confirm")
        code = f"{secrets.randbelow(10**6):06d}"
        await self._store_code(account_id, "email", row.email, code, EMAIL_CODE_TTL_SECONDS)
        return code

    async def set_phone(self, account_id: int, phone: str, *, verified: bool = False) -> Profile:
        number = normalize_phone(phone)
        row = await self._account_row(account_id)
        if row.phone != number:
            row.phone, row.phone_verified = number, bool(verified)
            await self._drop_codes(account_id, "phone_call")
        elif verified and not row.phone_verified:
            row.phone_verified = True
            await self._drop_codes(account_id, "phone_call")
        return await self._saved(row)

    async def phone_call_target(self, account_id: int) -> str:
        row = await self._account_row(account_id)
        if not row.phone or row.phone_verified:
            raise InvalidState("nothing_to_confirm")
        await self._check_cooldown(account_id, "phone_call")
        return row.phone

    async def start_phone_confirmation(self, account_id: int, code: str) -> None:
        row = await self._account_row(account_id)
        if not row.phone or row.phone_verified:
            raise InvalidState("nothing_to_confirm")
        if not (len(code) == 4 and ascii_digits(code)):
            raise ValidationFailed("code_format")
        await self._store_code(account_id, "phone_call", row.phone, code, PHONE_CODE_TTL_SECONDS)

    async def confirm_code(self, account_id: int, kind: str, code: str) -> CodeCheck:
        row = await self._account_row(account_id)
        target = row.email if kind == "email" else row.phone
        limit = CODE_MAX_ATTEMPTS if kind == "email" else PHONE_MAX_ATTEMPTS
        pending = await self.session.scalar(
            select(m.Verification)
            .where(
                m.Verification.account_id == account_id,
                m.Verification.kind == kind,
                m.Verification.used.is_(False),
            )
            .order_by(m.Verification.id.desc())
            .limit(1)
            .with_for_update()
        )
        if pending is None or target is None or pending.target != target:
            return CodeCheck("none")
        if pending.attempts >= limit:
            return CodeCheck("exhausted", 0, target)
        if pending.expires_at <= self.now():
            return CodeCheck("expired", 0, target)
        pending.attempts += 1
        if not await verify_secret(code.strip(), pending.code_hash):
            await self.session.flush()
            left = limit - pending.attempts
            return CodeCheck("wrong" if left > 0 else "exhausted", left, target)
        pending.used = True
        if kind == "email":
            row.email_confirmed = True
        else:
            row.phone_verified = True
        await self.session.flush()
        return CodeCheck("ok", limit - pending.attempts, target)

    async def discard_code(self, account_id: int, kind: str) -> None:
        newest = await self.session.scalar(
            select(m.Verification)
            .where(m.Verification.account_id == account_id, m.Verification.kind == kind)
            .order_by(m.Verification.id.desc())
            .limit(1)
        )
        if newest is not None:
            await self.session.delete(newest)
            await self.session.flush()

    async def _check_cooldown(self, account_id: int, kind: str) -> None:
        last = await self.session.scalar(
            select(m.Verification.sent_at)
            .where(m.Verification.account_id == account_id, m.Verification.kind == kind)
            .order_by(m.Verification.id.desc())
            .limit(1)
        )
        if last is not None:
            wait = (last + timedelta(seconds=RESEND_COOLDOWN_SECONDS) - self.now()).total_seconds()
            if wait > 0:
                raise RateLimited(retry_after=int(wait) + 1)

    async def _store_code(
        self, account_id: int, kind: str, target: str, code: str, ttl: int
    ) -> None:
        await self._check_cooldown(account_id, kind)
        await self._drop_codes(account_id, kind)
        now = self.now()
        self.session.add(
            m.Verification(
                account_id=account_id,
                kind=kind,
                target=target,
                code_hash=hash_code(code),
                attempts=0,
                sent_at=now,
                expires_at=now + timedelta(seconds=ttl),
                used=False,
            )
        )
        await self.session.flush()

    async def _drop_codes(self, account_id: int, kind: str) -> None:
        """Older pending codes stop working (the row stays: its sent_at keeps the cooldown)."""
        await self.session.execute(
            update(m.Verification)
            .where(
                m.Verification.account_id == account_id,
                m.Verification.kind == kind,
                m.Verification.used.is_(False),
            )
            .values(used=True)
        )

    # ---- security ------------------------------------------------------------------------------
    async def set_code_word(self, account_id: int, code_word: str) -> None:
        value = validate_code_word(code_word)
        digest = await hash_secret(value)  # before the first query: no lock held meanwhile
        row = await self._account_row(account_id)
        if row.code_word_hash:
            raise AlreadyDone("code_word_set")
        row.code_word_hash = digest
        await self.session.flush()

    async def set_ip_allowlist(self, account_id: int, entries: list[str]) -> Profile:
        normalised = validate_ip_allowlist(entries)
        row = await self._account_row(account_id)
        row.ip_allowlist = "\n".join(normalised)
        return await self._saved(row)

    async def record_last_ip(self, account_id: int, ip: str) -> None:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            return
        row = await self._account_row(account_id)
        row.last_ip = str(address)
        row.last_login_at = self.now()
        await self.session.flush()

    async def set_password(self, account_id: int, password: str) -> None:
        validate_password(password)
        digest = await hash_secret(password)  # before the first query: no lock held meanwhile
        row = await self._account_row(account_id)
        row.password_hash = digest
        row.web_session_epoch += 1  # the web sessions of the old password end
        await self.session.flush()

    async def check_password(self, account_id: int, password: str) -> bool:
        row = await self._account_row(account_id)
        return await verify_secret(password, row.password_hash)


def _missing(row: m.Account) -> list[str]:
    return [name for name in REQUIRED_FOR_PAYMENT if not (getattr(row, name) or "").strip()]


def _max_threshold_minor(currency: str) -> int:
    return THRESHOLD_MAX_BASE_UNITS * 10 ** exponent(currency)
