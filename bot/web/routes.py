"""The web routes. The Mini App (`/app`): a shell page whose script makes every data request
with Telegram's initData in a header, checked here with its age. The pay links
(`/pay/<signed token>`): the invoice's page, straight away only with the account's "payment
without authorization" on.

CSRF: the Mini App's writes are JSON posts authenticated by the initData header, never by a
cookie. A page on another site can neither read the initData nor make the browser send it
(a custom header on a cross-site request needs a CORS preflight, which these routes never
allow), so a forged request arrives unauthenticated and gets 401. The pay page's one form (go
to Telegram's payment) changes nothing here and is authorized by the unguessable signed token
in its own address."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiogram.exceptions import TelegramAPIError
from aiogram.types import LabeledPrice
from aiogram.utils.i18n import gettext as _
from aiogram.utils.web_app import WebAppUser
from aiohttp import web

from bot.web.app import HERE, LOGIN_PATH, STATIC_PATH, TELEGRAM_JS, WEB_KEY, WebContext
from bot.web.sessions import CSRF_FIELD, csrf_ok, csrf_token, keep_csrf, session_account_id
from bot.web.views import FORMS, cabinet, pay_methods, pay_page
from handlers.errors import domain_error_text
from handlers.invoices import invoice_description, invoice_title
from handlers.invoices import status_text as invoice_status_text
from handlers.settings_common import save_text_field
from handlers.settings_texts import invalid_text
from handlers.web_links import APP_PATH, PAY_PATH
from services.contracts.common import Account
from services.contracts.payments import STARS, Invoice
from services.errors import DomainError, NotFound, ValidationFailed
from services.languages import pick_language
from services.validation import ip_allowed, parse_id, validate_profile_field
from services.web_auth import (
    TokenExpired,
    WebAuthError,
    check_init_data,
    client_address,
    verify_pay_token,
)

log = logging.getLogger(__name__)

INIT_DATA_HEADER = "X-Telegram-Init-Data"
MAX_LANGUAGE_HEADER = 200
MAX_JSON_BODY = 16 * 1024  # a form is a few fields of at most 300 characters


def web_context(request: web.Request) -> WebContext:
    return request.app[WEB_KEY]


def browser_language(request: web.Request) -> str | None:
    """The first language of Accept-Language (for the pages no account speaks for)."""
    header = request.headers.get("Accept-Language", "")[:MAX_LANGUAGE_HEADER]
    return header.split(",")[0].split(";")[0].strip() or None


def language(request: web.Request, account: Account | None, telegram: str | None = None) -> str:
    return pick_language(
        account.language if account else None,
        telegram or browser_language(request),
        web_context(request).settings.default_language,
    )


async def bot_link(context: WebContext) -> str | None:
    """https://t.me/<bot>: where the pages send a customer to the chat."""
    username = context.settings.bot_username
    if username is None:
        try:
            username = (await context.bot.me()).username
        except TelegramAPIError as exc:
            log.warning("getMe failed, the pages go without the bot's link: %s", exc)
            return None
    return f"https://t.me/{username}" if username else None


def render(
    request: web.Request, template: str, values: dict[str, Any], status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, values, status=status)


async def message_page(
    request: web.Request,
    kind: str,
    lang: str,
    status: int,
    *,
    login_url: str | None = None,
    detail: str | None = None,
) -> web.Response:
    """A page that only says something (an invalid link, log in first, ...)."""
    context = web_context(request)
    bot_url = await bot_link(context)  # before the page: a network call
    with context.i18n.use_locale(lang):
        values = {
            "lang": lang,
            "kind": kind,
            "bot_url": bot_url,
            "login_url": login_url,
            "detail": detail,
        }
        return render(request, "message.html", values, status)


# ---- the Mini App ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Customer:
    user: WebAppUser
    account: Account | None  # None: never started the bot (the web creates no accounts)
    lang: str
    ip: str | None  # the client's address (behind TRUSTED_PROXIES: the one they report)


def unauthorized() -> web.Response:
    return web.json_response({"error": "unauthorized"}, status=401)


