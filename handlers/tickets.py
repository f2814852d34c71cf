"""Tickets, the customer's side: the list, a new ticket (department → subject → message with
photos and documents → create), a ticket's conversation, reply, close and reopen.
Everything the customer writes also goes to the ticket's place in the staff group.

This module composes the section's routers, in this order (a command such as /tickets in a
photo's caption is a command, whatever dialog is open, so the command handlers come first):
- handlers/tickets_view.py: the list and a ticket's conversation, close and reopen;
- handlers/tickets_new.py: the new-ticket dialog;
- handlers/tickets_reply.py: a reply to a ticket (with its button, or a Telegram reply to a
  ticket's message);
- handlers/tickets_rating.py: the rating asked under the close notice."""

from __future__ import annotations

from aiogram import F, Router

from handlers import tickets_new, tickets_rating, tickets_reply, tickets_view


def create_router() -> Router:
    router = Router(name="tickets")
    # Checked before any sub-router's handlers: the section serves private chats only.
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.include_router(tickets_view.create_router())
    router.include_router(tickets_new.create_router())
    router.include_router(tickets_reply.create_router())
    router.include_router(tickets_rating.create_router())
    return router
