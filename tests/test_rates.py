"""Exchange rates: parsing recorded ECB and CBR documents, the refresh job against a local
aiohttp server (good, broken, empty and failing answers), the fallback to the last stored
rates and the static override — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.factory import create_gateway
from bot.scheduler import rates_config
from services.embedded.billing import EmbeddedGateway
from services.embedded.models import ExchangeRate
from services.rates import (
    RatesConfig,
    RatesError,
    SourceRates,
    combine,
    parse_cbr,
    parse_ecb,
    refresh_rates,
)
from tests.conftest import make_settings

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CBR_USD_PER_EUR = (Decimal("91.5643") / Decimal("79.4512")).quantize(Decimal("0.00000001"))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
async def rates_server() -> AsyncIterator[TestServer]:
    """Serves the recorded documents like the real sites do, plus the ways they fail."""

    def serve(name: str, content_type: str = "text/xml") -> web.Response:
        return web.Response(body=fixture(name), content_type=content_type)

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return serve("ecb_eurofxref_daily.xml")

    routes = {
        "/ecb": lambda _r: serve("ecb_eurofxref_daily.xml"),
        "/cbr": lambda _r: serve("cbr_xml_daily.xml", "application/xml"),
        "/ecb-truncated": lambda _r: serve("ecb_truncated.xml"),
        "/ecb-no-rates": lambda _r: serve("ecb_no_rates.xml"),
        "/cbr-no-rates": lambda _r: serve("cbr_no_rates.xml"),
        "/empty": lambda _r: web.Response(body=b"", content_type="text/xml"),
        "/maintenance": lambda _r: web.Response(
            status=503, body=fixture("maintenance.html"), content_type="text/html"
        ),
        "/html-200": lambda _r: serve("maintenance.html", "text/html"),
    }
    app = web.Application()
    for path, handler in routes.items():

        async def wrapped(request: web.Request, handler=handler) -> web.Response:  # type: ignore[no-untyped-def]
            return handler(request)

        app.router.add_get(path, wrapped)
    app.router.add_get("/slow", slow)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def live_gateway(database_url: str) -> AsyncIterator[EmbeddedGateway]:
    """A billing without static rates: only fetched ones count."""
    gw = create_gateway(make_settings(database_url, static_rates=""))
    yield gw
    await gw.close()


def config(server: TestServer, ecb: str = "/ecb", cbr: str = "/cbr", **kw: object) -> RatesConfig:
    return RatesConfig(
        base_currency="EUR",
        currencies=("EUR", "USD", "RUB"),
        ecb_url=str(server.make_url(ecb)),
        cbr_url=str(server.make_url(cbr)),
        **kw,  # type: ignore[arg-type]
    )


def test_parse_ecb_daily_document() -> None:
    ecb = parse_ecb(fixture("ecb_eurofxref_daily.xml"))
    assert (ecb.source, ecb.rate_date, ecb.direct, len(ecb.quotes)) == (
        "ecb",
        date(2026, 11, 24),
        True,
        31,
    )
    assert ecb.quotes["EUR"] == 1 and ecb.quotes["GBP"] == Decimal("0.87840")
    assert ecb.rate("EUR", "USD") == Decimal("1.1512")
    assert ecb.rate("EUR", "RUB") is None  # the ECB has not published RUB since 2022
    assert ecb.rate("USD", "EUR") == Decimal("0.86865879")


def test_parse_cbr_daily_document_in_windows_1251() -> None:
    cbr = parse_cbr(fixture("cbr_xml_daily.xml"))
    assert (cbr.source, cbr.rate_date, cbr.direct, len(cbr.quotes)) == (
        "cbr",
        date(2026, 11, 25),
        False,
        23,
    )
    assert cbr.quotes["EUR"] == Decimal("91.5643")
    assert cbr.quotes["JPY"] == Decimal("0.507510")  # Nominal 100
    assert cbr.rate("EUR", "RUB") == Decimal("91.5643")
    assert cbr.rate("EUR", "USD") == CBR_USD_PER_EUR == Decimal("1.15245962")


@pytest.mark.parametrize(
    ("parser", "body", "reason"),
    [
        (parse_ecb, b"", "empty response"),
        (parse_cbr, b"  \n", "empty response"),
        (parse_ecb, fixture("ecb_truncated.xml"), "malformed XML"),
        (parse_ecb, fixture("ecb_no_rates.xml"), "ECB: no dated Cube"),
        (parse_cbr, fixture("cbr_no_rates.xml"), "CBR: no rates"),
        (parse_cbr, fixture("ecb_eurofxref_daily.xml"), "CBR: unexpected root"),
        (parse_ecb, fixture("maintenance.html"), "malformed XML"),
        (
            parse_ecb,
            b"<Cube><Cube time='2026-11-24'><Cube currency='USD' rate='abc'/></Cube></Cube>",
            "not a number",
        ),
        (parse_cbr, b'<ValCurs Date="2026-11-25"/>', "CBR: bad date"),
        (
            parse_cbr,
            b'<ValCurs Date="25.11.2026"><Valute><CharCode>USD</CharCode><Nominal>1'
            b"</Nominal><Value>-1</Value></Valute></ValCurs>",
            "not a positive rate",
        ),
    ],
)
def test_broken_documents_are_refused(parser, body: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RatesError) as info:
        parser(body)
    assert str(info.value).startswith(reason)


def test_combine_prefers_the_ecb_and_rebases_on_any_base() -> None:
    ecb = parse_ecb(fixture("ecb_eurofxref_daily.xml"))
    cbr = parse_cbr(fixture("cbr_xml_daily.xml"))
    quotes = combine("EUR", ["EUR", "USD", "RUB", "XXX"], [ecb, cbr])
    assert [(q.currency, q.rate, q.source, q.rate_date) for q in quotes] == [
        ("USD", Decimal("1.1512"), "ecb", date(2026, 11, 24)),
        ("RUB", Decimal("91.5643"), "cbr", date(2026, 11, 25)),
    ]
    usd_based = combine("USD", ["USD", "EUR", "RUB"], [ecb, cbr])
    assert [(q.currency, q.rate, q.source) for q in usd_based] == [
        ("EUR", Decimal("0.86865879"), "ecb"),
        ("RUB", Decimal("79.4512"), "cbr"),
    ]
    assert combine("EUR", ["USD"], [SourceRates("x", date(2026, 1, 1), {}, True)]) == []


async def test_refresh_stores_rates_with_their_dates(
    rates_server: TestServer, live_gateway: EmbeddedGateway
) -> None:
    async with live_gateway.transaction() as billing:
        before = await billing.get_rates()
    assert (before.rates, before.available()) == ({"EUR": Decimal(1)}, ["EUR"])

    async with aiohttp.ClientSession() as http:
        report = await refresh_rates(live_gateway, http, config(rates_server), NOW)
    assert report.failed == {}
    assert [(q.currency, q.rate, q.source) for q in report.stored] == [
        ("USD", Decimal("1.1512"), "ecb"),
        ("RUB", Decimal("91.5643"), "cbr"),
    ]
    async with live_gateway.transaction() as billing:
        rates = await billing.get_rates()
    assert rates.rates == {"EUR": 1, "USD": Decimal("1.1512"), "RUB": Decimal("91.5643")}
    assert (rates.rate_date, rates.sources, rates.available()) == (
        date(2026, 11, 24),
        ("cbr", "ecb"),
        ["EUR", "USD", "RUB"],
    )


async def test_broken_ecb_falls_back_to_cbr_cross_rates(
    rates_server: TestServer, live_gateway: EmbeddedGateway
) -> None:
    report = await refresh_rates(
        live_gateway, None, config(rates_server, ecb="/ecb-truncated"), NOW
    )
    assert list(report.failed) == ["ecb"] and report.failed["ecb"].startswith("malformed XML")
    async with live_gateway.transaction() as billing:
        rates = await billing.get_rates()
    assert rates.rates == {"EUR": 1, "USD": CBR_USD_PER_EUR, "RUB": Decimal("91.5643")}
    assert (rates.rate_date, rates.sources) == (date(2026, 11, 25), ("cbr",))


async def test_sources_down_keep_the_last_stored_rates(
    rates_server: TestServer, live_gateway: EmbeddedGateway
) -> None:
    await refresh_rates(live_gateway, None, config(rates_server), NOW)
    failures = [
        ("/empty", "/maintenance"),
        ("/ecb-no-rates", "/cbr-no-rates"),
        ("/html-200", "/empty"),
    ]
    for ecb, cbr in failures:
        report = await refresh_rates(live_gateway, None, config(rates_server, ecb, cbr), NOW)
        assert (report.stored, sorted(report.failed)) == ([], ["cbr", "ecb"])
    assert report.failed == {
        "ecb": "malformed XML: mismatched tag: line 2, column 92",
        "cbr": "empty response",
    }
    # unreachable host and a timeout
    dead = RatesConfig(
        ecb_url="http://127.0.0.1:9/ecb",
        cbr_url=str(rates_server.make_url("/slow")),
        timeout_seconds=0.3,
    )
    report = await refresh_rates(live_gateway, None, dead, NOW)
    assert (report.stored, sorted(report.failed)) == ([], ["cbr", "ecb"])
    assert report.failed["cbr"] == "TimeoutError"
    async with live_gateway.transaction() as billing:
        rates = await billing.get_rates()
    assert rates.rates == {"EUR": 1, "USD": Decimal("1.1512"), "RUB": Decimal("91.5643")}
    assert rates.rate_date == date(2026, 11, 24)


async def test_static_rates_override_fetched_ones(
    rates_server: TestServer, database_url: str
) -> None:
    settings = make_settings(
        database_url,
        static_rates="USD=1.2",
        rates_ecb_url=str(rates_server.make_url("/ecb")),
        rates_cbr_url=str(rates_server.make_url("/cbr")),
    )
    gateway = create_gateway(settings)
    try:
        report = await refresh_rates(gateway, None, rates_config(settings), NOW)
        assert [q.currency for q in report.stored] == ["USD", "RUB"]
        async with gateway.transaction() as billing:
            rates = await billing.get_rates()
            stored_usd = await billing.session.get(
                ExchangeRate,
                "USD",
            )
        assert rates.rates == {"EUR": 1, "USD": Decimal("1.2"), "RUB": Decimal("91.5643")}
        assert (rates.rate_date, rates.sources) == (date(2026, 11, 25), ("cbr", "static"))
        assert stored_usd is not None and stored_usd.rate == Decimal("1.1512")  # still stored
    finally:
        await gateway.close()
