"""Fixtures for the bot in front of WHMCS: the loopback stand-in (tests/harness/whmcs.py), the
composed gateway over it and the bot's own database, and a production dispatcher on both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.factory import create_billing_gateway, create_bot, create_dispatcher, create_gateway
from services.billing import per_call
from services.contracts.common import Account
from services.embedded.billing import EmbeddedGateway
from services.whmcs.gateway import WhmcsGateway
from tests.conftest import make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram
from tests.harness.whmcs import IDENTIFIER, SECRET, Client, WhmcsStandIn

STAFF_ADMINS = "9001=admin,7001=anna"  # Telegram id -> WHMCS admin username
DEPARTMENTS = "tech=1,billing=2,abuse=3"


def whmcs_settings(database_url: str, whmcs: WhmcsStandIn, **overrides: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "billing": "whmcs",
        "whmcs_url": whmcs.url,
        "whmcs_identifier": IDENTIFIER,
        "whmcs_secret": SECRET,
        "whmcs_departments": DEPARTMENTS,
        "whmcs_admin_usernames": STAFF_ADMINS,
        "whmcs_timeout_seconds": 2.0,
        "whmcs_connect_timeout_seconds": 1.0,
        "seed_demo_catalogue": False,
    }
    return make_settings(database_url, **(values | overrides))


@pytest.fixture
async def whmcs() -> AsyncIterator[WhmcsStandIn]:
    async with WhmcsStandIn() as standin:
        yield standin


async def _whmcs_gateway(
    database_url: str, whmcs: WhmcsStandIn
) -> tuple[WhmcsGateway, EmbeddedGateway]:
    settings = whmcs_settings(database_url, whmcs)
    local = create_gateway(settings)
    gateway = create_billing_gateway(settings, local)
    assert isinstance(gateway, WhmcsGateway)
    return gateway, local


@pytest.fixture
async def whmcs_gateway(database_url: str, whmcs: WhmcsStandIn) -> AsyncIterator[WhmcsGateway]:
    """The bot in front of the stand-in, its own records on SQLite and on PostgreSQL."""
    gateway, _ = await _whmcs_gateway(database_url, whmcs)
    yield gateway
    await gateway.close()


async def linked_account(gateway: WhmcsGateway, telegram_id: int, client: Client) -> Account:
    """A Telegram user whose account is linked to the stand-in's `client`."""
    billing = per_call(gateway.local)
    account, _ = await billing.get_or_create_account(telegram_id, telegram_id, name="Customer")
    await billing.link_billing_client(account.id, client.id)
    return await per_call(gateway).get_account(account.id)


@pytest.fixture
async def whmcs_driver(
    sqlite_url: str, whmcs: WhmcsStandIn, fake_telegram: FakeTelegram
) -> AsyncIterator[BotDriver]:
    """The production dispatcher in front of the stand-in (the bot's records on SQLite)."""
    settings = whmcs_settings(sqlite_url, whmcs)
    gateway, _ = await _whmcs_gateway(sqlite_url, whmcs)
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    driver = BotDriver(create_dispatcher(settings, gateway), bot, fake_telegram, gateway)
    yield driver
    driver.close()
    await gateway.close()
