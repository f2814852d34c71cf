"""The central error handler: a domain error becomes one localized answer; Telegram being
unavailable (flood control beyond what bot/flow_control.py waits, a 5xx, a dropped connection)
is one warning line and no answer (it would meet the same limit); anything else is logged and
the user gets an apology instead of silence. The transaction has rolled back."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import (
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

from handlers.common import money
from services import errors

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
    if isinstance(error, errors.InvalidState):
        return _("This action is not available in the current state.")
    if isinstance(error, errors.AlreadyDone):
        return _("This has already been done.")
    if isinstance(error, errors.PermissionDenied):
        return _("You are not allowed to do this.")
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
    router.errors.register(on_domain_error, ExceptionTypeFilter(errors.DomainError))
    router.errors.register(on_telegram_unavailable, telegram_unavailable)
    router.errors.register(on_unexpected_error)
    return router
