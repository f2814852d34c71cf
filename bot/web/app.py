"""Wiring: the web routes, the templates (Jinja2, autoescaped, with the bot's gettext catalogs),
the security headers, and the Mini App menu button. Called by bot/runners.py; nothing is added
while PUBLIC_URL is not set."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.types import MenuButtonWebApp, WebAppInfo
from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.config import Settings
from handlers.web_links import APP_PATH, PAY_PATH, cabinet_url, signing_key
from services.billing import Billing, BillingGateway, per_call

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_PATH = APP_PATH + "/static"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
CABINET_PATH = "/cabinet"  # the browser's cabinet after a web login
TELEGRAM_JS = "https://telegram.org/js/telegram-web-app.js"
# Telegram's web clients (web.telegram.org/k, /a) frame the Mini App; nobody frames the rest.
TELEGRAM_FRAME_ANCESTORS = "https://web.telegram.org"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class WebContext:
    settings: Settings
    billing: Billing  # per call: each method its own short transaction, none open meanwhile
    i18n: I18n
    bot: Bot
    secret: bytes  # signs the pay links
    clock: Callable[[], float] = field(default=time.time)


WEB_KEY = web.AppKey("web", WebContext)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def is_web_path(path: str) -> bool:
    prefixes = (APP_PATH, PAY_PATH, LOGIN_PATH, LOGOUT_PATH, CABINET_PATH)
    return any(_under(path, prefix) for prefix in prefixes)


def content_security_policy(path: str) -> str:
    ancestors = TELEGRAM_FRAME_ANCESTORS if _under(path, APP_PATH) else "'none'"
    return (
        "default-src 'none'; script-src 'self' https://telegram.org; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; object-src 'none'; "
        # The pay page's form is answered by a redirect to Telegram's invoice link, and
        # browsers apply form-action to the redirect too.
        f"form-action 'self' https://t.me; frame-ancestors {ancestors}"
    )


def add_security_headers(path: str, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(path)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"  # a pay link's token never leaves in a Referer
    if not _under(path, APP_PATH):
        headers["X-Frame-Options"] = "DENY"  # browsers without CSP frame-ancestors
    # Pages show one customer's data (and a pay link is a credential): never kept by a cache.
    # The static files are the same for everyone.
    headers["Cache-Control"] = "public, max-age=3600" if _under(path, STATIC_PATH) else "no-store"


@web.middleware
async def web_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers and the gettext context on the web routes (errors included); the
    webhook and /healthz pass untouched."""
    if not is_web_path(request.path):
        return await handler(request)
    context = request.app[WEB_KEY]
    with context.i18n.context():
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            add_security_headers(request.path, exc)
            raise
    add_security_headers(request.path, response)
    return response


def create_environment(app: web.Application, i18n: I18n) -> jinja2.Environment:
    """`_("... {name} ...", name=value)` in a template is the chat's gettext with the same
    `{name}` placeholders (babel.cfg extracts the templates into the same catalogs); the
    locale is the one the route set with `i18n.use_locale`. Autoescape escapes the result."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    def gettext(message: str, **values: Any) -> str:
        text = i18n.gettext(message)
        return text.format(**values) if values else text

    def ngettext(singular: str, plural: str, n: int, **values: Any) -> str:
        return i18n.gettext(singular, plural, n).format(count=n, **values)

    env.globals.update(_=gettext, gettext=gettext, ngettext=ngettext)
    return env


def setup_web(app: web.Application, context: WebContext) -> None:
    from bot.web import login, routes  # they import the handlers' helpers: only when on

    app[WEB_KEY] = context
    create_environment(app, context.i18n)
    app.middlewares.append(web_middleware)
    routes.add_routes(app)
    login.add_routes(app)


def add_web(app: web.Application, dp: Dispatcher, bot: Bot) -> bool:
    """The web routes on `app` when PUBLIC_URL is set; True when added."""
    settings: Settings = dp["settings"]
    if not settings.web_enabled:
        return False
    gateway: BillingGateway = dp["gateway"]
    context = WebContext(settings, per_call(gateway), dp["i18n"], bot, signing_key(settings))
    setup_web(app, context)
    base = settings.public_url
    log.info(
        "Web side on: %s%s (Mini App) and %s%s/<token> (pay links)", base, APP_PATH, base, PAY_PATH
    )
    return True


async def set_menu_button(bot: Bot, settings: Settings, i18n: I18n) -> bool:
    """The chats' menu button opens the Mini App (an https PUBLIC_URL only); True when set.
    Called at start with no transaction open; a refusal is logged and the bot runs on."""
    url = cabinet_url(settings)
    if url is None:
        return False
    with i18n.context(), i18n.use_locale(settings.default_language):
        text = i18n.gettext("Cabinet")
    try:
        await bot.set_chat_menu_button(
            menu_button=MenuButtonWebApp(text=text, web_app=WebAppInfo(url=url))
        )
    except TelegramAPIError as exc:
        log.warning("setChatMenuButton refused (%s): the menu button stays as it was", exc)
        return False
    return True
