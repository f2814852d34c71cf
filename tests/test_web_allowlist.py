"""The account's IP allow-list on the Mini App (issue 17, item 4, the part the Mini App needs),
over real HTTP on SQLite and PostgreSQL: single addresses, ranges, IPv6, X-Forwarded-For
believed only from TRUSTED_PROXIES; and the last IP recorded by opening the Mini App."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from babel.dates import format_datetime

from keyboards.settings import SettingsAction, SettingsCb
from services.web_auth import client_address
from tests.harness.telegram import FakeTelegram
from tests.harness.web import WebSite, web_site
from tests.test_web_cabinet import text_of

REFUSED = (
    "Access from your address {ip} is not allowed by your IP allow-list. Change the list in "
    "the bot: Settings → Security."
)


@pytest.fixture
async def site(database_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[WebSite]:
    async with web_site(database_url, fake_telegram) as s:
        yield s


@pytest.fixture
async def proxied(database_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[WebSite]:
    """Behind a reverse proxy on the same host (the test client connects from 127.0.0.1)."""
    async with web_site(database_url, fake_telegram, trusted_proxies="127.0.0.1,10.0.0.0/8") as s:
        yield s


async def with_allowlist(site: WebSite, user_id: int, entries: list[str]) -> int:
    _, account_id = await site.customer(user_id)
    async with site.gateway.transaction() as billing:
        await billing.set_ip_allowlist(account_id, entries)
    return account_id


async def cabinet(site: WebSite, user_id: int, forwarded: str | None = None) -> tuple[int, str]:
    headers = {"X-Telegram-Init-Data": site.init(user_id)}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    async with site.client.get("/app/api/cabinet", headers=headers) as response:
        return response.status, await response.text()


def refused(ip: str) -> tuple[int, str]:
    return 403, json.dumps({"error": "address_refused", "message": REFUSED.format(ip=ip)})


async def last_ip(site: WebSite, account_id: int) -> str | None:
    async with site.gateway.transaction() as billing:
        return (await billing.get_profile(account_id)).last_ip


async def test_a_single_address_and_a_range(site: WebSite) -> None:
    await with_allowlist(site, 1001, ["127.0.0.1"])
    assert (await cabinet(site, 1001))[0] == 200
    await with_allowlist(site, 1002, ["127.0.0.0-127.0.0.255"])
    assert (await cabinet(site, 1002))[0] == 200
    account_id = await with_allowlist(site, 1003, ["203.0.113.5", "10.0.0.1-10.0.0.9"])
    assert await cabinet(site, 1003) == refused("127.0.0.1")
    assert await last_ip(site, account_id) is None  # a refused request is no login
    # Every request of the Mini App, not only the page: the forms and the pay button too.
    headers = {"X-Telegram-Init-Data": site.init(1003)}
    async with site.client.post("/app/api/forms/address", json={}, headers=headers) as response:
        assert response.status == 403
    async with site.client.post(
        "/app/api/pay", json={"invoice": 1, "method": "card"}, headers=headers
    ) as response:
        assert response.status == 403
    # An empty list: no restriction.
    async with site.gateway.transaction() as billing:
        await billing.set_ip_allowlist(account_id, [])
    assert (await cabinet(site, 1003))[0] == 200


async def test_a_spoofed_forwarded_for_counts_for_nothing_without_a_trusted_proxy(
    site: WebSite,
) -> None:
    account_id = await with_allowlist(site, 1004, ["203.0.113.5"])
    assert await cabinet(site, 1004, forwarded="203.0.113.5") == refused("127.0.0.1")
    assert await last_ip(site, account_id) is None


async def test_behind_a_trusted_proxy_the_forwarded_client_counts(proxied: WebSite) -> None:
    site = proxied
    account_id = await with_allowlist(site, 1005, ["203.0.113.5", "2001:db8::10-2001:db8::ff"])
    assert (await cabinet(site, 1005, forwarded="203.0.113.5"))[0] == 200
    assert await last_ip(site, account_id) == "203.0.113.5"
    # The hops from the right: 10.0.0.2 is a proxy of ours, 203.0.113.5 the client; what the
    # client wrote to the left of it is not believed.
    assert (await cabinet(site, 1005, forwarded="198.51.100.1, 203.0.113.5, 10.0.0.2"))[0] == 200
    assert await cabinet(site, 1005, forwarded="203.0.113.5, 198.51.100.1") == refused(
        "198.51.100.1"
    )
    # IPv6, compressed as the list keeps it.
    assert (await cabinet(site, 1005, forwarded="2001:DB8:0::20"))[0] == 200
    assert await last_ip(site, account_id) == "2001:db8::20"
    assert await cabinet(site, 1005, forwarded="2001:db8::1") == refused("2001:db8::1")
    # No header: the proxy itself is the client.
    assert await cabinet(site, 1005) == refused("127.0.0.1")


async def test_opening_the_mini_app_records_the_last_ip_and_shows_the_previous(
    proxied: WebSite,
) -> None:
    site = proxied
    _, account_id = await site.customer(1006, show_last_ip=True)
    status, html = await cabinet(site, 1006, forwarded="203.0.113.7")
    assert status == 200
    assert "Balance: €0.00 Last login: unknown" in text_of(html)
    assert await last_ip(site, account_id) == "203.0.113.7"
    async with site.gateway.transaction() as billing:
        first = (await billing.get_profile(account_id)).last_login_at
    assert first is not None
    status, html = await cabinet(site, 1006, forwarded="203.0.113.8")
    when = " ".join(format_datetime(first, format="short", locale="en").split())
    assert f"Balance: €0.00 Last login: {when} from 203.0.113.7 " in text_of(html)
    assert await last_ip(site, account_id) == "203.0.113.8"
    # The bot's Settings → Security shows it.
    user = site.driver.user(1006)
    (menu,) = [c for c in await site.driver.send(user, "/settings") if c.method == "sendMessage"]
    data = SettingsCb(action=SettingsAction.OPEN, value="security").pack()
    (screen,) = [
        c for c in await site.driver.press(user, menu, data) if c.method == "editMessageText"
    ]
    assert screen.text == (
        "🔐 <b>Security</b>\nCode word: <b>not set</b>\nIP allow-list: <b>no restriction</b>\n"
        "Show last IP: <b>on</b>\nPassword: <b>not set</b>\nLast IP: <b>203.0.113.8</b>"
    )
    async with site.gateway.transaction() as billing:
        await billing.set_flag(account_id, "show_last_ip", False)
    status, html = await cabinet(site, 1006, forwarded="203.0.113.9")
    assert "Last login" not in text_of(html)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.1", None, [], "198.51.100.1"),
        ("198.51.100.1", "203.0.113.5", [], "198.51.100.1"),
        ("::ffff:198.51.100.1", None, [], "198.51.100.1"),  # a dual-stack socket's IPv4 peer
        ("10.0.0.1", "203.0.113.5", ["10.0.0.0/8"], "203.0.113.5"),
        ("10.0.0.1", "203.0.113.5, 10.0.0.7", ["10.0.0.0/8"], "203.0.113.5"),
        ("10.0.0.1", "10.0.0.9", ["10.0.0.0/8"], "10.0.0.9"),  # only proxies: the farthest
        ("10.0.0.1", "not-an-ip, 10.0.0.7", ["10.0.0.0/8"], "10.0.0.7"),
        ("10.0.0.1", " 2001:db8::1 ", ["10.0.0.0/8"], "2001:db8::1"),
        ("10.0.0.1", "", ["10.0.0.0/8"], "10.0.0.1"),
        (None, "203.0.113.5", ["10.0.0.0/8"], None),
        ("unix-socket", None, [], None),
    ],
)
def test_client_address(
    peer: str | None, forwarded: str | None, trusted: list[str], expected: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == expected