def address_refused_text(ip: str | None) -> str:
    return _(
        "Access from your address {ip} is not allowed by your IP allow-list. "
        "Change the list in the bot: Settings → Security."
    ).format(ip=ip or _("unknown"))


def request_address(request: web.Request) -> str | None:
    settings = web_context(request).settings
    forwarded = request.headers.get("X-Forwarded-For")
    return client_address(request.remote, forwarded, settings.trusted_proxies)


async def customer(request: web.Request) -> Customer | web.Response:
    """Who sent this request, by its initData (signed with the bot token, not older than
    WEB_INITDATA_MAX_AGE), from an address the account's IP allow-list admits; else the
    answer: 401, or 403 naming the refused address."""
    context = web_context(request)
    try:
        data = check_init_data(
            request.headers.get(INIT_DATA_HEADER, ""),
            context.settings.bot_token.get_secret_value(),
            max_age_seconds=context.settings.web_initdata_max_age,
            now=context.clock(),
        )
    except WebAuthError as exc:
        log.info("Mini App request refused: %s", exc.reason)
        return unauthorized()
    user = data.user
    assert user is not None  # check_init_data refuses initData without one
    # The lookup the bot's account middleware makes, and only a read.
    account = await context.billing.find_account_by_telegram(user.id)
    if account is not None and not account.linked:
        account = None  # in front of an external billing: not linked to a client yet
    lang = language(request, account, user.language_code)
    who = Customer(user, account, lang, request_address(request))
    if account is not None:
        allowlist = (await context.billing.get_profile(account.id)).ip_allowlist
        if not ip_allowed(who.ip or "", allowlist):
            log.info("Mini App request of account %s refused by its IP allow-list", account.id)
            with context.i18n.use_locale(who.lang):
                message = address_refused_text(who.ip)
            return web.json_response({"error": "address_refused", "message": message}, status=403)
    return who


async def app_page(request: web.Request) -> web.Response:
    """The shell; its script loads the cabinet with initData (a page load carries none)."""
    context = web_context(request)
    lang = language(request, None)
    with context.i18n.use_locale(lang):
        return render(request, "app.html", {"lang": lang, "telegram_js": TELEGRAM_JS})


async def cabinet_page(
    request: web.Request,
    who: Customer,
    *,
    notice: str | None = None,
    submitted: tuple[str, Mapping[str, str], Mapping[str, str]] | None = None,
    status: int = 200,
) -> web.Response:
    context = web_context(request)
    if who.account is None:
        bot_url = await bot_link(context)
        with context.i18n.use_locale(who.lang):
            return render(request, "no_account.html", {"bot_url": bot_url}, status)
    with context.i18n.use_locale(who.lang):
        page = await cabinet(
            context.billing, who.account, context.settings, context.clock(), submitted
        )
        values = {"cabinet": page, "notice": notice, "forms": FORMS, "browser": False}
        return render(request, "cabinet.html", values, status)


async def cabinet_view(request: web.Request) -> web.Response:
    """Opening the Mini App is its login: the page shows the address of the previous one
    (with "show last IP" on), then this one's is recorded."""
    who = await customer(request)
    if isinstance(who, web.Response):
        return who
    response = await cabinet_page(request, who)
    if who.account is not None and who.ip is not None:
        await web_context(request).billing.record_last_ip(who.account.id, who.ip)
    return response


async def json_body(request: web.Request) -> dict[str, Any] | None:
    """A JSON object posted as application/json, or None."""
    if request.content_type != "application/json" or (request.content_length or 0) > MAX_JSON_BODY:
        return None
    try:
        body = await request.json()
    except ValueError:  # not JSON, not UTF-8
        return None
    return body if isinstance(body, dict) else None


