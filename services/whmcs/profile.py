"""The profile over WHMCS, with the settings WHMCS has no field for kept in the bot's own account
row (`self.local`: the embedded profile on the local database).

In WHMCS (GetClientsDetails to read, UpdateClient to write; api-reference/updateclient.md):
first name `firstname`, last name `lastname`, e-mail `email`, phone `phonenumber`, company name
`companyname` and tax number `tax_id`, street address `address1`, `city`, region `state`,
`postcode`, `country` (set here once while empty; a change goes by a ticket), the newsletter flag
`marketingoptin` (read back as `marketing_emails_opt_in`), and the balance (`credit`, in the
client's currency, which is the account's base currency).

Kept locally (WHMCS has no such field): the display currency, the low-balance threshold, the
auto-renew default, "pay without authorization", "show last IP" and the last IP, the code word,
the IP allow-list, the bot's own cabinet password, the notice e-mail addresses
(`email_invoices`/`email_support`/`email_abuse`: WHMCS's email preferences are on/off switches,
not addresses), the profile type, the company-verified flag (staff's decision in the bot) and
the interface language (the bot's; WHMCS's `language` is left as it is).

E-mail: WHMCS owns the address. A change goes to WHMCS at once (UpdateClient `email`), and the
bot's own confirmation flow (a code to the new address, `email_confirmed`) stays local: the
address is "confirmed" when the local copy equals WHMCS's and was confirmed in the bot. A
change made in WHMCS directly reads as unconfirmed until confirmed in the bot again. The phone
works the same way (`phone_verified` is the bot's).

The low-balance threshold is stored in minor units of the client's WHMCS currency (what the
alerts compare with the credit); the user types it in the display currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from services.contracts.profile import (
    FLAGS,
    OPTIONAL_FIELDS,
    REQUIRED_FOR_PAYMENT,
    TEXT_FIELDS,
    CodeCheck,
    Profile,
)
from services.errors import AlreadyDone, PaymentBlocked, ValidationFailed
from services.money import convert
from services.validation import (
    normalize_phone,
    validate_country,
    validate_email,
    validate_name,
    validate_text,
)
from services.whmcs.base import WhmcsBase
from services.whmcs.errors import WhmcsAuthError, WhmcsError
from services.whmcs.models import ClientDetails
from services.whmcs.transport import ParamValue

# Our text fields that live in WHMCS -> UpdateClient's parameter names.
WHMCS_TEXT_FIELDS = {
    "last_name": "lastname",
    "first_name": "firstname",
    "region": "state",
    "city": "city",
    "postcode": "postcode",
    "address": "address1",
}
# UpdateClient's documented error messages -> our validation codes.
UPDATE_ERRORS = {
    "duplicate email address": "email_taken",
    "the email address entered is not valid": "email_invalid",
}


def _phone(value: str) -> str | None:
    """WHMCS's phone as E.164 when it is one (WHMCS may keep "+44.1234567"), else as it is."""
    if not value:
        return None
    try:
        return normalize_phone(value.replace(".", ""))
    except ValidationFailed:
        return value


def _required_missing(client: ClientDetails) -> list[str]:
    values = {
        "last_name": client.lastname,
        "first_name": client.firstname,
        "email": client.email,
        "city": client.city,
        "address": client.address1,
    }
    return [name for name in REQUIRED_FOR_PAYMENT if not values.get(name, "").strip()]


