"""Tickets, the customer's side: the satisfaction rating (1-5) asked under the close notice.
Only the ticket's customer can rate it, once; the rating is posted in the ticket's place in
the staff group."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.desk import post_to_staff, staff_locale
from keyboards.tickets import TicketRateCb, open_ticket_kb
from services.billing import Billing
from services.contracts.common import Account


def rating_text(ticket_id: int, rating: int) -> str:
    return _("⭐ The customer rated ticket #{id}: {rating} of 5 {stars}").format(
        id=ticket_id, rating=rating, stars="⭐" * rating
    )


async def rate_ticket(
    query: CallbackQuery,
    callback_data: TicketRateCb,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
    i18n: I18n,
) -> None:
    """A star under the close notice: kept once (a second press is told so), the stars leave
    the notice, and staff see the rating in the ticket's topic."""
    ticket = await billing.get_ticket(account.id, callback_data.ticket_id)  # NotFound: not theirs
    if not await billing.rate_ticket(ticket.id, account.id, callback_data.rating):
        await query.answer(_("You have rated this ticket already. Thank you!"), show_alert=True)
        return
    await query.answer(_("Thank you for your rating!"))
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=open_ticket_kb(ticket.id))
        except TelegramBadRequest:  # too old to edit, or deleted: the rating is kept anyway
            pass
    with staff_locale(i18n, settings):
        staff_text = rating_text(ticket.id, callback_data.rating)
    await post_to_staff(bot, billing, settings, i18n, ticket, staff_text)


def create_router() -> Router:
    router = Router(name="tickets_rating")
    router.callback_query.register(rate_ticket, TicketRateCb.filter())
    return router
