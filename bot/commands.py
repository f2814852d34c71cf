"""Bot commands registered with setMyCommands, in every supported language."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from services.languages import SUPPORTED_LANGUAGES


def command_list(*, linking: bool = False) -> list[BotCommand]:
    """`linking`: the billing is external, so a user links their Telegram to their account."""
    items = [
        ("start", _("Start and main menu")),
        ("menu", _("Main menu")),
        ("orders", _("My orders")),
        ("neworder", _("Order a server")),
        ("invoices", _("Invoices and payments")),
        ("history", _("Payment history")),
        ("balance", _("Balance")),
        ("topup", _("Top up the balance")),
        ("tickets", _("Support tickets")),
        ("newticket", _("Write to support")),
        ("settings", _("Settings")),
        ("language", _("Interface language")),
        ("help", _("Help")),
        ("cancel", _("Leave the current dialog")),
    ]
    if linking:
        items[1:1] = [
            ("link", _("Link Telegram to my account")),
            ("unlink", _("Unlink Telegram from my account")),
        ]
    return [BotCommand(command=name, description=text) for name, text in items]


async def register_commands(
    bot: Bot, i18n: I18n, default_language: str, *, linking: bool = False
) -> None:
    with i18n.context():
        for language in SUPPORTED_LANGUAGES:
            with i18n.use_locale(language):
                commands = command_list(linking=linking)
            await bot.set_my_commands(commands, language_code=language)
        with i18n.use_locale(default_language):
            await bot.set_my_commands(command_list(linking=linking))
