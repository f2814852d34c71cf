"""Status words agree with their noun in Russian (whole-line msgids, not one shared
"verified"): телефон подтверждён, компания подтверждена — in Settings and in the staff desk's
account summary."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.factory import create_i18n
from handlers.desk import summary_text
from handlers.settings_texts import email_status, phone_status, profile_type_text
from services.embedded.billing import EmbeddedGateway

I18N = create_i18n("en")


async def test_settings_status_words_agree_in_russian(sqlite_gateway: EmbeddedGateway) -> None:
    async with sqlite_gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(9201, 9201)
        profile = await billing.get_profile(account.id)
    company = replace(profile, profile_type="company", company_name="Ромашка", company_tax_id="77")
    contacts = replace(profile, phone="+79123456789", email="ivan@example.com")
    with I18N.context(), I18N.use_locale("ru"):
        assert profile_type_text(replace(company, company_verified=True)) == (
            "компания «Ромашка», ИНН 77 (подтверждена)"
        )
        assert profile_type_text(company) == "компания «Ромашка», ИНН 77 (ожидает проверки)"
        assert phone_status(replace(contacts, phone_verified=True)) == "+79123456789 (подтверждён)"
        assert phone_status(contacts) == "+79123456789 (не подтверждён)"
        assert email_status(contacts) == "ivan@example.com (не подтверждён)"
    with I18N.context(), I18N.use_locale("en"):
        assert phone_status(contacts) == "+79123456789 (not verified)"
        assert profile_type_text(company) == (
            "company «Ромашка», tax number 77 (waiting for verification)"
        )


@pytest.mark.parametrize(
    ("verified", "line"),
    [
        (True, "Профиль: компания Ромашка (подтверждена)"),
        (False, "Профиль: компания Ромашка (не подтверждена)"),
    ],
)
async def test_desk_summary_status_words_agree_in_russian(
    sqlite_gateway: EmbeddedGateway, verified: bool, line: str
) -> None:
    async with sqlite_gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(9202, 9202)
        summary = await billing.account_summary(account.id)
    summary = replace(
        summary,
        profile_type="company",
        company_name="Ромашка",
        company_verified=verified,
        phone="+79123456789",
        phone_verified=True,
    )
    with I18N.context(), I18N.use_locale("ru"):
        lines = summary_text(summary).split("\n")
    assert line in lines
    assert "Телефон: +79123456789 (подтверждён)" in lines
    assert "E-mail: — (не подтверждён)" in lines
