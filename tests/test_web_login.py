"""The web login (issue 17, item 4) over real HTTP, on SQLite and PostgreSQL: the billing login
and the password set in Settings, attempts limited per login and per address, the session
cookie, CSRF on every form, logout, the IP allow-list on the login and on every request of the
session, the last IP and time recorded; and a pay link with "payment without authorization"
off, opened after logging in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from bot.web.sessions import SESSION_SECONDS
from services.web_auth import sign_pay_token, sign_token
from tests.harness.telegram import FakeTelegram
from tests.harness.web import WEB_SECRET, WebSite, web_site
from tests.test_web_cabinet import text_of

PASSWORD = "correct-horse-7"
WRONG = "Wrong login or password."


@pytest.fixture
async def site(database_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[WebSite]:
    async with web_site(database_url, fake_telegram, trusted_proxies="127.0.0.1") as s:
        yield s


@dataclass
class Answer:
    status: int
    text: str
    headers: Any

    def cookie(self, name: str) -> str | None:
        for header in self.headers.getall("Set-Cookie", []):
            if header.startswith(name + "="):
                return header
        return None

    def cookie_value(self, name: str) -> str:
        header = self.cookie(name)
        assert header is not None, list(self.headers.getall("Set-Cookie", []))
        return header.split(";", 1)[0].split("=", 1)[1]


async def request(
    site: WebSite,
    method: str,
    path: str,
    *,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    forwarded: str | None = None,
) -> Answer:
    headers = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    async with site.client.request(
        method, path, data=form, headers=headers, allow_redirects=False
    ) as response:
        return Answer(response.status, await response.text(), response.headers)


async def with_password(site: WebSite, user_id: int, **values: Any) -> tuple[str, int]:
    _, account_id = await site.customer(user_id, **values)
    async with site.gateway.transaction() as billing:
        await billing.set_password(account_id, PASSWORD)
        login = (await billing.get_account(account_id)).login
    return login, account_id


@dataclass
class Browser:
    """A browser's cookies, kept by the test (the client's jar keeps none)."""

    site: WebSite
    cookies: dict[str, str]
    forwarded: str | None = None

    async def get(self, path: str) -> Answer:
        answer = await request(
            self.site, "GET", path, cookies=self.cookies, forwarded=self.forwarded
        )
        self.keep(answer)
        return answer

    async def post(self, path: str, form: dict[str, str], *, csrf: bool = True) -> Answer:
        if csrf:
            form = {"csrf": self.cookies.get("cabinet_csrf", ""), **form}
        answer = await request(
            self.site, "POST", path, cookies=self.cookies, form=form, forwarded=self.forwarded
        )
        self.keep(answer)
        return answer

    def keep(self, answer: Answer) -> None:
        for header in answer.headers.getall("Set-Cookie", []):
            pair = header.split(";", 1)[0]
            name, value = pair.split("=", 1)
            if "Max-Age=0" in header or value in ("", '""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    async def log_in(self, login: str, password: str, next_path: str | None = None) -> Answer:
        page = await self.get("/login" + (f"?next={quote(next_path)}" if next_path else ""))
        assert page.status == 200
        hidden = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert hidden is not None and hidden.group(1) == self.cookies["cabinet_csrf"]
        form = {"login": login, "password": password, "next": next_path or ""}
        return await self.post("/login", form)


def browser(site: WebSite, forwarded: str | None = None) -> Browser:
    return Browser(site, {}, forwarded)


async def profile(site: WebSite, account_id: int) -> Any:
    async with site.gateway.transaction() as billing:
        return await billing.get_profile(account_id)


async def test_right_password_logs_in_with_a_safe_session_cookie(site: WebSite) -> None:
    login, account_id = await with_password(site, 1101, show_last_ip=True)
    b = browser(site, forwarded="203.0.113.20")
    answer = await b.log_in(login.upper(), PASSWORD)
    assert (answer.status, answer.headers["Location"]) == (303, "/cabinet")
    session = answer.cookie("cabinet_session")
    assert session is not None
    attributes = {part.strip().lower() for part in session.split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax", "path=/", f"max-age={SESSION_SECONDS}"} <= (
        attributes
    )
    csrf = answer.cookie("cabinet_csrf")
    assert csrf is not None and "SameSite=Strict" in csrf and "HttpOnly" in csrf
    recorded = await profile(site, account_id)
    assert recorded.last_ip == "203.0.113.20"
    assert recorded.last_login_at is not None
    assert abs(recorded.last_login_at - datetime.now(UTC)) < timedelta(minutes=1)

    page = await b.get("/cabinet")
    assert page.status == 200
    text = text_of(page.text)
    assert text.startswith(f"Personal cabinet Login: {login} Balance: €0.00 Last login: ")
    assert "from 203.0.113.20 Orders" in text
    assert text.endswith("No tickets yet. Log out")
    assert "data-form" not in page.text  # the browser's page edits nothing
    assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("who", "password"),
    [("own", "wrong-password-1"), ("unknown", PASSWORD), ("no_password", PASSWORD)],
)
async def test_a_wrong_login_or_password_gets_the_same_answer(
    site: WebSite, who: str, password: str
) -> None:
    login, account_id = await with_password(site, 1102)
    _, bare_id = await site.customer(1103)
    logins = {"own": login, "unknown": "tg999999", "no_password": "tg1103"}
    b = browser(site)
    answer = await b.log_in(logins[who], password)
    assert answer.status == 401
    assert answer.cookie("cabinet_session") is None
    text = text_of(answer.text)
    assert text.startswith(f"Log in to the cabinet {WRONG} Login Password Log in")
    assert f'name="login" value="{logins[who]}"' in answer.text
    assert PASSWORD not in answer.text
    assert (await profile(site, account_id)).last_ip is None
    assert (await profile(site, bare_id)).last_ip is None
    assert (await b.get("/cabinet")).headers["Location"] == "/login?next=/cabinet"


async def test_attempts_are_limited_per_login_and_per_address(site: WebSite) -> None:
    login, _ = await with_password(site, 1104)
    b = browser(site, forwarded="203.0.113.30")
    for _ in range(5):
        assert (await b.log_in(login, "wrong-password-1")).status == 401
    answer = await b.log_in(login, PASSWORD)  # the right one, too late
    assert answer.status == 429
    assert 14 * 60 < int(answer.headers["Retry-After"]) <= 15 * 60
    assert "Too many attempts. Please try again in 15 min." in text_of(answer.text)
    assert answer.cookie("cabinet_session") is None
    # Another address is limited per login all the same...
    assert (await browser(site, "203.0.113.31").log_in(login, PASSWORD)).status == 429
    # ...and one address trying many logins is limited too (20 in the window).
    scanner = browser(site, forwarded="198.51.100.40")
    statuses = [(await scanner.log_in(f"tg{n}", "guess-123456")).status for n in range(21)]
    assert statuses == [401] * 20 + [429]


async def test_forms_without_their_csrf_token_are_refused(site: WebSite) -> None:
    login, account_id = await with_password(site, 1105)
    b = browser(site)
    await b.get("/login")
    form = {"login": login, "password": PASSWORD}
    assert (await b.post("/login", form, csrf=False)).status == 403
    assert (
        await b.post("/login", {**form, "csrf": "forged-forged-forged"}, csrf=False)
    ).status == (403)
    # A cross-site post carries no form cookie at all (SameSite=Strict).
    bare = await request(site, "POST", "/login", form={**form, "csrf": b.cookies["cabinet_csrf"]})
    assert bare.status == 403
    assert (await profile(site, account_id)).last_ip is None
    answer = await b.post("/login", form)
    assert answer.status == 303
    # Logging out needs the token as well: without it the session stays.
    assert (await b.post("/logout", {}, csrf=False)).status == 403
    assert (await b.get("/cabinet")).status == 200


async def test_logout_ends_the_session(site: WebSite) -> None:
    login, _ = await with_password(site, 1106)
    b = browser(site)
    assert (await b.log_in(login, PASSWORD)).status == 303
    session = b.cookies["cabinet_session"]
    answer = await b.post("/logout", {})
    assert (answer.status, answer.headers["Location"]) == (303, "/login")
    assert "cabinet_session" not in b.cookies
    assert (await b.get("/cabinet")).headers["Location"] == "/login?next=/cabinet"
    # A copy of the cookie kept elsewhere (another browser, a thief) has ended too.
    copied = await request(site, "GET", "/cabinet", cookies={"cabinet_session": session})
    assert (copied.status, copied.headers["Location"]) == (303, "/login?next=/cabinet")
    # Logging in again gives a session that works.
    assert (await b.log_in(login, PASSWORD)).status == 303
    assert (await b.get("/cabinet")).status == 200


async def test_a_new_password_ends_the_sessions_of_the_old_one(site: WebSite) -> None:
    login, account_id = await with_password(site, 1109)
    first, second = browser(site), browser(site)
    assert (await first.log_in(login, PASSWORD)).status == 303
    assert (await second.log_in(login, PASSWORD)).status == 303
    assert (await first.get("/cabinet")).status == 200
    async with site.gateway.transaction() as billing:
        await billing.set_password(account_id, PASSWORD + "-new")
    for each in (first, second):
        assert (await each.get("/cabinet")).headers["Location"] == "/login?next=/cabinet"
    assert (await first.log_in(login, PASSWORD + "-new")).status == 303
    assert (await first.get("/cabinet")).status == 200


async def test_a_forged_or_expired_session_is_no_session(site: WebSite) -> None:
    login, account_id = await with_password(site, 1107)
    _, other_id = await with_password(site, 1108)
    expires = int(site.now) + 3600
    secret = WEB_SECRET.encode()
    forged = [
        "garbage",
        sign_token(b"another key of at least thirty-two bytes", "session", other_id, other_id, 0),
        sign_pay_token(secret, other_id, other_id, expires),  # a pay link's token is no session
        sign_token(secret, "session", other_id, other_id, int(site.now)),  # just expired
    ]
    for token in forged:
        answer = await request(site, "GET", "/cabinet", cookies={"cabinet_session": token})
        assert answer.headers["Location"] == "/login?next=/cabinet", token
    b = browser(site)
    assert (await b.log_in(login, PASSWORD)).status == 303
    assert (await b.get("/cabinet")).status == 200
    site.set_clock(site.now + SESSION_SECONDS)
    assert (await b.get("/cabinet")).status == 303
    assert (await profile(site, account_id)).last_ip == "127.0.0.1"


async def test_the_allow_list_on_the_login_and_every_request(site: WebSite) -> None:
    login, account_id = await with_password(site, 1109)
    async with site.gateway.transaction() as billing:
        await billing.set_ip_allowlist(account_id, ["203.0.113.0-203.0.113.255", "2001:db8::5"])
    # Refused address, right password: no session, the page names the address.
    refused = await browser(site, forwarded="198.51.100.1").log_in(login, PASSWORD)
    assert refused.status == 403
    assert refused.cookie("cabinet_session") is None
    assert "Access from your address 198.51.100.1 is not allowed by your IP allow-list." in text_of(
        refused.text
    )
    assert (await profile(site, account_id)).last_ip is None
    # IPv6, and a range.
    assert (await browser(site, forwarded="2001:db8::5").log_in(login, PASSWORD)).status == 303
    b = browser(site, forwarded="203.0.113.77")
    assert (await b.log_in(login, PASSWORD)).status == 303
    assert (await b.get("/cabinet")).status == 200
    # The same session from another address: refused on every request.
    b.forwarded = "198.51.100.2"
    answer = await b.get("/cabinet")
    assert answer.status == 403
    assert "Access from your address 198.51.100.2" in text_of(answer.text)


async def test_a_spoofed_forwarded_for_without_a_trusted_proxy(
    database_url: str, fake_telegram: FakeTelegram
) -> None:
    async with web_site(database_url, fake_telegram) as site:  # no TRUSTED_PROXIES
        login, account_id = await with_password(site, 1110)
        async with site.gateway.transaction() as billing:
            await billing.set_ip_allowlist(account_id, ["203.0.113.5"])
        answer = await browser(site, forwarded="203.0.113.5").log_in(login, PASSWORD)
        assert answer.status == 403
        assert "Access from your address 127.0.0.1 " in text_of(answer.text)


async def test_the_login_goes_back_to_a_pay_link_only(site: WebSite) -> None:
    login, account_id = await with_password(site, 1111)
    _, other_id = await with_password(site, 1112)
    async with site.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
    path = (
        f"/pay/{sign_pay_token(WEB_SECRET.encode(), invoice.id, account_id, int(site.now) + 3600)}"
    )
    # "Payment without authorization" off: the page asks to log in and links the way back.
    outside = browser(site)
    page = await outside.get(path)
    assert page.status == 403
    assert f'href="/login?next={quote(path, safe="")}"' in page.text
    assert (await outside.post(path + "/card", {})).status == 403
    # Logged in as another customer: still not theirs to open.
    other = browser(site)
    async with site.gateway.transaction() as billing:
        other_login = (await billing.get_account(other_id)).login
    assert (await other.log_in(other_login, PASSWORD)).status == 303
    assert (await other.get(path)).status == 403

    b = browser(site)
    answer = await b.log_in(login, PASSWORD, next_path=path)
    assert (answer.status, answer.headers["Location"]) == (303, path)
    page = await b.get(path)
    assert page.status == 200
    assert text_of(page.text).startswith(f"Invoice No. {invoice.number} Amount: €20.00")
    token = b.cookies["cabinet_csrf"]
    assert f'name="csrf" value="{token}"' in page.text
    # The session is a cookie: the pay form needs its token.
    assert (await b.post(path + "/card", {}, csrf=False)).status == 403
    assert site.fake.calls_of("createInvoiceLink") == []
    answer = await b.post(path + "/card", {})
    assert (answer.status, answer.headers["Location"]) == (
        303,
        f"https://t.me/$invoice-inv-{invoice.id}",
    )
    # Anywhere else is not a way back.
    for target in ["https://evil.example/pay/x", "//evil.example", "/cabinet/../admin", "/app"]:
        answer = await browser(site).log_in(login, PASSWORD, next_path=target)
        assert answer.headers["Location"] == "/cabinet", target


async def test_the_browsers_cabinet_offers_the_pay_links(site: WebSite) -> None:
    login, account_id = await with_password(site, 1113, language="ru")
    async with site.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
    b = browser(site)
    assert (await b.log_in(login, PASSWORD)).status == 303
    page = await b.get("/cabinet")
    assert page.status == 200
    assert '<html lang="ru">' in page.text
    links = re.findall(r'<a class="button" href="([^"]+)">Оплатить</a>', page.text)
    assert len(links) == 1 and links[0].startswith("https://cabinet.example.com/pay/")
    path = links[0].removeprefix("https://cabinet.example.com")
    assert (await b.get(path)).status == 200
    assert f"Счёт № {invoice.number}" in text_of((await b.get(path)).text)
    assert "Выйти" in text_of(page.text)
