"""Staff answers in a ticket (its topic, or a reply to one of its messages) reach the customer;
a staff message in a closed ticket is not sent before staff say what to do with it (reopen and
send, or keep it as an internal note); an edit of a relayed answer edits the customer's copy."""

from __future__ import annotations

import html
import logging
from functools import partial

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.desk import (
    attachments_of,
    blocked_text,
    customer_language,
    is_staff,
    is_staff_user,
    push_to_customer,
    staff_locale,
    staff_name,
    sync_topic,
    ticket_of,
)
from handlers.fallback import stale_button
from keyboards.staff import ClosedAction, ClosedTicketCb, closed_ticket_kb
from keyboards.tickets import answer_kb
from services.billing import Billing
from services.contracts.store import CustomerCopy
from services.contracts.tickets import TEXT_MAX, Attachment, Ticket

log = logging.getLogger(__name__)


async def in_ticket(message: Message, billing: Billing) -> dict[str, Ticket] | bool:
    """Filter: the message belongs to a ticket (injected as `ticket`). Other messages of the
    staff group fall through to later routers and end ignored, never answered."""
    ticket = await ticket_of(message, billing)
    return {"ticket": ticket} if ticket is not None else False


async def from_staff(
    message: Message, bot: Bot, settings: Settings, dispatcher: Dispatcher
) -> bool:
    """Filter: the sender is staff; what outsiders write in a ticket's topic ends ignored."""
    return await is_staff(message, bot, settings, dispatcher)


async def relayed(message: Message, billing: Billing) -> dict[str, list[CustomerCopy]] | bool:
    """Filter: the edited message was relayed to a customer (its copies injected as `copies`)."""
    copies = await billing.customer_copies(message.chat.id, message.message_id)
    return {"copies": copies} if copies else False


def answer_text(ticket: Ticket, text: str) -> str:
    head = _("💬 <b>Support</b> answered in ticket #{id} «{subject}»:").format(
        id=ticket.id, subject=html.escape(ticket.subject)
    )
    return head + ("\n\n" + html.escape(text) if text.strip() else "")


def refusal(text: str, attachments: list[Attachment]) -> str | None:
    """Why a staff message cannot reach the customer (in the staff locale), or None."""
    if not text.strip() and not attachments:
        return _("Only text, photos and documents reach the customer; this was not sent.")
    if len(text) > TEXT_MAX:
        return _("Too long: at most {max} characters reach the customer. Not sent.").format(
            max=TEXT_MAX
        )
    return None


async def relay_answer(
    source: Message,
    ticket: Ticket,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
    *,
    text: str | None = None,
) -> tuple[Ticket, bool]:
    """Store the staff message in the ticket (a closed ticket is reopened), show the status in
    the topic and send it to the customer; returns the ticket and whether it was delivered.
    With `text` (a canned answer) that text is sent instead of the message's, and an edit of
    the message is not relayed."""
    copied = source if text is None else None  # an edit of a copied message is relayed
    text = (source.text or source.caption or "") if text is None else text
    attachments = attachments_of(source) if copied else []
    user_id = source.from_user.id if source.from_user else 0
    with staff_locale(i18n, settings):
        name = staff_name(source)
    ticket = await billing.add_staff_message(ticket.id, user_id, name, text, attachments)
    await billing.link_staff_message(source.chat.id, source.message_id, ticket.id)
    build, keyboard = partial(answer_text, ticket, text), partial(answer_kb, ticket.id)
    delivered = await push_to_customer(
        bot, billing, settings, i18n, ticket, build, keyboard, attachments, source=copied
    )
    await sync_topic(bot, billing, settings, i18n, ticket)  # the customer first, then the topic
    return ticket, delivered


