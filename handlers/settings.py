"""Settings: grouped screens (general, profile and contacts, notice e-mails, security, postal
address), each value with its edit button; edits are FSM dialogs saved on the answer, with a
confirmation showing the new value; /cancel or the Cancel button leaves any edit for the
screen being edited. Secrets (password, code word, the e-mail code, the call-password digits)
are deleted from the chat right after reading, kept in the FSM only as a hash, and never
echoed or logged.

The section is one router composed of one sub-router per part:
- `handlers.settings_menu`: the screens, Cancel and Clear, the toggles, the General group;
- `handlers.settings_contacts`: the e-mail and the phone with their confirmation codes;
- `handlers.settings_security`: code word, IP allow-list, password;
- `handlers.settings_profile`: the profile's text fields, the profile type, the guided flow;
- `handlers.settings_country`: the country, set once by the customer while it is empty;
- `handlers.settings_common`: the FSM states and helpers shared by the parts, and the guards
  of every dialog (a command leaves it; a non-text answer is refused).
Order matters: the menu comes first (/settings leaves any dialog, even one taking a secret)
and the guards last (a shared contact is the phone's answer, not "send text")."""

from __future__ import annotations

from aiogram import F, Router

from handlers import (
    settings_common,
    settings_contacts,
    settings_country,
    settings_menu,
    settings_profile,
    settings_security,
)


def create_cancel_router() -> Router:
    """/cancel in a settings dialog, back to the screen being edited: to be included before
    the main menu's router (handlers.section_routers)."""
    return settings_menu.create_cancel_router()


def create_router() -> Router:
    router = Router(name="settings")
    # The filters of this router gate all its sub-routers.
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.include_routers(
        settings_menu.create_router(),
        settings_contacts.create_router(),
        settings_security.create_router(),
        settings_profile.create_router(),
        settings_country.create_router(),
        settings_common.create_router(),
    )
    return router
