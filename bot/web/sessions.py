"""The browser side's cookies: the session of a web login (a token signed like the pay links,
for its own purpose, with an expiry and the account's session epoch, so that a logout or a new
password ends every session given out before; HttpOnly, Secure when PUBLIC_URL is https,
SameSite=Lax)
and the CSRF token of the forms (double submit: a random value in an HttpOnly SameSite=Strict
cookie, repeated in a hidden field; another site can neither read the cookie nor set it, so it
cannot write the field)."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from bot.web.app import WEB_KEY
from services.errors import NotFound
from services.web_auth import WebAuthError, sign_token, verify_token

SESSION_COOKIE = "cabinet_session"
CSRF_COOKIE = "cabinet_csrf"
CSRF_FIELD = "csrf"
SESSION = "session"  # the token's purpose: a pay link's token is no session, nor the reverse
SESSION_SECONDS = 8 * 3600
NEW_CSRF = web.RequestKey("new_csrf", str)  # a form token made for this page, to be set


def _secure(request: web.Request) -> bool:
    url = request.app[WEB_KEY].settings.public_url or ""
    return url.startswith("https://")


async def session_account_id(request: web.Request) -> int | None:
    """The account a valid, unexpired session cookie names, of its account's current
    session epoch; None otherwise."""
    context = request.app[WEB_KEY]
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    try:
        claim = verify_token(context.secret, token, SESSION, now=context.clock())
        epoch = await context.billing.web_session_epoch(claim.account_id)
    except (WebAuthError, NotFound):
        return None
    return claim.account_id if claim.invoice_id == epoch else None


async def start_session(
    request: web.Request, response: web.StreamResponse, account_id: int
) -> None:
    context = request.app[WEB_KEY]
    expires = int(context.clock()) + SESSION_SECONDS
    # The subject is the account's session epoch (a pay link's is its invoice).
    epoch = await context.billing.web_session_epoch(account_id)
    token = sign_token(context.secret, SESSION, epoch, account_id, expires)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="Lax",
    )
    new_csrf(request, response)  # a login starts with a fresh form token


def end_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def csrf_token(request: web.Request) -> str:
    """The form token of this browser (the cookie's), or a new one `keep_csrf` then sets."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(token) <= 64 and token.isascii():
        return token
    request[NEW_CSRF] = token = secrets.token_urlsafe(24)
    return token


def keep_csrf(request: web.Request, response: web.StreamResponse) -> None:
    """Set the form token's cookie when `csrf_token` made a new one for this page."""
    token = request.get(NEW_CSRF)
    if token:
        _set_csrf(request, response, token)


def new_csrf(request: web.Request, response: web.StreamResponse) -> None:
    _set_csrf(request, response, secrets.token_urlsafe(24))


def _set_csrf(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
    )


def csrf_ok(request: web.Request, form_value: object) -> bool:
    """The posted field repeats this browser's form cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not isinstance(form_value, str):
        return False
    return hmac.compare_digest(cookie.encode(), form_value.encode("utf-8", "replace"))
