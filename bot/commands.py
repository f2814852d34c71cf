"""Bot commands registered with setMyCommands, in every supported language: the customers'
commands for every chat, and the staff desk's for the staff group.

The staff group (BotCommandScopeChat) lists what every support agent may use; each admin of
ADMIN_IDS gets, in the staff group only, the same list plus the admin commands
(BotCommandScopeChatMember, which Telegram prefers to the chat's list for that member). So an
agent's menu offers nothing that would only answer "only administrators", and an admin sees
all. Telegram refuses a member scope for someone who is not in the group (and both scopes when
the bot is not in it): that is logged and the rest is registered — commands typed by hand work
all the same."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeChatMember,
    BotCommandScopeUnion,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from services.languages import SUPPORTED_LANGUAGES

log = logging.getLogger(__name__)


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


def staff_command_list() -> list[BotCommand]:
    """The staff desk's commands every support agent may use (handlers/staff_commands.py,
    handlers/staff_tools.py, handlers/payments.py)."""
    items = [
        ("queue", _("Open tickets, oldest first")),
        ("take", _("Take the ticket: your name in its title")),
        ("close", _("Close the ticket")),
        ("reopen", _("Reopen the ticket")),
        ("note", _("Internal note, not sent to the customer")),
        ("canned", _("Canned answers: list, or send one by name")),
        ("info", _("The customer's account summary")),
        ("verify", _("Check the customer's code word")),
        ("refund", _("Refund a Stars payment by its charge id")),
    ]
    return [BotCommand(command=name, description=text) for name, text in items]


def admin_command_list() -> list[BotCommand]:
    """What an admin of ADMIN_IDS may use in the staff group besides the staff commands."""
    items = [
        ("credit", _("Credit a customer's balance")),
        ("debit", _("Debit a customer's balance")),
        ("approve_company", _("Approve a customer's company details")),
    ]
    return staff_command_list() + [
        BotCommand(command=name, description=text) for name, text in items
    ]


async def _set_in_every_language(
    bot: Bot,
    i18n: I18n,
    default_language: str,
    commands: Callable[[], list[BotCommand]],
    scope: BotCommandScopeUnion | None = None,
) -> None:
    """One list per supported language, and the default language's for everyone else."""
    with i18n.context():
        for language in SUPPORTED_LANGUAGES:
            with i18n.use_locale(language):
                listed = commands()
            await bot.set_my_commands(listed, scope=scope, language_code=language)
        with i18n.use_locale(default_language):
            listed = commands()
        await bot.set_my_commands(listed, scope=scope)


async def register_staff_commands(
    bot: Bot, i18n: I18n, default_language: str, staff_chat_id: int, admin_ids: Sequence[int]
) -> None:
    scopes: list[tuple[BotCommandScopeUnion, Callable[[], list[BotCommand]]]] = [
        (BotCommandScopeChat(chat_id=staff_chat_id), staff_command_list)
    ]
    scopes += [
        (BotCommandScopeChatMember(chat_id=staff_chat_id, user_id=admin), admin_command_list)
        for admin in dict.fromkeys(admin_ids)
    ]
    for scope, commands in scopes:
        try:
            await _set_in_every_language(bot, i18n, default_language, commands, scope)
        except TelegramAPIError as exc:  # not in the group (the bot, or that admin)
            log.warning("Staff commands (%s) not registered: %s", scope.type.value, exc.message)


async def register_commands(
    bot: Bot,
    i18n: I18n,
    default_language: str,
    *,
    linking: bool = False,
    staff_chat_id: int | None = None,
    admin_ids: Sequence[int] = (),
) -> None:
    def customer_commands() -> list[BotCommand]:
        return command_list(linking=linking)

    await _set_in_every_language(bot, i18n, default_language, customer_commands)
    if staff_chat_id is not None:
        await register_staff_commands(bot, i18n, default_language, staff_chat_id, admin_ids)
