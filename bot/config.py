"""Application settings, read from the environment and an optional `.env` file."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.languages import SUPPORTED_LANGUAGES

TOKEN_PATTERN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
QUIET_HOURS_PATTERN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
# What Telegram accepts as a webhook's secret_token: 1-256 characters A-Z, a-z, 0-9, _ and -.
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/bot.sqlite3"
K = TypeVar("K")
V = TypeVar("V")


class DatabaseSettings(BaseSettings):
    """What `python -m bot migrate` needs: the database alone."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    staff_chat_id: int | None = None
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Staff besides the staff group's administrators (who are staff anyway), e.g. agents who
    # must not be admins of the group.
    staff_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    default_language: str = "en"
    payment_provider_token: SecretStr | None = None

    webhook_url: str | None = None
    webhook_path: str = "/telegram/webhook"
    webhook_secret: SecretStr | None = None
    web_host: str = "0.0.0.0"
    web_port: int = 8080

    # Billing
    default_currency: str = "EUR"
    currencies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["EUR", "USD", "RUB"]
    )
    static_rates: str = ""  # e.g. "USD=1.08,RUB=98.5" (units per 1 EUR); overrides fetched rates
    stars_per_eur: Decimal = Decimal("50")
    ip_pool: str = "203.0.113.10-203.0.113.250"
    seed_demo_catalogue: bool = True

    # Which billing the cabinet fronts: the embedded one, or a hoster's WHMCS ("Connecting
    # WHMCS" in README). With WHMCS the bot's own records stay in DATABASE_URL.
    billing: Literal["embedded", "whmcs"] = "embedded"
    whmcs_url: str | None = None  # https://billing.example.com/includes/api.php
    whmcs_identifier: str | None = None
    whmcs_secret: SecretStr | None = None
    whmcs_access_key: SecretStr | None = None  # only where the API is not IP-restricted
    whmcs_payment_method: str = "telegram"  # payment gateway system name for Telegram payments
    # Our ticket departments -> WHMCS department ids, e.g. "tech=1,billing=2,abuse=3".
    whmcs_departments: str = ""
    # Staff Telegram ids -> WHMCS admin usernames, e.g. "1001=anna,1002=oleg".
    whmcs_admin_usernames: str = ""
    whmcs_default_admin: str | None = None  # for staff not in WHMCS_ADMIN_USERNAMES
    whmcs_timeout_seconds: float = Field(default=20.0, gt=0, le=120)
    whmcs_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # How often replies written in WHMCS itself are fetched for Telegram.
    whmcs_sync_interval_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Signs the one-time deep links `/start <token>` that link a Telegram user to a WHMCS
    # client (services/whmcs/linking.py; issued by `python -m bot link-token` or a WHMCS hook).
    # Unset: deep links are off, linking by an e-mailed code still works.
    link_token_secret: SecretStr | None = None
    # The bot's @username, for the t.me link `python -m bot link-token` prints (offline, it
    # cannot ask getMe).
    bot_username: str | None = None

    # Payments and rates. Top-up limits and presets are in the base currency.
    rates_ecb_url: str = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
    rates_cbr_url: str = "https://www.cbr.ru/scripts/XML_daily.asp"
    rates_timeout_seconds: float = 15.0
    topup_min: Decimal = Field(default=Decimal("1"), gt=0)
    topup_max: Decimal = Field(default=Decimal("10000"), gt=0)
    topup_presets: Annotated[list[Decimal], NoDecode] = Field(
        default_factory=lambda: [Decimal(10), Decimal(25), Decimal(50), Decimal(100)]
    )
    stars_max_per_invoice: int = Field(default=10000, ge=1)
    # Unpaid top-up invoices an account may have open at once (0: no limit); a repeated top-up
    # of the same amount reuses the open invoice instead of issuing another one.
    max_open_invoices: int = Field(default=5, ge=0)

    # Jobs
    scheduler_enabled: bool = True
    alert_interval_seconds: int = 300
    rates_interval_seconds: int = 3600 * 6
    sender_interval_seconds: float = 1.0

    # Tickets
    ticket_reopen_days: int = Field(default=7, ge=0)  # a closed ticket reopens by a reply
    ticket_reminder_minutes: int = Field(default=30, ge=1)  # unanswered → one staff reminder
    # Per-customer limits (0: no limit): open tickets at a time, new tickets per hour
    max_open_tickets: int = Field(default=3, ge=0)
    max_tickets_per_hour: int = Field(default=5, ge=0)
    # /verify: at most this many code-word checks per customer within the window
    verify_max_attempts: int = Field(default=3, ge=1)
    verify_window_minutes: int = Field(default=60, ge=1)

    # Alerts and delivery
    expiry_alert_stages: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [7, 3, 1])
    overdue_grace_days: int = 3  # expired orders are suspended this many days after paid-until
    auto_renew_lead_hours: int = 24  # auto-renewal runs this long before paid-until
    quiet_hours: str = "22:00-09:00"  # local time of the account; empty disables quiet hours
    default_timezone: str = "UTC"  # for accounts without their own time zone
    sender_global_per_second: float = 30.0
    sender_chat_interval_seconds: float = 1.0
    sender_group_per_minute: int = 20
    broadcast_progress_interval_seconds: float = 3.0
    reminder_interval_seconds: int = 300  # how often the unanswered-ticket reminder job runs

    # E-mail (settings: e-mail confirmation codes); empty SMTP_HOST = e-mail not configured
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "billing@localhost"
    smtp_tls: str = "starttls"  # none, starttls, ssl

    # Telegram flow control (bot/flow_control.py, bot/throttle.py)
    telegram_max_retry_wait_seconds: float = Field(default=5, ge=0)  # longer 429s: re-raised
    throttle_rate: float = Field(default=3, gt=0)  # updates per second and user
    throttle_burst: int = Field(default=10, ge=1)  # updates a user may send at once

    # Dialogs (FSM state and data) are forgotten this long after their last change.
    fsm_ttl_seconds: int = Field(default=3600, ge=60)
    # The caller's account, looked up by every update, is kept in memory this long at most;
    # any commit that may change it drops it at once, in every instance. 0: always read.
    account_cache_seconds: float = Field(default=30, ge=0, le=3600)

    log_level: str = "INFO"
    log_sql: bool = False  # log SQL statements (never their values) at INFO
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line

    # /healthz, /readyz and /metrics are served on WEB_HOST:WEB_PORT in both modes; with
    # METRICS_PORT set, on METRICS_HOST:METRICS_PORT instead (e.g. kept off the webhook port).
    metrics_host: str | None = None  # default: WEB_HOST
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # The web side (Mini App cabinet, pay links), served on the same server as /healthz.
    # Unset PUBLIC_URL: no web routes, no menu button, no pay links.
    public_url: str | None = None  # e.g. https://cabinet.example.com (what users' browsers see)
    web_initdata_max_age: int = Field(default=3600, ge=60, le=86400)  # seconds
    web_secret: SecretStr | None = None  # signs pay links; default: derived from the bot token
    web_pay_link_days: int = Field(default=30, ge=1, le=365)  # how long a pay link works
    # Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For names the client: the
    # web side's IP allow-list and last IP see the address they report, never a header a
    # client wrote itself. Empty: the TCP peer is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("bot_token")
    @classmethod
    def _token_format(cls, value: SecretStr) -> SecretStr:
        if not TOKEN_PATTERN.match(value.get_secret_value().strip()):
            raise ValueError("does not look like a Telegram bot token (expected 123456:ABC...)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("admin_ids", "staff_ids", mode="before")
    @classmethod
    def _user_ids(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_PATTERN.match(value.get_secret_value()):
            raise ValueError(
                "must be 1-256 characters, only A-Z, a-z, 0-9, _ and - (what Telegram accepts)"
            )
        return value

    @field_validator("expiry_alert_stages", mode="before")
    @classmethod
    def _stages(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("expiry_alert_stages")
    @classmethod
    def _stages_positive(cls, value: list[int]) -> list[int]:
        if any(day <= 0 for day in value):
            raise ValueError("stages are whole days before paid-until, each above 0")
        return sorted(set(value), reverse=True)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        if value.strip() and not QUIET_HOURS_PATTERN.match(value.strip()):
            raise ValueError("expected HH:MM-HH:MM, e.g. 22:00-09:00")
        return value.strip()

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("smtp_tls")
    @classmethod
    def _smtp_tls(cls, value: str) -> str:
        if value.strip().lower() not in ("none", "starttls", "ssl"):
            raise ValueError("must be one of none, starttls, ssl")
        return value.strip().lower()

    @field_validator("smtp_host", "smtp_user", "smtp_password", mode="before")
    @classmethod
    def _smtp_empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("topup_presets", mode="before")
    @classmethod
    def _presets(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("currencies", mode="before")
    @classmethod
    def _currencies(cls, value: object) -> object:
        items = _split_csv(value)
        return [str(item).upper() for item in items] if isinstance(items, list) else items

    @field_validator("default_language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError(f"DEFAULT_LANGUAGE must be one of {', '.join(SUPPORTED_LANGUAGES)}")
        return value

    @field_validator(
        "redis_url",
        "webhook_url",
        "staff_chat_id",
        "payment_provider_token",
        "webhook_secret",
        "whmcs_url",
        "whmcs_identifier",
        "whmcs_secret",
        "whmcs_access_key",
        "whmcs_default_admin",
        "link_token_secret",
        "bot_username",
        "metrics_host",
        "metrics_port",
        "public_url",
        "web_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value.strip()):
            raise ValueError("must be the http(s) address the web side is reached at")
        return value.strip().rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies_list(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: list[str]) -> list[str]:
        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return networks

    @field_validator("web_secret")
    @classmethod
    def _web_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("whmcs_departments")
    @classmethod
    def _departments(cls, value: str) -> str:
        parse_id_map(value, key=str, item=int, name="WHMCS_DEPARTMENTS")
        return value

    @field_validator("whmcs_admin_usernames")
    @classmethod
    def _admins(cls, value: str) -> str:
        parse_id_map(value, key=int, item=str, name="WHMCS_ADMIN_USERNAMES")
        return value

    @model_validator(mode="after")
    def _whmcs_complete(self) -> Settings:
        if self.billing != "whmcs":
            return self
        missing = [
            name.upper()
            for name in ("whmcs_url", "whmcs_identifier", "whmcs_secret")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"BILLING=whmcs needs {', '.join(missing)}")
        if not (self.whmcs_url or "").startswith(("https://", "http://")):
            raise ValueError("WHMCS_URL must be the http(s) address of includes/api.php")
        return self

    @property
    def webhook_mode(self) -> bool:
        return bool(self.webhook_url)

    @property
    def web_enabled(self) -> bool:
        return self.public_url is not None

    @property
    def ops_address(self) -> tuple[str, int]:
        """Where /healthz, /readyz and /metrics are served."""
        if self.metrics_port is None:
            return self.web_host, self.web_port
        return self.metrics_host or self.web_host, self.metrics_port


def parse_id_map(
    text: str, *, key: Callable[[str], K], item: Callable[[str], V], name: str
) -> dict[K, V]:
    """ "a=1,b=2" into {a: 1, b: 2}; a malformed pair is a ValueError naming the setting."""
    result: dict[K, V] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        left, sep, right = pair.partition("=")
        try:
            if not sep or not left.strip() or not right.strip():
                raise ValueError
            result[key(left.strip())] = item(right.strip())
        except ValueError:
            raise ValueError(f"{name}: {pair!r} is not key=value") from None
    return result


class ConfigError(Exception):
    """Settings could not be loaded; the message is one human-readable line."""


def load_settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]).upper() or "settings"
            message = "is required" if error["type"] == "missing" else error["msg"]
            message = message.removeprefix("Value error, ")
            problems.append(f"{field} {message}")
        raise ConfigError("Configuration error: " + "; ".join(problems)) from None
