"""The Settings part of the billing interface, on SQLite and on PostgreSQL (`gateway`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from services.contracts.profile import CodeCheck
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.errors import AlreadyDone, InvalidState, PaymentBlocked, RateLimited, ValidationFailed
from services.security import verify_secret_sync


async def _account(gateway: EmbeddedGateway, telegram_id: int = 700) -> int:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(telegram_id, telegram_id, name="T")
    return account.id


async def _row(gateway: EmbeddedGateway, account_id: int) -> m.Account:
    async with gateway.transaction() as billing:
        return await billing._account_row(account_id)


async def test_defaults_and_login(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        profile = await billing.get_profile(account_id)
    assert profile.login == "tg700"
    assert profile.currency == "EUR" and profile.base_currency == "EUR"
    assert (profile.newsletter, profile.auto_renew_default, profile.pay_without_auth) == (
        False,
        True,
        False,
    )
    assert profile.low_balance_threshold_minor is None
    assert profile.profile_type == "individual"
    assert profile.code_word_set is False and profile.password_set is False
    assert profile.ip_allowlist == []
    assert profile.missing == ["last_name", "first_name", "email", "city", "address"]


async def test_flags_toggle_and_unknown_flag_is_refused(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        for flag in ("newsletter", "auto_renew_default", "pay_without_auth", "show_last_ip"):
            before = getattr(await billing.get_profile(account_id), flag)
            after = await billing.set_flag(account_id, flag, not before)
            assert getattr(after, flag) is (not before)
        with pytest.raises(ValidationFailed) as info:
            await billing.set_flag(account_id, "login", True)
    assert info.value.detail == "unknown_setting"
    row = await _row(gateway, account_id)
    assert (row.newsletter, row.auto_renew_default, row.pay_without_auth, row.show_last_ip) == (
        True,
        False,
        True,
        True,
    )
    assert row.login == "tg700"


async def test_text_fields_are_validated_and_saved(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        profile = await billing.set_profile_field(account_id, "last_name", "  Иванов ")
        assert profile.last_name == "Иванов"
        await billing.set_profile_field(account_id, "first_name", "Anna-Maria")
        await billing.set_profile_field(account_id, "city", "Riga")
        await billing.set_profile_field(account_id, "address", "Brivibas 1")
        await billing.set_profile_field(account_id, "postcode", "LV-1010")
        await billing.set_profile_field(account_id, "email_support", "Help@Example.com")
        for name, value, code in [
            ("first_name", "R2D2", "name_chars"),
            ("city", "", "empty"),
            ("address", "x" * 301, "too_long"),
            ("email_abuse", "nope", "email_invalid"),
            ("login", "hacker", "unknown_setting"),
            ("email", "a@b.io", "unknown_setting"),  # the main e-mail goes through set_email
        ]:
            with pytest.raises(ValidationFailed) as info:
                await billing.set_profile_field(account_id, name, value)
            assert info.value.detail == code, name
        cleared = await billing.set_profile_field(account_id, "postcode", None)
        assert cleared.postcode is None
        profile = await billing.get_profile(account_id)
    assert profile.missing == ["email"]
    assert profile.email_support == "Help@example.com"
    row = await _row(gateway, account_id)
    assert (row.last_name, row.first_name, row.city, row.address) == (
        "Иванов",
        "Anna-Maria",
        "Riga",
        "Brivibas 1",
    )


async def test_payment_gate_lists_missing_then_blocks_an_unverified_company(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        with pytest.raises(PaymentBlocked) as info:
            await billing.require_payment_allowed(account_id)
        assert info.value.missing == ["last_name", "first_name", "email", "city", "address"]
        for name, value in [
            ("last_name", "Doe"),
            ("first_name", "Jane"),
            ("city", "Oslo"),
            ("address", "Main st 1"),
        ]:
            await billing.set_profile_field(account_id, name, value)
        await billing.set_email(account_id, "jane@example.com")
        await billing.require_payment_allowed(account_id)  # e-mail confirmation not required
        with pytest.raises(ValidationFailed) as bad:
            await billing.set_company(account_id, "ACME", "1")
        assert bad.value.detail == "tax_id_invalid"
        profile = await billing.set_company(account_id, " ACME  Ltd ", "7701234567")
        assert (profile.profile_type, profile.company_name, profile.company_tax_id) == (
            "company",
            "ACME Ltd",
            "7701234567",
        )
        assert profile.payments_blocked_by_company is True
        with pytest.raises(PaymentBlocked) as blocked:
            await billing.require_payment_allowed(account_id)
        assert blocked.value.company_unverified is True
        await billing.approve_company(account_id)
        await billing.require_payment_allowed(account_id)
        # New details are verified again.
        await billing.set_company(account_id, "ACME Ltd", "7701234568")
        with pytest.raises(PaymentBlocked):
            await billing.require_payment_allowed(account_id)
        profile = await billing.set_individual(account_id)
        assert profile.profile_type == "individual"
        await billing.require_payment_allowed(account_id)


async def test_currency_change_converts_the_display_and_keeps_the_ledger(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        await billing.credit(account_id, 1000, kind="topup", idempotency_key="t-1")
        profile = await billing.set_currency(account_id, "USD")
        assert (profile.currency, profile.balance_minor, profile.balance_display_minor) == (
            "USD",
            1000,
            1080,
        )
        profile = await billing.set_currency(account_id, "rub")
        assert (profile.currency, profile.balance_display_minor) == ("RUB", 100000)
        with pytest.raises(ValidationFailed) as info:
            await billing.set_currency(account_id, "GBP")
        assert info.value.detail == "currency_unavailable"
        ledger = await billing.list_ledger(account_id)
        assert [(line.amount_minor, line.currency) for line in ledger.items] == [(1000, "EUR")]
        assert await billing.ledger_sum(account_id) == 1000
        account = await billing.get_account(account_id)
    assert (account.currency, account.balance_minor, account.base_currency) == ("RUB", 1000, "EUR")


async def test_threshold_is_typed_in_the_display_currency_and_stored_in_base(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        await billing.set_currency(account_id, "USD")
        profile = await billing.set_low_balance_threshold(account_id, 1080, "USD")
        assert profile.low_balance_threshold_minor == 1000  # €10.00
        assert profile.low_balance_threshold_display_minor == 1080  # $10.80
        for amount, code in [(0, "not_positive"), (10**12, "too_large")]:
            with pytest.raises(ValidationFailed) as info:
                await billing.set_low_balance_threshold(account_id, amount, "USD")
            assert info.value.detail == code
    async with gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Account).where(m.Account.id == account_id).values(low_balance_alerted=True)
        )
    async with gateway.transaction() as billing:
        profile = await billing.set_low_balance_threshold(account_id, None, "USD")
    assert profile.low_balance_threshold_minor is None
    row = await _row(gateway, account_id)
    assert (row.low_balance_threshold_minor, row.low_balance_alerted) == (None, False)


async def _codes(gateway: EmbeddedGateway, account_id: int) -> list[m.Verification]:
    async with gateway.transaction() as billing:
        rows = await billing.session.scalars(
            select(m.Verification)
            .where(m.Verification.account_id == account_id)
            .order_by(m.Verification.id)
        )
        return list(rows)


async def _age_codes(gateway: EmbeddedGateway, account_id: int, **delta: float) -> None:
    async with gateway.transaction() as billing:
        for row in await billing.session.scalars(
            select(m.Verification).where(m.Verification.account_id == account_id)
        ):
            row.sent_at -= timedelta(**delta)
            row.expires_at -= timedelta(**delta)


async def test_email_confirmation_code_rules(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        with pytest.raises(InvalidState):
            await billing.start_email_confirmation(account_id)  # no e-mail yet
        profile = await billing.set_email(account_id, "Jane@Example.COM")
        assert (profile.email, profile.email_confirmed) == ("Jane@example.com", False)
        code = await billing.start_email_confirmation(account_id)
        assert len(code) == 6 and code.isdigit()
        with pytest.raises(RateLimited) as limited:
            await billing.start_email_confirmation(account_id)
        assert 1 <= limited.value.retry_after <= 60
    stored = await _codes(gateway, account_id)
    assert len(stored) == 1 and stored[0].code_hash != code
    assert verify_secret_sync(code, stored[0].code_hash)

    wrong = "000000" if code != "000000" else "111111"
    async with gateway.transaction() as billing:
        assert await billing.confirm_code(account_id, "email", wrong) == CodeCheck(
            "wrong", 4, "Jane@example.com"
        )
    async with gateway.transaction() as billing:  # the attempt was committed
        assert await billing.confirm_code(account_id, "email", code) == CodeCheck(
            "ok", 3, "Jane@example.com"
        )
        assert (await billing.get_profile(account_id)).email_confirmed is True
        assert (await billing.confirm_code(account_id, "email", code)).status == "none"
        with pytest.raises(InvalidState):
            await billing.start_email_confirmation(account_id)  # nothing left to confirm
        unchanged = await billing.set_email(account_id, "jane@example.com")
        assert unchanged.email_confirmed is True  # the same address stays confirmed


async def test_email_code_expires_attempts_are_limited_and_new_address_resets(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        await billing.set_email(account_id, "a@example.com")
        code = await billing.start_email_confirmation(account_id)
    await _age_codes(gateway, account_id, minutes=16)
    async with gateway.transaction() as billing:
        assert (await billing.confirm_code(account_id, "email", code)).status == "expired"
        code = await billing.start_email_confirmation(account_id)  # cooldown is over
        wrong = "000000" if code != "000000" else "111111"
        results = [await billing.confirm_code(account_id, "email", wrong) for _ in range(5)]
        assert [(r.status, r.attempts_left) for r in results] == [
            ("wrong", 4),
            ("wrong", 3),
            ("wrong", 2),
            ("wrong", 1),
            ("exhausted", 0),
        ]
        assert (await billing.confirm_code(account_id, "email", code)).status == "exhausted"
        assert (await billing.get_profile(account_id)).email_confirmed is False
    await _age_codes(gateway, account_id, minutes=2)
    async with gateway.transaction() as billing:
        code = await billing.start_email_confirmation(account_id)
        await billing.set_email(account_id, "b@example.com")  # the pending code stops working
        assert (await billing.confirm_code(account_id, "email", code)).status == "none"
        with pytest.raises(ValidationFailed):
            await billing.set_email(account_id, "not-an-email")
        # A code that could not be delivered is discarded: no cooldown for it.
        await billing.discard_code(account_id, "email")
        await billing.start_email_confirmation(account_id)


async def test_phone_own_contact_is_verified_call_password_limits_attempts(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        profile = await billing.set_phone(account_id, "+7 912 345-67-89", verified=True)
        assert (profile.phone, profile.phone_verified) == ("+79123456789", True)
        with pytest.raises(InvalidState):
            await billing.phone_call_target(account_id)
        profile = await billing.set_phone(account_id, "+44 7911 123456")
        assert (profile.phone, profile.phone_verified) == ("+447911123456", False)
        with pytest.raises(ValidationFailed) as info:
            await billing.set_phone(account_id, "89123456789")
        assert info.value.detail == "phone_no_country"
        assert await billing.phone_call_target(account_id) == "+447911123456"
        await billing.start_phone_confirmation(account_id, "4321")
        with pytest.raises(RateLimited):
            await billing.phone_call_target(account_id)
        results = [await billing.confirm_code(account_id, "phone_call", "1111") for _ in range(3)]
        assert [(r.status, r.attempts_left) for r in results] == [
            ("wrong", 2),
            ("wrong", 1),
            ("exhausted", 0),
        ]
        assert (await billing.confirm_code(account_id, "phone_call", "4321")).status == "exhausted"
    await _age_codes(gateway, account_id, minutes=2)
    async with gateway.transaction() as billing:
        await billing.start_phone_confirmation(account_id, "9876")
        check = await billing.confirm_code(account_id, "phone_call", "9876")
        assert check == CodeCheck("ok", 2, "+447911123456")
    row = await _row(gateway, account_id)
    assert (row.phone, row.phone_verified) == ("+447911123456", True)


async def test_code_word_is_set_once_and_stored_hashed(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        with pytest.raises(ValidationFailed):
            await billing.set_code_word(account_id, "abc")
        await billing.set_code_word(account_id, " blue whale ")
        with pytest.raises(AlreadyDone):
            await billing.set_code_word(account_id, "another one")
        assert await billing.check_code_word(account_id, "blue whale") is True
        assert await billing.check_code_word(account_id, "another one") is False
        assert (await billing.get_profile(account_id)).code_word_set is True
    row = await _row(gateway, account_id)
    assert row.code_word_hash is not None and "blue" not in row.code_word_hash
    assert row.code_word_hash.startswith("scrypt$")


async def test_password_is_validated_and_stored_hashed(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        with pytest.raises(ValidationFailed) as info:
            await billing.set_password(account_id, "short1")
        assert info.value.detail == "password_short"
        await billing.set_password(account_id, "Correct1horse")
        assert await billing.check_password(account_id, "Correct1horse") is True
        assert await billing.check_password(account_id, "correct1horse") is False
    row = await _row(gateway, account_id)
    assert row.password_hash is not None and "Correct1horse" not in row.password_hash


async def test_ip_allowlist_is_saved_normalised_and_rechecked(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        profile = await billing.set_ip_allowlist(
            account_id, ["10.0.0.1", "2001:DB8::1", "10.0.0.1", "10.0.0.2-10.0.0.9"]
        )
        assert profile.ip_allowlist == ["10.0.0.1", "2001:db8::1", "10.0.0.2-10.0.0.9"]
        with pytest.raises(ValidationFailed) as info:
            await billing.set_ip_allowlist(account_id, ["10.0.0.9-10.0.0.2"])
        assert info.value.detail == "ip_list_invalid"
    row = await _row(gateway, account_id)
    assert row.ip_allowlist == "10.0.0.1\n2001:db8::1\n10.0.0.2-10.0.0.9"
    async with gateway.transaction() as billing:
        assert (await billing.set_ip_allowlist(account_id, [])).ip_allowlist == []


async def test_last_ip_is_recorded_normalised_and_junk_ignored(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        assert (await billing.get_profile(account_id)).last_ip is None
        await billing.record_last_ip(account_id, " 2001:DB8::7 ")
        await billing.record_last_ip(account_id, "not an ip")
        profile = await billing.get_profile(account_id)
    assert profile.last_ip == "2001:db8::7"
