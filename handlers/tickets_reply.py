"""Tickets, the customer's side: a reply to a ticket (text, photos, documents, an album),
which reopens a closed ticket within the reopen window and goes to the staff group too. The
customer replies with the ✍️ Reply button, or with Telegram's reply to a message the bot sent
for the ticket (a support answer, the close or reopen notice: linked by push_to_customer and
the outbox)."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.desk import attachments_of, customer_message_text, post_to_staff, staff_locale
from handlers.tickets_view import can_reopen, reopen_window, window_passed_text
from keyboards.tickets import TicketAction, TicketCb, cancel_kb, open_ticket_kb, window_passed_kb
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.tickets import TEXT_MAX
from services.errors import InvalidState


class TicketReply(StatesGroup):
    text = State()


# ---- replies ------------------------------------------------------------------------------------
async def ticket_reply(
    query: CallbackQuery,
    callback_data: TicketCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
) -> None:
    await start_reply(query, billing, account, state, settings, callback_data.ticket_id)


async def start_reply(
    query: CallbackQuery,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
    ticket_id: int,
) -> None:
    ticket = await billing.get_ticket(account.id, ticket_id)
    if ticket.status == "closed" and not can_reopen(ticket, settings, datetime.now(UTC)):
        await query.answer(window_passed_text(settings)[:200], show_alert=True)
        return
    await state.clear()
    await state.set_state(TicketReply.text)
    await state.update_data(ticket_id=ticket.id)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            _(
                "✍️ Write your reply to ticket #{id} «{subject}»: text, a photo or a document. "
                "/cancel to stop."
            ).format(id=ticket.id, subject=html.escape(ticket.subject)),
            reply_markup=cancel_kb(),
        )


async def enter_reply(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
    i18n: I18n,
    replied_ticket_id: int | None = None,
) -> None:
    """The reply (`replied_ticket_id`: a Telegram reply to that ticket's message)."""
    if replied_ticket_id is not None:
        await aim_at(message, state, replied_ticket_id)
    text = (message.text or message.caption or "").strip()
    files = attachments_of(message)
    if not text and not files:
        await message.answer(
            _("Please send text, a photo or a document."), reply_markup=cancel_kb()
        )
        return
    if len(text) > TEXT_MAX:
        await message.answer(
            _(
                "The message is too long: at most {max} characters. Please send a shorter one."
            ).format(max=TEXT_MAX),
            reply_markup=cancel_kb(),
        )
        return
    data = await state.get_data()
    try:
        ticket = await billing.add_customer_message(
            account.id, int(data["ticket_id"]), text, files, reopen_window=reopen_window(settings)
        )
    except InvalidState:
        await state.clear()
        await message.answer(window_passed_text(settings), reply_markup=window_passed_kb())
        return
    first_part = data.get("album") is None
    if message.media_group_id:  # an album arrives as several messages: take them all
        await state.update_data(album=message.media_group_id)
    else:
        await state.clear()
    with staff_locale(i18n, settings):
        staff_text = customer_message_text(ticket, text)
    await post_to_staff(bot, billing, settings, i18n, ticket, staff_text, files)
    if first_part:
        await message.answer(
            _("✅ Your reply is added to ticket #{id}.").format(id=ticket.id),
            reply_markup=open_ticket_kb(ticket.id),
        )


async def replied_ticket(message: Message, billing: Billing) -> dict[str, int] | bool:
    """Filter: a Telegram reply to a message the bot sent for a ticket (its id injected as
    `replied_ticket_id`)."""
    replied = message.reply_to_message
    if replied is None:
        return False
    ticket_id = await billing.ticket_id_of_customer_message(message.chat.id, replied.message_id)
    return {"replied_ticket_id": ticket_id} if ticket_id is not None else False


async def aim_at(message: Message, state: FSMContext, ticket_id: int) -> None:
    """A Telegram reply to a ticket's message is a reply to that ticket, as if the customer had
    pressed ✍️ Reply under it (the rest of an album follows its first part)."""
    data = await state.get_data()
    album = message.media_group_id
    if album is None or (data.get("album"), data.get("ticket_id")) != (album, ticket_id):
        await state.clear()
        await state.set_state(TicketReply.text)
        await state.update_data(ticket_id=ticket_id)


async def expects_reply(message: Message, state: FSMContext) -> bool:
    """After an album, only the rest of that album still belongs to the reply."""
    album = (await state.get_data()).get("album")
    return album is None or message.media_group_id == album


def create_router() -> Router:
    router = Router(name="tickets_reply")
    router.callback_query.register(ticket_reply, TicketCb.filter(F.action == TicketAction.REPLY))
    not_command = ~F.text.startswith("/")
    # Outside a dialog, or while replying (to this ticket or another): other dialogs keep theirs.
    router.message.register(
        enter_reply, StateFilter(None, TicketReply.text), not_command, replied_ticket
    )
    router.message.register(enter_reply, StateFilter(TicketReply.text), not_command, expects_reply)
    return router
