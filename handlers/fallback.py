"""Last router: whatever no section understood gets a helpful answer, never silence. That
includes callback data a factory refuses to unpack (forged, or out of the bounds of
keyboards/callbacks.py): it matches no handler and ends here as an out-of-date button."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from keyboards.menu import back_to_menu_kb


async def unknown_message(message: Message) -> None:
    await message.answer(
        _("I did not understand that. Use the menu below or /help for the list of commands."),
        reply_markup=back_to_menu_kb(),
    )


async def group_button(query: CallbackQuery) -> None:
    """A customer button pressed in a group (the customer sections serve private chats only;
    their routers filter on it): a short answer, nothing else happens."""
    await query.answer(_("These buttons work only in a private chat with the bot."))


async def stale_button(query: CallbackQuery) -> None:
    await query.answer(
        _("This button is out of date. Please open the menu again: /menu"), show_alert=True
    )


def create_router() -> Router:
    router = Router(name="fallback")
    router.message.register(unknown_message, F.chat.type == "private")
    router.callback_query.register(
        group_button, F.message.chat.type.in_({"group", "supergroup", "channel"})
    )
    router.callback_query.register(stale_button)
    return router
