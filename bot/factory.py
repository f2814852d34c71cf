"""The composition root: builds the Bot, the Dispatcher and the billing gateway from Settings.
Production (`python -m bot`) and the tests use the same functions."""

from __future__ import annotations

from pathlib import Path

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.utils.i18n import I18n

from bot.config import Settings, parse_id_map
from bot.flow_control import FlowControl
from bot.fsm_storage import ExpiringMemoryStorage
from bot.inbox import DurableDispatcher, PaymentInboxMiddleware
from bot.inline_filters import (
    check_callback_prefixes_first,
    run_sync_filters_on_loop,
    skip_routers_by_callback_prefix,
)
from bot.json_session import JsonAiohttpSession
from bot.metrics import TelegramMetrics, UpdateMetrics
from bot.middlewares import (
    AccountI18nMiddleware,
    AccountMiddleware,
    BillingMiddleware,
    InFlightUpdates,
    TransactionGuard,
)
from bot.response_types import keep_response_types
from bot.scheduler import Job
from bot.throttle import UserThrottle
from handlers import section_routers
from services.billing import BillingGateway
from services.email import Mailer, create_mailer
from services.embedded.billing import EmbeddedGateway
from services.embedded.config import BillingConfig, parse_static_rates
from services.embedded.db import create_engine
from services.telephony import DevTelephony
from services.whmcs.base import WhmcsOptions
from services.whmcs.core import create_whmcs_gateway
from services.whmcs.gateway import WhmcsGateway
from services.whmcs.ticket_sync import ticket_sync_job
from services.whmcs.transport import WhmcsConfig

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


def create_i18n(default_language: str) -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=default_language, domain="messages")


def billing_config(settings: Settings) -> BillingConfig:
    return BillingConfig(
        base_currency=settings.default_currency,
        currencies=tuple(settings.currencies),
        static_rates=parse_static_rates(settings.static_rates),
        stars_per_base_unit=settings.stars_per_eur,
        ip_pool=settings.ip_pool,
        max_open_tickets=settings.max_open_tickets,
        max_tickets_per_hour=settings.max_tickets_per_hour,
        max_open_invoices=settings.max_open_invoices,
        account_cache_seconds=settings.account_cache_seconds,
    )


def create_gateway(settings: Settings) -> EmbeddedGateway:
    return EmbeddedGateway(create_engine(settings.database_url), billing_config(settings))


def whmcs_config(settings: Settings) -> WhmcsConfig:
    assert settings.whmcs_url and settings.whmcs_identifier and settings.whmcs_secret
    access_key = settings.whmcs_access_key
    return WhmcsConfig(
        url=settings.whmcs_url,
        identifier=settings.whmcs_identifier,
        secret=settings.whmcs_secret.get_secret_value(),
        access_key=access_key.get_secret_value() if access_key else None,
        connect_timeout=settings.whmcs_connect_timeout_seconds,
        total_timeout=settings.whmcs_timeout_seconds,
    )


def whmcs_options(settings: Settings) -> WhmcsOptions:
    return WhmcsOptions(
        payment_method=settings.whmcs_payment_method,
        departments=parse_id_map(
            settings.whmcs_departments, key=str, item=int, name="WHMCS_DEPARTMENTS"
        ),
        admin_usernames=parse_id_map(
            settings.whmcs_admin_usernames, key=int, item=str, name="WHMCS_ADMIN_USERNAMES"
        ),
        default_admin_username=settings.whmcs_default_admin,
        max_open_tickets=settings.max_open_tickets,
        max_tickets_per_hour=settings.max_tickets_per_hour,
        max_open_invoices=settings.max_open_invoices,
        link_token_secret=(
            settings.link_token_secret.get_secret_value() if settings.link_token_secret else None
        ),
    )


def create_billing_gateway(settings: Settings, local: EmbeddedGateway) -> BillingGateway:
    """The billing the cabinet fronts. `local` is the bot's own database: the whole billing
    when it is the embedded one, the BotStore (and the local half of accounts) with WHMCS."""
    if settings.billing == "embedded":
        return local
    return create_whmcs_gateway(local, whmcs_config(settings), whmcs_options(settings))


async def check_billing_setup(gateway: BillingGateway) -> None:
    """At start: an external billing's configuration problems are logged (never fatal)."""
    if isinstance(gateway, WhmcsGateway):
        await gateway.check_setup()


def billing_jobs(
    settings: Settings, gateway: BillingGateway, i18n: I18n
) -> list[tuple[str, float, Job]]:
    """The periodic jobs an external billing needs besides the bot's own (bot/scheduler.py):
    with WHMCS, replies written in its admin area or client area reach Telegram."""
    if not isinstance(gateway, WhmcsGateway):
        return []
    from keyboards.tickets import answer_kb

    return [
        ticket_sync_job(
            gateway,
            i18n,
            settings.default_language,
            answer_kb,
            settings.staff_chat_id,
            interval_seconds=settings.whmcs_sync_interval_seconds,
        )
    ]


def create_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    keep_response_types()
    if session is None:
        session = JsonAiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    bot.session.middleware(TransactionGuard())
    bot.session.middleware(FlowControl(max_wait=settings.telegram_max_retry_wait_seconds))
    bot.session.middleware(TelegramMetrics())  # innermost: every attempt, each 429 counted
    return bot


def create_storage(settings: Settings) -> BaseStorage:
    if settings.redis_url:
        from aiogram.fsm.storage.base import DefaultKeyBuilder
        from aiogram.fsm.storage.redis import RedisStorage

        # with_destiny: sections may keep state in their own FSM destiny (e.g. the orders sort).
        # A dialog left unfinished is forgotten FSM_TTL_SECONDS after its last step.
        return RedisStorage.from_url(
            settings.redis_url,
            key_builder=DefaultKeyBuilder(with_destiny=True),
            state_ttl=settings.fsm_ttl_seconds,
            data_ttl=settings.fsm_ttl_seconds,
        )
    return ExpiringMemoryStorage(settings.fsm_ttl_seconds)


def create_dispatcher(
    settings: Settings,
    gateway: BillingGateway,
    storage: BaseStorage | None = None,
    i18n: I18n | None = None,
) -> Dispatcher:
    i18n = i18n or create_i18n(settings.default_language)
    dp = DurableDispatcher(
        storage=storage or create_storage(settings), settings=settings, gateway=gateway, i18n=i18n
    )
    UpdateMetrics().setup(dp)  # outermost: counts, times and sets the log context
    inflight = InFlightUpdates()
    dp["inflight"] = inflight
    dp.update.outer_middleware(inflight)
    staff = frozenset({settings.staff_chat_id} if settings.staff_chat_id is not None else ())
    throttle = UserThrottle(
        i18n, settings.throttle_rate, settings.throttle_burst, exempt_chats=staff
    )
    dp.update.outer_middleware(throttle)
    dp.update.outer_middleware(BillingMiddleware(gateway))
    dp.update.outer_middleware(PaymentInboxMiddleware())
    dp.update.outer_middleware(AccountMiddleware())
    AccountI18nMiddleware(i18n, settings.default_language).setup(dp)
    dp["mailer"] = create_mailer_from(settings)
    dp["telephony"] = DevTelephony()
    dp.include_routers(*section_routers())
    skip_routers_by_callback_prefix(dp)  # before the filters below are wrapped
    check_callback_prefixes_first(dp)
    run_sync_filters_on_loop(dp)
    return dp


def create_mailer_from(settings: Settings) -> Mailer:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return create_mailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_from,
        username=settings.smtp_user,
        password=password,
        tls=settings.smtp_tls,
    )
