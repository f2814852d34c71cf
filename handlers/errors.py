"""The central error handler: a domain error becomes one localized answer; Telegram being
unavailable (flood control beyond what bot/flow_control.py waits, a 5xx, a dropped connection)
is one warning line and no answer (it would meet the same limit); anything else is logged and
the user gets an apology instead of silence. The transaction has rolled back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiogram import Router
from aiogram.exceptions import (
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from handlers.common import money, show
from keyboards.linking import link_kb
from services import errors
from services.billing import Billing

log = logging.getLogger(__name__)

PROFILE_FIELD_NAMES = {
    "last_name": lambda: _("last name"),
    "first_name": lambda: _("first name"),
    "email": lambda: _("e-mail"),
    "city": lambda: _("city"),
    "address": lambda: _("address"),
}


def domain_error_text(error: errors.DomainError) -> str:
    if isinstance(error, errors.InsufficientFunds):
        return _("Not enough money on the balance: {missing} is missing.").format(
            missing=money(error.missing_minor, error.currency)
        )
    if isinstance(error, errors.PaymentBlocked):
        if error.company_unverified:
            return _("Payments are blocked until our staff verify your company details.")
        fields = ", ".join(PROFILE_FIELD_NAMES.get(f, lambda f=f: f)() for f in error.missing)
        return _("Before paying, please fill in: {fields}.").format(fields=fields)
    if isinstance(error, errors.NotFound):
        return _("Not found. It may have been removed, or it is not yours.")
    if isinstance(error, errors.BillingUnavailable):
        return billing_unavailable_text()
    if isinstance(error, errors.InvalidState):
        if error.detail == "cancel_request_kept":
            return _(
                "The cancellation request is with the billing already: "
                "only support can withdraw it."
            )
        return _("This action is not available in the current state.")
    if isinstance(error, errors.AlreadyDone):
        return _("This has already been done.")
    if isinstance(error, errors.PermissionDenied):
        if error.detail == "whmcs_admin_username":
            return _(
                "Your Telegram account has no WHMCS admin to answer as: add it to "
                "WHMCS_ADMIN_USERNAMES, or set WHMCS_DEFAULT_ADMIN."
            )
        return _("You are not allowed to do this.")
    if isinstance(error, errors.ValidationFailed) and error.detail == "department":
        return _("This department does not take tickets right now. Please choose another one.")
    if isinstance(error, errors.RateLimited):
        return _("Too many attempts. Please try again in {seconds} s.").format(
            seconds=error.retry_after
        )
    return _("The request was rejected. Please check the input and try again.")


async def reply(event: ErrorEvent, text: str) -> None:
    update = event.update
    if update.callback_query:
        await update.callback_query.answer(text, show_alert=True)
    elif update.message:
        await update.message.answer(text)
    elif update.pre_checkout_query:
        await update.pre_checkout_query.answer(ok=False, error_message=text)


def not_linked_text() -> str:
    """What a Telegram user who is not linked to a billing client sees instead of the cabinet."""
    return _(
        "🔗 This bot is the personal cabinet of your hosting provider's billing.\n\n"
        "Link your Telegram to your account to see your services, invoices, balance and "
        "tickets here: we send a one-time code to the e-mail address of your account. "
        "You never type your password here."
    )


async def on_not_linked(event: ErrorEvent) -> None:
    update = event.update
    target = update.callback_query or update.message
    if target is None:
        await reply(event, not_linked_text())
        return
    await show(target, not_linked_text(), link_kb())


def billing_unavailable_text() -> str:
    return _("The billing is unavailable right now. Please try again in a few minutes.")


def staff_outage_text(reason: str) -> str:
    if reason == "refused":
        cause = _("it refuses the bot (API credentials, IP allow-list or API role)")
    else:
        cause = _("it does not answer or answers with an error page")
    return _("⚠️ The billing is unavailable: {cause}. Customers are asked to try later.").format(
        cause=cause
    )


async def tell_staff_once(reason: str, data: dict[str, Any]) -> None:
    """One message to the staff group per reason and UTC hour (the outbox key keeps it one,
    however many updates fail meanwhile). Missing middleware data: nothing to do."""
    billing: Billing | None = data.get("billing")
    settings = data.get("settings")
    staff_chat = getattr(settings, "staff_chat_id", None)
    if billing is None or staff_chat is None:
        return
    hour = datetime.now(UTC).strftime("%Y%m%d%H")
    i18n: I18n | None = data.get("i18n")
    language = getattr(settings, "default_language", None)
    if i18n is not None and language:
        with i18n.use_locale(language):
            text = staff_outage_text(reason)
    else:
        text = staff_outage_text(reason)
    try:
        await billing.enqueue_message(
            staff_chat,
            "sendMessage",
            {"chat_id": staff_chat, "text": text},
            idempotency_key=f"billing_unavailable:{reason}:{hour}",
        )
    except Exception:  # the bot's own database too: the customer's answer still goes out
        log.exception("could not queue the billing-outage notice for the staff")


async def on_billing_unavailable(event: ErrorEvent, **data: Any) -> None:
    exc = event.exception
    reason = getattr(exc, "reason", "unreachable")
    log.warning("Update %s: billing unavailable (%s)", event.update.update_id, reason)
    await tell_staff_once(reason, data)
    await reply(event, billing_unavailable_text())


async def on_domain_error(event: ErrorEvent) -> None:
    await reply(event, domain_error_text(event.exception))  # type: ignore[arg-type]


def telegram_unavailable_error(exc: BaseException) -> bool:
    """Flood control, a 5xx or a dropped connection: Telegram did not (or may not have) done
    what was asked. A 413 (file too big) is a real error."""
    if isinstance(exc, TelegramEntityTooLarge):
        return False
    return isinstance(exc, TelegramRetryAfter | TelegramNetworkError | TelegramServerError)


def telegram_unavailable(event: ErrorEvent) -> bool:
    return telegram_unavailable_error(event.exception)


async def on_telegram_unavailable(event: ErrorEvent) -> None:
    exc = event.exception
    method = getattr(getattr(exc, "method", None), "__api_method__", "?")
    log.warning(
        "Update %s dropped: %s failed: %s",
        event.update.update_id,
        method,
        " ".join((getattr(exc, "message", None) or str(exc)).split()),  # one line
    )


async def on_unexpected_error(event: ErrorEvent) -> None:
    log.exception("Unhandled error in update %s", event.update.update_id, exc_info=event.exception)
    await reply(event, _("Something went wrong on our side. Please try again later."))


def create_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_not_linked, ExceptionTypeFilter(errors.NotLinked))
    router.errors.register(on_billing_unavailable, ExceptionTypeFilter(errors.BillingUnavailable))
    router.errors.register(on_domain_error, ExceptionTypeFilter(errors.DomainError))
    router.errors.register(on_telegram_unavailable, telegram_unavailable)
    router.errors.register(on_unexpected_error)
    return router
