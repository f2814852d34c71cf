"""Admin commands in the staff group (ADMIN_IDS only): /credit and /debit (a manual ledger
line with its author, keyed by the message so a redelivered update changes nothing) and
/approve_company. The customer is told what was done to their account, in their language."""

from __future__ import annotations

import html
from collections.abc import Callable

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import answer_or_queue, display_balance, display_rates, money
from handlers.desk import is_admin
from services.billing import Billing
from services.contracts.common import Account
from services.errors import InsufficientFunds, ValidationFailed
from services.languages import pick_language
from services.money import parse_amount


async def tell_customer(
    bot: Bot,
    billing: Billing,
    i18n: I18n,
    settings: Settings,
    account: Account,
    build: Callable[[], str],
    *,
    key: str,
) -> None:
    """A notice to the account's customer in their language: sent now, or queued under `key`
    when Telegram does not take it (the change it tells of is committed already)."""
    if account.chat_id is None:
        return
    with (
        i18n.context(),
        i18n.use_locale(pick_language(account.language, None, settings.default_language)),
    ):
        text = build()
    await answer_or_queue(bot, billing, account.chat_id, text, key=key)


def adjustment_notice(name: str, amount: str, reason: str, balance: str) -> str:
    text = (
        _("💰 Our support credited {amount} to your balance: {reason}\nBalance: <b>{balance}</b>")
        if name == "credit"
        else _(
            "💸 Our support debited {amount} from your balance: {reason}\nBalance: <b>{balance}</b>"
        )
    )
    return text.format(amount=amount, reason=html.escape(reason), balance=balance)


async def _account_arg(message: Message, billing: Billing, reference: str) -> Account | None:
    account_id = await billing.staff_find_account(reference)
    if account_id is None:
        await message.reply(
            _("Account {reference} not found.").format(reference=html.escape(reference))
        )
        return None
    return await billing.get_account(account_id)


async def _adjust_args(
    message: Message, billing: Billing, name: str, args: str | None
) -> tuple[Account, int, str] | None:
    """The account, amount and reason of /credit or /debit; None once the problem is answered."""
    parts = (args or "").split(maxsplit=2)
    if len(parts) < 3:
        await message.reply(
            _("Usage: /{command} &lt;account&gt; &lt;amount&gt; &lt;reason&gt;").format(
                command=name
            )
        )
        return None
    reference, amount_text, reason = parts
    account = await _account_arg(message, billing, reference)
    if account is None:
        return None
    try:
        amount = parse_amount(amount_text, account.base_currency)
    except ValidationFailed:
        await message.reply(_("Invalid amount: {amount}.").format(amount=html.escape(amount_text)))
        return None
    return account, amount, reason


async def cmd_adjust(
    message: Message,
    command: CommandObject,
    billing: Billing,
    bot: Bot,
    i18n: I18n,
    settings: Settings,
) -> None:
    """/credit|/debit <account> <amount> <reason>: a manual ledger line, recorded with its
    author; the message id keys it, so a redelivered update changes nothing."""
    name = command.command.lower()
    parsed = await _adjust_args(message, billing, name, command.args)
    if parsed is None:
        return
    account, amount, reason = parsed
    user_id = message.from_user.id if message.from_user else 0
    post = billing.credit if name == "credit" else billing.debit
    try:
        line = await post(
            account.id,
            amount,
            kind="adjustment",
            description=reason,
            reference=f"staff:{user_id}",
            idempotency_key=f"staff:{message.chat.id}:{message.message_id}",
            actor=f"tg:{user_id}",
        )
    except InsufficientFunds:
        await message.reply(
            _("Not enough money on account #{id}: the balance is {balance}.").format(
                id=account.id, balance=money(account.balance_minor, account.base_currency)
            )
        )
        return
    if line is None:  # the same message delivered again
        await message.reply(_("This adjustment is already recorded; nothing was changed."))
        return
    account = await billing.get_account(account.id)
    text = (
        _("✅ Credited {amount} to account #{id} ({login}). Balance: {balance}.")
        if name == "credit"
        else _("✅ Debited {amount} from account #{id} ({login}). Balance: {balance}.")
    )
    await message.reply(
        text.format(
            amount=money(amount, account.base_currency),
            id=account.id,
            login=html.escape(account.login),
            balance=money(account.balance_minor, account.base_currency),
        )
    )
    rates = await display_rates(billing, account)
    await tell_customer(
        bot,
        billing,
        i18n,
        settings,
        account,
        lambda: adjustment_notice(  # formatted in the customer's locale
            name,
            money(amount, account.base_currency),
            reason,
            display_balance(account.balance_minor, account, rates),
        ),
        key=f"staff_notice:{message.chat.id}:{message.message_id}",
    )


async def cmd_approve_company(
    message: Message,
    command: CommandObject,
    billing: Billing,
    bot: Bot,
    i18n: I18n,
    settings: Settings,
) -> None:
    reference = (command.args or "").strip()
    if not reference:
        await message.reply(_("Usage: /approve_company &lt;account&gt;"))
        return
    account = await _account_arg(message, billing, reference)
    if account is None:
        return
    await billing.approve_company(account.id)
    await message.reply(
        _(
            "✅ The company profile of account #{id} ({login}) is approved: payments are unblocked."
        ).format(id=account.id, login=html.escape(account.login))
    )
    await tell_customer(
        bot,
        billing,
        i18n,
        settings,
        account,
        lambda: _("✅ Your company details are verified: payments are unblocked."),
        key=f"staff_notice:{message.chat.id}:{message.message_id}",
    )


def register(router: Router) -> None:
    router.message.register(cmd_adjust, Command("credit", "debit"), is_admin)
    router.message.register(cmd_approve_company, Command("approve_company"), is_admin)