async def save_form(request: web.Request) -> web.Response:
    """The profile and address forms: every field checked with the validators the chat's
    Settings use (nothing is saved while one is refused), then the changed ones saved with
    the same billing methods."""
    who = await customer(request)
    if isinstance(who, web.Response):
        return who
    form = request.match_info["form"]
    body = await json_body(request)
    if body is None or form not in FORMS:
        raise web.HTTPBadRequest()
    values = {name: body.get(name, "") for name in FORMS[form]}
    if not all(isinstance(value, str) for value in values.values()):
        raise web.HTTPBadRequest()
    if who.account is None:
        return await cabinet_page(request, who, status=403)
    context = web_context(request)
    errors: dict[str, str] = {}
    cleaned: dict[str, str | None] = {}
    with context.i18n.use_locale(who.lang):
        for name, value in values.items():
            try:
                cleaned[name] = validate_profile_field(name, value)
            except ValidationFailed as exc:
                errors[name] = invalid_text(exc)
    if errors:
        return await cabinet_page(request, who, submitted=(form, values, errors), status=422)
    profile = await context.billing.get_profile(who.account.id)
    account_id = who.account.id
    try:
        for name, value in cleaned.items():
            if value != getattr(profile, name):
                await save_text_field(context.billing, account_id, name, values[name])
    except ValidationFailed as exc:  # the billing's own check (an external one may differ)
        with context.i18n.use_locale(who.lang):
            errors[name] = invalid_text(exc)
        return await cabinet_page(request, who, submitted=(form, values, errors), status=422)
    with context.i18n.use_locale(who.lang):
        notice = _("✅ Saved")
    return await cabinet_page(request, who, notice=notice)


# ---- paying: the same Telegram invoice the chat sends ------------------------------------------
class PayRefused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


async def telegram_invoice_link(
    context: WebContext, account: Account, invoice: Invoice, method: str
) -> str:
    """A t.me link to the invoice as the chat sends it (same payload: the bot's pre-checkout
    check and crediting apply, and a paid invoice is refused there too). Checks what the chat's
    pay buttons check; PayRefused says why not. No transaction is open here (per-call
    billing): createInvoiceLink is a network call."""
    settings = context.settings
    if invoice.status != "unpaid":
        status = invoice_status_text(invoice.status)
        message = _("This invoice is {status}: there is nothing to pay.").format(status=status)
        raise PayRefused(message, 409)
    if method not in pay_methods(invoice, settings):
        raise PayRefused(_("This way of paying is not available."), 409)
    try:
        await context.billing.require_payment_allowed(account.id)
    except DomainError as error:  # PaymentBlocked: what the profile lacks
        raise PayRefused(domain_error_text(error), 409) from None
    token = None
    currency, amount = STARS, invoice.stars_amount or 0
    if method == "card":
        token = settings.payment_provider_token.get_secret_value()  # type: ignore[union-attr]
        currency, amount = invoice.currency, invoice.amount_minor
    title = invoice_title(invoice)[:32]
    try:
        return await context.bot.create_invoice_link(
            title=title,
            description=invoice_description(invoice)[:255],
            payload=invoice.payload,
            currency=currency,
            prices=[LabeledPrice(label=title, amount=amount)],
            provider_token=token,
        )
    except TelegramAPIError as exc:
        log.warning("createInvoiceLink for invoice %s refused: %s", invoice.id, exc)
        message = _("Telegram could not open this payment. Please try another way to pay.")
        raise PayRefused(message, 502) from None


async def app_pay(request: web.Request) -> web.Response:
    """The Mini App's pay button: {"invoice": id, "method": "card"|"stars"} → {"url": the
    invoice link}, which the script opens with Telegram.WebApp.openInvoice."""
    who = await customer(request)
    if isinstance(who, web.Response):
        return who
    body = await json_body(request)
    invoice_id = parse_id(str(body.get("invoice", ""))) if body is not None else None
    method = body.get("method") if body is not None else None
    if invoice_id is None or not isinstance(method, str):
        raise web.HTTPBadRequest()
    context = web_context(request)
    with context.i18n.use_locale(who.lang):
        if who.account is None:
            return web.json_response({"error": _("Invoice not found")}, status=404)
        try:
            invoice = await context.billing.get_invoice(who.account.id, invoice_id)
        except NotFound:  # not this customer's
            return web.json_response({"error": _("Invoice not found")}, status=404)
        try:
            url = await telegram_invoice_link(context, who.account, invoice, method)
        except PayRefused as refused:
            return web.json_response({"error": refused.message}, status=refused.status)
    return web.json_response({"url": url})


