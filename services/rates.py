"""Exchange rates from public sources: the ECB euro reference rates (daily XML) and, for RUB,
the Central Bank of Russia daily XML. `refresh_rates` is the scheduled job: it fetches both,
derives units-per-base-currency rates for the configured currencies and stores them; a source
that is down, broken or empty is skipped and the last stored values stay in force. Static rates
from the configuration override stored ones at read time (see PaymentsMixin.get_rates).

ECB:  <Cube time='2026-11-24'><Cube currency='USD' rate='1.0412'/>...  (units per 1 EUR)
CBR:  <ValCurs Date="25.11.2026"><Valute><CharCode>EUR</CharCode><Nominal>1</Nominal>
      <Value>105,4543</Value>...  (RUB per `Nominal` units; windows-1251, decimal comma)
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import aiohttp

from services.billing import BillingGateway
from services.contracts.payments import RateQuote

log = logging.getLogger(__name__)

ECB_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
CBR_URL = "https://www.cbr.ru/scripts/XML_daily.asp"
QUANTUM = Decimal("0.00000001")
MAX_BODY = 1 << 20  # both documents are a few kilobytes
USER_AGENT = "cabinet-bot/0.1 (exchange rates; aiohttp)"  # the CBR refuses some default agents


class RatesError(Exception):
    """A source answered with something that is not a usable rates document."""


@dataclass(frozen=True)
class SourceRates:
    """One source's quotes against its anchor currency (which is in `quotes` as 1).
    direct=True: units of X per 1 anchor unit (ECB); False: anchor units per 1 X (CBR)."""

    source: str
    rate_date: date
    quotes: dict[str, Decimal]
    direct: bool

    def rate(self, base: str, currency: str) -> Decimal | None:
        """Units of `currency` per 1 `base`, or None when this source cannot tell."""
        if base not in self.quotes or currency not in self.quotes:
            return None
        if self.direct:
            return (self.quotes[currency] / self.quotes[base]).quantize(QUANTUM)
        return (self.quotes[base] / self.quotes[currency]).quantize(QUANTUM)


def _positive(text: str | None) -> Decimal:
    try:
        value = Decimal((text or "").strip().replace(",", "."))
    except InvalidOperation:
        raise RatesError(f"not a number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise RatesError(f"not a positive rate: {text!r}")
    return value


def _root(data: bytes) -> ET.Element:
    if not data.strip():
        raise RatesError("empty response")
    try:
        return ET.fromstring(data)  # expat never resolves external entities
    except ET.ParseError as exc:
        raise RatesError(f"malformed XML: {exc}") from None


def parse_ecb(data: bytes) -> SourceRates:
    root = _root(data)
    day = next((el for el in root.iter() if el.tag.endswith("Cube") and el.get("time")), None)
    if day is None:
        raise RatesError("ECB: no dated Cube")
    try:
        rate_date = date.fromisoformat(day.get("time", ""))
    except ValueError:
        raise RatesError(f"ECB: bad date {day.get('time')!r}") from None
    quotes = {"EUR": Decimal(1)}
    for cube in day:
        code = (cube.get("currency") or "").strip().upper()
        if len(code) == 3:
            quotes[code] = _positive(cube.get("rate"))
    if len(quotes) == 1:
        raise RatesError("ECB: no rates")
    return SourceRates("ecb", rate_date, quotes, direct=True)


def parse_cbr(data: bytes) -> SourceRates:
    root = _root(data)
    if root.tag != "ValCurs":
        raise RatesError(f"CBR: unexpected root {root.tag!r}")
    try:
        rate_date = datetime.strptime(root.get("Date", ""), "%d.%m.%Y").date()
    except ValueError:
        raise RatesError(f"CBR: bad date {root.get('Date')!r}") from None
    quotes = {"RUB": Decimal(1)}
    for valute in root.iter("Valute"):
        code = (valute.findtext("CharCode") or "").strip().upper()
        if len(code) != 3:
            continue
        nominal = _positive(valute.findtext("Nominal") or "1")
        quotes[code] = _positive(valute.findtext("Value")) / nominal
    if len(quotes) == 1:
        raise RatesError("CBR: no rates")
    return SourceRates("cbr", rate_date, quotes, direct=False)


def combine(base: str, currencies: Iterable[str], sources: list[SourceRates]) -> list[RateQuote]:
    """A quote per currency (other than the base) from the first source that knows both."""
    quotes = []
    for currency in dict.fromkeys(c.upper() for c in currencies):
        if currency == base:
            continue
        for source in sources:
            rate = source.rate(base, currency)
            if rate is not None and rate > 0:
                quotes.append(RateQuote(currency, rate, source.rate_date, source.source))
                break
    return quotes


@dataclass(frozen=True)
class RatesConfig:
    base_currency: str = "EUR"
    currencies: tuple[str, ...] = ("EUR", "USD", "RUB")
    ecb_url: str = ECB_URL
    cbr_url: str = CBR_URL
    timeout_seconds: float = 15.0


@dataclass
class RefreshReport:
    stored: list[RateQuote] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # source -> reason


async def fetch(http: aiohttp.ClientSession, url: str, timeout: float) -> bytes:
    async with http.get(
        url, timeout=aiohttp.ClientTimeout(total=timeout), headers={"User-Agent": USER_AGENT}
    ) as response:
        if response.status != 200:
            raise RatesError(f"HTTP {response.status}")
        data = await response.content.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise RatesError("response too large")
        return data


async def refresh_rates(
    gateway: BillingGateway,
    http: aiohttp.ClientSession | None,
    config: RatesConfig,
    now: datetime | None = None,
) -> RefreshReport:
    """The scheduled job. `http` is an aiohttp session (a temporary one when None); `now` is
    for the log only — rows record the source's own date."""
    own_session = http is None
    session = http or aiohttp.ClientSession()
    report = RefreshReport()
    parsed: list[SourceRates] = []
    parsers: list[tuple[str, str, Callable[[bytes], SourceRates]]] = [
        ("ecb", config.ecb_url, parse_ecb),
        ("cbr", config.cbr_url, parse_cbr),
    ]
    try:
        for name, url, parser in parsers:
            if not url:
                continue
            try:
                parsed.append(parser(await fetch(session, url, config.timeout_seconds)))
            except (aiohttp.ClientError, TimeoutError, RatesError) as exc:
                report.failed[name] = str(exc) or type(exc).__name__
                log.warning("Rates source %s failed: %s", name, report.failed[name])
    finally:
        if own_session:
            await session.close()
    report.stored = combine(config.base_currency, config.currencies, parsed)
    if report.stored:
        async with gateway.transaction() as billing:
            await billing.store_rates(report.stored)
    log.info(
        "Rates refreshed at %s: %s; failed: %s",
        now.isoformat() if now else "-",
        ", ".join(f"{q.currency}={q.rate} ({q.source} {q.rate_date})" for q in report.stored)
        or "nothing",
        ", ".join(report.failed) or "none",
    )
    return report