class WhmcsProfileMixin(WhmcsBase):
    # ---- reading -----------------------------------------------------------------------------
    async def _rates(self) -> dict[str, Decimal]:
        return dict((await self.local.get_rates()).rates)

    async def get_profile(self, account_id: int) -> Profile:
        client = await self._client_of(account_id)
        local = await self.local.get_profile(account_id)
        return self._merged(local, client, await self._rates())

    def _merged(self, local: Profile, client: ClientDetails, rates: dict[str, Decimal]) -> Profile:
        base, display = client.currency_code, local.currency

        def shown(minor: int | None) -> int | None:
            if minor is None or base not in rates or display not in rates:
                return None
            return convert(minor, base, display, rates)

        phone = _phone(client.phonenumber)
        return replace(
            local,
            first_name=client.firstname or None,
            last_name=client.lastname or None,
            email=client.email or None,
            company_name=client.companyname or None,
            address=client.address1 or None,
            city=client.city or None,
            region=client.state or None,
            postcode=client.postcode or None,
            country=client.country or None,
            base_currency=base,
            balance_minor=client.credit_minor,
            balance_display_minor=shown(client.credit_minor),
            low_balance_threshold_display_minor=shown(local.low_balance_threshold_minor),
            newsletter=client.marketing_opt_in,
            email_confirmed=local.email_confirmed
            and (local.email or "").lower() == client.email.lower(),
            phone=phone,
            phone_verified=local.phone_verified and local.phone == phone,
            missing=_required_missing(client),
        )

    async def missing_required_fields(self, account_id: int) -> list[str]:
        return (await self.get_profile(account_id)).missing

    async def require_payment_allowed(self, account_id: int) -> None:
        profile = await self.get_profile(account_id)
        if profile.missing:
            raise PaymentBlocked(missing=profile.missing)
        if profile.payments_blocked_by_company:
            raise PaymentBlocked(company_unverified=True)

    async def check_code_word(self, account_id: int, code_word: str) -> bool:
        return await self.local.check_code_word(account_id, code_word)

    async def approve_company(self, account_id: int) -> None:
        await self.local.approve_company(account_id)

    # ---- writing to WHMCS ----------------------------------------------------------------------
    async def _update(self, account_id: int, fields: Mapping[str, ParamValue]) -> None:
        """UpdateClient on the account's own client (never another one)."""
        client_id = await self._client_id(account_id)
        try:
            await self.client.update_client(client_id, fields)
        except WhmcsAuthError:
            raise
        except WhmcsError as exc:
            code = UPDATE_ERRORS.get(exc.message.strip().lower(), "rejected")
            raise ValidationFailed(code) from exc
        finally:
            self._client_changed(client_id)

    async def _linked(self, account_id: int) -> None:
        """Local settings too belong to a linked account only (NotLinked otherwise)."""
        await self._client_id(account_id)

    async def set_flag(self, account_id: int, flag: str, value: bool) -> Profile:
        if flag not in FLAGS:
            raise ValidationFailed("unknown_setting")
        if flag == "newsletter":
            await self._update(account_id, {"marketingoptin": bool(value)})
        else:
            await self._linked(account_id)
            await self.local.set_flag(account_id, flag, value)
        return await self.get_profile(account_id)

    async def set_profile_field(self, account_id: int, name: str, value: str | None) -> Profile:
        if name not in TEXT_FIELDS:
            raise ValidationFailed("unknown_setting")
        if name not in WHMCS_TEXT_FIELDS:  # the notice e-mail addresses: local
            await self._linked(account_id)
            await self.local.set_profile_field(account_id, name, value)
            return await self.get_profile(account_id)
        text = value or ""
        if name in ("last_name", "first_name"):
            cleaned: str | None = validate_name(text)
        else:
            cleaned = validate_text(name, text, required=name not in OPTIONAL_FIELDS)
        if cleaned is None and name not in OPTIONAL_FIELDS:
            raise ValidationFailed("empty")
        await self._update(account_id, {WHMCS_TEXT_FIELDS[name]: cleaned or ""})
        return await self.get_profile(account_id)

    async def set_company(self, account_id: int, name: str, tax_id: str) -> Profile:
        company = validate_text("company_name", name, required=True) or ""
        tax = validate_text("company_tax_id", tax_id, required=True) or ""
        await self._update(account_id, {"companyname": company, "tax_id": tax})
        await self.local.set_company(account_id, company, tax)  # type, unverified again
        return await self.get_profile(account_id)

    async def set_country(self, account_id: int, country: str) -> Profile:
        code = validate_country(country)
        client = await self._client_of(account_id, fresh=True)
        if client.country.strip():
            raise AlreadyDone("country_set")
        await self._update(account_id, {"country": code})
        return await self.get_profile(account_id)

    async def set_individual(self, account_id: int) -> Profile:
        # Local only: WHMCS's company name stays as it is (nothing there to switch off).
        await self._linked(account_id)
        await self.local.set_individual(account_id)
        return await self.get_profile(account_id)

    async def set_email(self, account_id: int, email: str) -> Profile:
        address = validate_email(email)
        client = await self._client_of(account_id, fresh=True)
        if client.email.lower() != address.lower():
            await self._update(account_id, {"email": address})
        await self.local.set_email(account_id, address)  # unconfirmed unless the same
        return await self.get_profile(account_id)

    async def set_phone(self, account_id: int, phone: str, *, verified: bool = False) -> Profile:
        number = normalize_phone(phone)
        client = await self._client_of(account_id, fresh=True)
        if _phone(client.phonenumber) != number:
            await self._update(account_id, {"phonenumber": number})
        await self.local.set_phone(account_id, number, verified=verified)
        return await self.get_profile(account_id)

    # ---- local settings ------------------------------------------------------------------------
    async def set_low_balance_threshold(
        self, account_id: int, amount_minor: int | None, currency: str
    ) -> Profile:
        client = await self._client_of(account_id)
        stored: int | None = None
        if amount_minor is not None:
            if amount_minor <= 0:
                raise ValidationFailed("not_positive")
            rates = await self._rates()
            if currency not in rates or client.currency_code not in rates:
                raise ValidationFailed("currency_unavailable")
            stored = max(convert(amount_minor, currency, client.currency_code, rates), 1)
        # Stored as it is (the local base currency converts nothing): client-currency minor
        # units; the local method keeps its range check and re-arms the alert.
        await self.local.set_low_balance_threshold(account_id, stored, self.local.base_currency)
        return await self.get_profile(account_id)

    async def set_currency(self, account_id: int, currency: str) -> Profile:
        await self._linked(account_id)
        await self.local.set_currency(account_id, currency)
        return await self.get_profile(account_id)

    async def _sync_local_contacts(self, account_id: int) -> None:
        """Before a confirmation: the local copies of e-mail and phone are WHMCS's."""
        client = await self._client_of(account_id, fresh=True)
        local = await self.local.get_profile(account_id)
        if client.email and (local.email or "").lower() != client.email.lower():
            await self.local.set_email(account_id, client.email)
        phone = _phone(client.phonenumber)
        if phone and phone != local.phone:
            try:
                await self.local.set_phone(account_id, phone)
            except ValidationFailed:
                pass  # not a number the bot can call: the confirmation says nothing to confirm

    async def start_email_confirmation(self, account_id: int) -> str:
        await self._sync_local_contacts(account_id)
        return await self.local.start_email_confirmation(account_id)

    async def phone_call_target(self, account_id: int) -> str:
        await self._sync_local_contacts(account_id)
        return await self.local.phone_call_target(account_id)

    async def start_phone_confirmation(self, account_id: int, code: str) -> None:
        await self._linked(account_id)
        await self.local.start_phone_confirmation(account_id, code)

    async def discard_code(self, account_id: int, kind: str) -> None:
        await self.local.discard_code(account_id, kind)

    async def confirm_code(self, account_id: int, kind: str, code: str) -> CodeCheck:
        await self._linked(account_id)
        return await self.local.confirm_code(account_id, kind, code)

    async def set_code_word(self, account_id: int, code_word: str) -> None:
        await self._linked(account_id)
        await self.local.set_code_word(account_id, code_word)

    async def set_ip_allowlist(self, account_id: int, entries: list[str]) -> Profile:
        await self._linked(account_id)
        await self.local.set_ip_allowlist(account_id, entries)
        return await self.get_profile(account_id)

    async def record_last_ip(self, account_id: int, ip: str) -> None:
        await self.local.record_last_ip(account_id, ip)

    async def set_password(self, account_id: int, password: str) -> None:
        # The bot's own cabinet password (local): WHMCS's user passwords are never touched.
        await self._linked(account_id)
        await self.local.set_password(account_id, password)

    async def check_password(self, account_id: int, password: str) -> bool:
        return await self.local.check_password(account_id, password)