# ---- pay links ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PaySubject:
    account: Account
    invoice: Invoice
    lang: str
    by_session: bool  # opened by a web login's session (its forms then need the CSRF token)


async def pay_subject(request: web.Request) -> PaySubject | web.Response:
    """The invoice a pay link names, or the page saying why it cannot be opened."""
    context = web_context(request)
    try:
        claim = verify_pay_token(context.secret, request.match_info["token"], now=context.clock())
    except TokenExpired:
        return await message_page(request, "expired", language(request, None), 410)
    except WebAuthError as exc:
        log.info("Pay link refused: %s", exc.reason)
        return await message_page(request, "invalid", language(request, None), 400)
    try:
        account = await context.billing.get_account(claim.account_id)
        # The token names the invoice and its account; the billing checks they belong.
        invoice = await context.billing.get_invoice(claim.account_id, claim.invoice_id)
    except NotFound:
        return await message_page(request, "not_found", language(request, None), 404)
    lang = language(request, account)
    profile = await context.billing.get_profile(account.id)
    if profile.pay_without_auth:
        return PaySubject(account, invoice, lang, by_session=False)
    # "Payment without authorization" off: only this account's web login opens it.
    if await session_account_id(request) != account.id:
        login_url = f"{LOGIN_PATH}?{urlencode({'next': request.path})}"
        return await message_page(request, "login_required", lang, 403, login_url=login_url)
    ip = request_address(request)
    if not ip_allowed(ip or "", profile.ip_allowlist):
        with context.i18n.use_locale(lang):
            detail = address_refused_text(ip)
        return await message_page(request, "address_refused", lang, 403, detail=detail)
    return PaySubject(account, invoice, lang, by_session=True)


def show_pay_page(
    request: web.Request, subject: PaySubject, error: str | None = None, status: int = 200
) -> web.Response:
    context = web_context(request)
    with context.i18n.use_locale(subject.lang):
        values = {
            "lang": subject.lang,
            "page": pay_page(subject.invoice, context.settings),
            "action": f"{PAY_PATH}/{request.match_info['token']}",
            "error": error,
            "csrf": csrf_token(request) if subject.by_session else None,
        }
        response = render(request, "pay.html", values, status)
    keep_csrf(request, response)
    return response


async def pay_link_page(request: web.Request) -> web.Response:
    subject = await pay_subject(request)
    if isinstance(subject, web.Response):
        return subject
    return show_pay_page(request, subject)


async def pay_link_start(request: web.Request) -> web.Response:
    """The pay page's button: everything checked again, then the browser goes to Telegram."""
    subject = await pay_subject(request)
    if isinstance(subject, web.Response):
        return subject
    context = web_context(request)
    if subject.by_session and not csrf_ok(request, (await request.post()).get(CSRF_FIELD)):
        raise web.HTTPForbidden()  # cookie-authenticated: the form must carry its token
    with context.i18n.use_locale(subject.lang):
        try:
            link = await telegram_invoice_link(
                context, subject.account, subject.invoice, request.match_info["method"]
            )
        except PayRefused as refused:
            return show_pay_page(request, subject, refused.message, refused.status)
    raise web.HTTPSeeOther(link)


def add_routes(app: web.Application) -> None:
    app.router.add_get(APP_PATH, app_page)
    app.router.add_get(APP_PATH + "/api/cabinet", cabinet_view)
    app.router.add_post(APP_PATH + "/api/forms/{form}", save_form)
    app.router.add_post(APP_PATH + "/api/pay", app_pay)
    app.router.add_static(STATIC_PATH, HERE / "static")
    app.router.add_get(PAY_PATH + "/{token}", pay_link_page)
    app.router.add_post(PAY_PATH + "/{token}/{method}", pay_link_start)