async def staff_message(
    message: Message, ticket: Ticket, billing: Billing, bot: Bot, settings: Settings, i18n: I18n
) -> None:
    """A staff answer in a ticket's topic (or a reply to a ticket message) → the customer."""
    with staff_locale(i18n, settings):
        problem = refusal(message.text or message.caption or "", attachments_of(message))
        if problem is not None:
            await message.reply(problem)
            return
        if ticket.status == "closed":
            await message.reply(
                _(
                    "⚠️ Ticket #{id} is closed, so this message was <b>not sent</b> to the "
                    "customer. Reopen the ticket and send it, or keep it as an internal note?"
                ).format(id=ticket.id),
                reply_markup=closed_ticket_kb(ticket.id, message.message_id),
            )
            return
    _ticket, delivered = await relay_answer(message, ticket, billing, bot, settings, i18n)
    if not delivered:
        with staff_locale(i18n, settings):
            await message.reply(blocked_text())


async def closed_ticket_choice(
    query: CallbackQuery,
    callback_data: ClosedTicketCb,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
    dispatcher: Dispatcher,
) -> None:
    """Staff chose what happens to their message in a closed ticket."""
    prompt = query.message
    source = prompt.reply_to_message if isinstance(prompt, Message) else None
    if not isinstance(prompt, Message) or source is None:
        await stale_button(query)
        return
    with staff_locale(i18n, settings):
        if not await is_staff_user(query.from_user.id, bot, settings, dispatcher):
            await query.answer(_("⛔ Only support staff can use this command."), show_alert=True)
            return
        if source.message_id != callback_data.message_id:
            await stale_button(query)
            return
        if await billing.ticket_id_of_staff_message(source.chat.id, source.message_id):
            await query.answer(_("This message was handled already."), show_alert=True)
            return
        ticket = await billing.staff_get_ticket(callback_data.ticket_id)
        if callback_data.action == ClosedAction.NOTE:
            text = _note_of(source)
            if text is None:
                await query.answer(_("Only text can be kept as a note."), show_alert=True)
                return
            user_id = source.from_user.id if source.from_user else 0
            await billing.add_staff_note(ticket.id, user_id, staff_name(source), text)
            await billing.link_staff_message(source.chat.id, source.message_id, ticket.id)
            outcome = _(
                "📝 Saved as an internal note of ticket #{id}. The ticket stays closed; the "
                "customer does not see the note."
            ).format(id=ticket.id)
        else:
            was_closed = ticket.status == "closed"
            ticket, delivered = await relay_answer(source, ticket, billing, bot, settings, i18n)
            outcome = (
                _("🔄 Ticket #{id} is open again and the message was sent to the customer.")
                if was_closed
                else _("The message was sent to the customer (ticket #{id}).")
            ).format(id=ticket.id)
            if not delivered:
                outcome += "\n" + blocked_text()
        await query.answer()
        await prompt.edit_text(outcome)


def _note_of(source: Message) -> str | None:
    text = (source.text or source.caption or "").strip()
    return text if text and len(text) <= TEXT_MAX else None


async def staff_edit(
    message: Message,
    copies: list[CustomerCopy],
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
    """Staff edited a message that was relayed to a customer: the customer's copy shows the
    new text (the ticket's history keeps what was sent first)."""
    text = message.text or message.caption or ""
    if len(text) > TEXT_MAX:
        with staff_locale(i18n, settings):
            await message.reply(
                _(
                    "Too long: at most {max} characters reach the customer. The customer's copy "
                    "is unchanged."
                ).format(max=TEXT_MAX)
            )
        return
    for copy in copies:
        ticket = await billing.staff_get_ticket(copy.ticket_id)
        account = await billing.get_account(ticket.account_id)
        with i18n.context(), i18n.use_locale(customer_language(account, ticket, settings)):
            new_text, markup = answer_text(ticket, text), answer_kb(ticket.id)
        try:
            if copy.content == "caption":
                await bot.edit_message_caption(
                    chat_id=copy.chat_id,
                    message_id=copy.message_id,
                    caption=new_text,
                    reply_markup=markup,
                )
            else:
                await bot.edit_message_text(
                    new_text, chat_id=copy.chat_id, message_id=copy.message_id, reply_markup=markup
                )
        except TelegramAPIError as exc:
            if "not modified" in exc.message.lower():
                continue
            log.info("copy of staff message %s not edited: %s", message.message_id, exc.message)
            with staff_locale(i18n, settings):
                await message.reply(
                    _("⚠️ The customer's copy could not be changed: {error}").format(
                        error=html.escape(exc.message)
                    )
                )
