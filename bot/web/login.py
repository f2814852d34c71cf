"""The web login (issue 17, item 4): the billing login and the password set in the bot's
Settings, checked (scrypt, in a thread) only while the attempts per login and per client
address are under their limits; the account's IP allow-list on the login and on every request
of the session; each login records the address and time. The browser's cabinet page, logout.
Every form carries the CSRF token of bot/web/sessions.py."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import lru_cache
from typing import Any

from aiogram.utils.i18n import gettext as _
from aiohttp import web

from bot.web.app import CABINET_PATH, LOGIN_PATH, LOGOUT_PATH
from bot.web.routes import (
    address_refused_text,
    language,
    render,
    request_address,
    web_context,
)
from bot.web.sessions import (
    CSRF_FIELD,
    csrf_ok,
    csrf_token,
    end_session,
    keep_csrf,
    session_account_id,
    start_session,
)
from bot.web.views import FORMS, cabinet
from handlers.web_links import PAY_PATH
from services.contracts.common import Account
from services.errors import NotFound
from services.security import hash_secret_sync, verify_secret
from services.validation import PASSWORD_MAX, ip_allowed

log = logging.getLogger(__name__)

ATTEMPTS_PER_LOGIN = 5
ATTEMPTS_PER_ADDRESS = 20
ATTEMPTS_WINDOW = timedelta(minutes=15)
MAX_LOGIN = 64


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """What an unknown login's password is checked against: the answer takes as long."""
    return hash_secret_sync("no account has this password")


def safe_next(value: object) -> str:
    """Where to go after logging in: a pay link or the cabinet, never another site."""
    text = value if isinstance(value, str) else ""
    if text.startswith(PAY_PATH + "/") and "//" not in text and "\\" not in text:
        return text[:400]
    return CABINET_PATH


def login_page(
    request: web.Request,
    lang: str,
    *,
    next_path: str,
    login: str = "",
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    context = web_context(request)
    with context.i18n.use_locale(lang):
        values: dict[str, Any] = {
            "lang": lang,
            "csrf": csrf_token(request),
            "next": next_path,
            "login": login,
            "error": error,
        }
        response = render(request, "login.html", values, status)
    keep_csrf(request, response)
    return response


async def login_form(request: web.Request) -> web.Response:
    return login_page(
        request, language(request, None), next_path=safe_next(request.query.get("next"))
    )


async def login_submit(request: web.Request) -> web.StreamResponse:
    context = web_context(request)
    form = await request.post()
    next_path = safe_next(form.get("next"))
    login = form.get("login")
    password = form.get("password")
    lang = language(request, None)
    if not isinstance(login, str) or not isinstance(password, str):
        raise web.HTTPBadRequest()
    login = login.strip()[:MAX_LOGIN]
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        with context.i18n.use_locale(lang):
            error = _("The form has expired. Please try again.")
        return login_page(request, lang, next_path=next_path, login=login, error=error, status=403)
    ip = request_address(request)
    wait = await context.billing.take_web_login_attempt(
        login,
        ip or "unknown",
        per_login=ATTEMPTS_PER_LOGIN,
        per_ip=ATTEMPTS_PER_ADDRESS,
        window=ATTEMPTS_WINDOW,
    )
    if wait:
        log.info("Web login refused by the attempt limits (%s s)", wait)
        with context.i18n.use_locale(lang):
            error = _("Too many attempts. Please try again in {minutes} min.").format(
                minutes=max(1, -(-wait // 60))
            )
        response = login_page(
            request, lang, next_path=next_path, login=login, error=error, status=429
        )
        response.headers["Retry-After"] = str(wait)
        return response
    account = await context.billing.find_account_by_login(login) if login else None
    profile = await context.billing.get_profile(account.id) if account is not None else None
    if account is None or profile is None or not profile.password_set:
        await verify_secret(password[:PASSWORD_MAX], await asyncio.to_thread(_dummy_hash))
        valid = False
    else:
        valid = await context.billing.check_password(account.id, password[:PASSWORD_MAX])
    if not valid:
        with context.i18n.use_locale(lang):
            error = _("Wrong login or password.")
        return login_page(request, lang, next_path=next_path, login=login, error=error, status=401)
    assert account is not None and profile is not None
    await context.billing.clear_web_login_attempts(login)
    lang = language(request, account)
    if not ip_allowed(ip or "", profile.ip_allowlist):
        log.info("Web login of account %s refused by its IP allow-list", account.id)
        with context.i18n.use_locale(lang):
            error = address_refused_text(ip)
        return login_page(request, lang, next_path=next_path, login=login, error=error, status=403)
    if ip is not None:
        await context.billing.record_last_ip(account.id, ip)
    redirect = web.HTTPSeeOther(next_path)
    await start_session(request, redirect, account.id)
    log.info("Web login of account %s", account.id)
    raise redirect


async def logout(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        raise web.HTTPForbidden()
    account_id = await session_account_id(request)
    if account_id is not None:  # every session of the account ends, not only this cookie
        await web_context(request).billing.end_web_sessions(account_id)
    redirect = web.HTTPSeeOther(LOGIN_PATH)
    end_session(redirect)
    raise redirect


async def session_customer(request: web.Request) -> Account | web.StreamResponse:
    """The account of this browser's session, admitted by its IP allow-list; else where to
    go: the login (no session) or a 403 page."""
    context = web_context(request)
    account_id = await session_account_id(request)
    if account_id is None:
        raise web.HTTPSeeOther(f"{LOGIN_PATH}?next={CABINET_PATH}")
    try:
        account = await context.billing.get_account(account_id)
    except NotFound:
        raise web.HTTPSeeOther(LOGIN_PATH) from None
    profile = await context.billing.get_profile(account_id)
    ip = request_address(request)
    if not ip_allowed(ip or "", profile.ip_allowlist):
        lang = language(request, account)
        with context.i18n.use_locale(lang):
            error = address_refused_text(ip)
        return login_page(request, lang, next_path=CABINET_PATH, error=error, status=403)
    return account


async def cabinet_page(request: web.Request) -> web.StreamResponse:
    """The browser's main page: the cabinet as the Mini App shows it, without its forms (the
    profile is edited in the bot or the Mini App); the pay buttons are the invoices' pay
    links."""
    account = await session_customer(request)
    if not isinstance(account, Account):
        return account
    context = web_context(request)
    lang = language(request, account)
    with context.i18n.use_locale(lang):
        page = await cabinet(context.billing, account, context.settings, context.clock())
        values = {
            "lang": lang,
            "cabinet": page,
            "notice": None,
            "forms": FORMS,
            "browser": True,
            "csrf": csrf_token(request),
        }
        response = render(request, "browser.html", values)
    keep_csrf(request, response)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(LOGIN_PATH, login_form)
    app.router.add_post(LOGIN_PATH, login_submit)
    app.router.add_post(LOGOUT_PATH, logout)
    app.router.add_get(CABINET_PATH, cabinet_page)
