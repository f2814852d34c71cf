"""A new top-up invoice also goes by e-mail, as billing systems send theirs (WHMCS sends its
own, so only with the embedded billing): to the profile's e-mail for invoices, else the
confirmed e-mail, with the invoice's signed pay link while the web side is on. It is sent after
the chat's reply, so SMTP never delays the screen; a failure is logged and changes nothing."""

from __future__ import annotations

import logging

from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.invoices import invoice_text
from handlers.web_links import pay_url
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.payments import Invoice
from services.contracts.profile import Profile
from services.email import EmailError, Mailer, mailer_configured, plain_text

log = logging.getLogger(__name__)


def invoice_address(profile: Profile) -> str | None:
    """Where the customer's invoices go: the e-mail for invoices, else the confirmed e-mail."""
    if profile.email_invoices:
        return profile.email_invoices
    if profile.email and profile.email_confirmed:
        return profile.email
    return None


def invoice_email(invoice: Invoice, link: str | None) -> tuple[str, str]:
    """Subject and plain-text body, in the current language."""
    subject = _("Invoice No. {number}").format(number=invoice.number)
    lines = [_("Hello!"), "", plain_text(invoice_text(invoice)), ""]
    if link:
        lines.append(_("Pay it online: {url}").format(url=link))
    lines.append(_("You can also pay it in the bot: 💰 Balance → 🧾 Invoices."))
    return subject, "\n".join(lines)


async def email_new_invoice(
    billing: Billing, account: Account, settings: Settings, mailer: Mailer | None, invoice: Invoice
) -> None:
    if settings.billing != "embedded" or mailer is None or not mailer_configured(mailer):
        return
    address = invoice_address(await billing.get_profile(account.id))
    if address is None:
        return
    subject, body = invoice_email(invoice, pay_url(settings, invoice.id, account.id))
    try:
        await mailer.send(address, subject, body)
    except EmailError as exc:
        log.warning("Invoice %s was not e-mailed: %s", invoice.number, exc)
