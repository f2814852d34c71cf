"""The profile over WHMCS: the fields WHMCS has are read with GetClientsDetails and written with
UpdateClient (on the account's own client only); the settings WHMCS has no field for stay in
the bot's own account row."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.billing import per_call
from services.errors import NotLinked, PaymentBlocked, ValidationFailed
from services.whmcs.gateway import WhmcsGateway
from tests.harness.whmcs import Client, WhmcsStandIn
from tests.whmcs_fixtures import linked_account


def alice_of(whmcs: WhmcsStandIn) -> Client:
    return whmcs.add_client(
        "Alice",
        "Smith",
        "alice@example.com",
        credit=Decimal("12.50"),
        phonenumber="+44.2079460000",
        address1="1 High Street",
        city="London",
        state="Greater London",
        postcode="SW1A 1AA",
        companyname="Acme Ltd",
        marketing_opt_in=True,
    )


def updates(whmcs: WhmcsStandIn) -> list[dict[str, object]]:
    return [
        {k: v for k, v in call.params.items() if k != "responsetype"}
        for call in whmcs.called("UpdateClient")
    ]


async def test_the_profile_shows_the_whmcs_fields(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = alice_of(whmcs)
    account = await linked_account(whmcs_gateway, 501, alice)
    profile = await per_call(whmcs_gateway).get_profile(account.id)
    assert (profile.first_name, profile.last_name, profile.email) == (
        "Alice",
        "Smith",
        "alice@example.com",
    )
    assert (profile.address, profile.city, profile.region, profile.postcode) == (
        "1 High Street",
        "London",
        "Greater London",
        "SW1A 1AA",
    )
    assert profile.phone == "+442079460000" and profile.company_name == "Acme Ltd"
    assert profile.country == "GB" and profile.newsletter is True
    assert (profile.balance_minor, profile.base_currency) == (1250, "USD")
    assert profile.missing == []
    assert profile.email_confirmed is False  # the bot's own confirmation, not done yet


async def test_updates_go_to_the_own_client_with_updateclient(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = alice_of(whmcs)
    bob = whmcs.add_client("Bob", "Jones", "bob@example.com")
    account = await linked_account(whmcs_gateway, 501, alice)
    await linked_account(whmcs_gateway, 502, bob)
    billing = per_call(whmcs_gateway)
    profile = await billing.set_profile_field(account.id, "city", "  Manchester ")
    assert profile.city == "Manchester"
    await billing.set_profile_field(account.id, "region", None)
    await billing.set_profile_field(account.id, "first_name", "Alicia")
    profile = await billing.set_flag(account.id, "newsletter", False)
    assert profile.newsletter is False
    await billing.set_phone(account.id, "+442071234567")
    await billing.set_company(account.id, "Acme Group", "GB123456789")
    assert updates(whmcs) == [
        {"clientid": str(alice.id), "city": "Manchester"},
        {"clientid": str(alice.id), "state": ""},
        {"clientid": str(alice.id), "firstname": "Alicia"},
        {"clientid": str(alice.id), "marketingoptin": "0"},
        {"clientid": str(alice.id), "phonenumber": "+442071234567"},
        {"clientid": str(alice.id), "companyname": "Acme Group", "tax_id": "GB123456789"},
    ]
    assert (alice.city, alice.state, alice.firstname, alice.marketing_opt_in) == (
        "Manchester",
        "",
        "Alicia",
        False,
    )
    assert bob.city == "" and bob.firstname == "Bob"  # never another client
    profile = await billing.get_profile(account.id)
    assert profile.profile_type == "company" and profile.payments_blocked_by_company
    with pytest.raises(PaymentBlocked):
        await billing.require_payment_allowed(account.id)


async def test_bad_input_changes_nothing(whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn) -> None:
    alice = alice_of(whmcs)
    whmcs.add_client("Bob", "Jones", "bob@example.com")
    account = await linked_account(whmcs_gateway, 501, alice)
    billing = per_call(whmcs_gateway)
    with pytest.raises(ValidationFailed):
        await billing.set_profile_field(account.id, "city", "")  # required
    with pytest.raises(ValidationFailed):
        await billing.set_profile_field(account.id, "first_name", "<script>")
    with pytest.raises(ValidationFailed):
        await billing.set_flag(account.id, "admin", True)
    assert updates(whmcs) == []
    with pytest.raises(ValidationFailed) as taken:
        await billing.set_email(account.id, "bob@example.com")  # WHMCS: Duplicate Email
    assert taken.value.detail == "email_taken"
    assert alice.email == "alice@example.com"


async def test_an_email_change_goes_to_whmcs_and_is_confirmed_in_the_bot(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = alice_of(whmcs)
    account = await linked_account(whmcs_gateway, 501, alice)
    billing = per_call(whmcs_gateway)
    profile = await billing.set_email(account.id, "alice@new.example.com")
    assert alice.email == "alice@new.example.com" and profile.email == "alice@new.example.com"
    assert not profile.email_confirmed
    code = await billing.start_email_confirmation(account.id)
    assert (await billing.confirm_code(account.id, "email", code)).status == "ok"
    assert (await billing.get_profile(account.id)).email_confirmed
    alice.email = "changed@in.whmcs.example.com"  # changed in WHMCS's admin area
    whmcs_gateway.core._client_changed(alice.id)  # type: ignore[attr-defined]
    assert not (await billing.get_profile(account.id)).email_confirmed


async def test_local_settings_stay_in_the_bot(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = alice_of(whmcs)
    account = await linked_account(whmcs_gateway, 501, alice)
    billing = per_call(whmcs_gateway)
    await billing.set_flag(account.id, "auto_renew_default", True)
    await billing.set_flag(account.id, "pay_without_auth", True)
    await billing.set_profile_field(account.id, "email_invoices", "billing@acme.example.com")
    await billing.set_code_word(account.id, "blue whale")
    await billing.set_ip_allowlist(account.id, ["192.0.2.1"])
    profile = await billing.set_low_balance_threshold(account.id, 500, "USD")
    assert profile.low_balance_threshold_minor == 500
    profile = await billing.set_currency(account.id, "EUR")
    assert profile.currency == "EUR" and profile.balance_display_minor == 1157  # 12.50 / 1.08
    assert profile.auto_renew_default and profile.pay_without_auth
    assert profile.email_invoices == "billing@acme.example.com" and profile.code_word_set
    assert profile.ip_allowlist == ["192.0.2.1"]
    assert await billing.check_code_word(account.id, "blue whale")
    assert updates(whmcs) == []  # none of them is a WHMCS field
    await billing.approve_company(account.id)
    assert (await billing.get_profile(account.id)).company_verified


async def test_an_unlinked_account_has_no_profile(whmcs_gateway: WhmcsGateway) -> None:
    billing = per_call(whmcs_gateway)
    account, _ = await billing.get_or_create_account(503, 503, name="Carol")
    with pytest.raises(NotLinked):
        await billing.get_profile(account.id)
    with pytest.raises(NotLinked):
        await billing.set_flag(account.id, "auto_renew_default", True)
    with pytest.raises(NotLinked):
        await billing.set_profile_field(account.id, "city", "Paris")
