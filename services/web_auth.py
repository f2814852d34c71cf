"""The web side's security, free of any web framework: Telegram Mini App `initData` checked
with a maximum age (aiogram checks the signature only), signed single-purpose tokens for pay
links (HMAC-SHA256 over purpose, invoice, account and expiry; base64url), and the client's
address behind trusted reverse proxies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from aiogram.utils.web_app import WebAppInitData, safe_parse_webapp_init_data

from services.validation import ascii_digits, parse_id

MAX_INIT_DATA_LENGTH = 8192  # Telegram's initData is well under 1 KB; more is not Telegram's
MAX_TOKEN_LENGTH = 256
PAY = "pay"
# Future dates are tolerated this much: the clocks of Telegram and this host may differ a bit.
CLOCK_SKEW_SECONDS = 60


class WebAuthError(Exception):
    """The request does not prove who it comes from; `reason` is for the log, not the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenExpired(WebAuthError):
    """A genuine token whose time is over (the page says so rather than "invalid")."""


def check_init_data(
    init_data: str, bot_token: str, *, max_age_seconds: int, now: float
) -> WebAppInitData:
    """The Mini App's `initData`, signed by Telegram with this bot's token, not older than
    `max_age_seconds`, with a user: else WebAuthError."""
    if not init_data or len(init_data) > MAX_INIT_DATA_LENGTH:
        raise WebAuthError("missing or oversized initData")
    try:
        data = safe_parse_webapp_init_data(bot_token, init_data)
    except (ValueError, TypeError):  # bad signature, malformed query, non-ASCII hash
        raise WebAuthError("initData signature does not verify") from None
    age = now - data.auth_date.timestamp()
    if age > max_age_seconds or age < -CLOCK_SKEW_SECONDS:
        raise WebAuthError("initData auth_date is outside the allowed age")
    if data.user is None:
        raise WebAuthError("initData has no user")
    return data


def derive_secret(bot_token: str) -> bytes:
    """The signing key when WEB_SECRET is not set: bound to the bot token, never the token."""
    return hmac.new(b"cabinet-web-signing-key", bot_token.encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class PayClaim:
    invoice_id: int
    account_id: int
    expires_at: int  # Unix time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest()


def sign_token(
    secret: bytes, purpose: str, invoice_id: int, account_id: int, expires_at: int
) -> str:
    body = f"{purpose}:{invoice_id}:{account_id}:{expires_at}".encode("ascii")
    return f"{_b64(body)}.{_b64(_mac(secret, body))}"


def sign_pay_token(secret: bytes, invoice_id: int, account_id: int, expires_at: int) -> str:
    return sign_token(secret, PAY, invoice_id, account_id, expires_at)


def verify_token(secret: bytes, token: str, purpose: str, *, now: float) -> PayClaim:
    """The claim of a token this key signed for `purpose`: WebAuthError when tampered,
    malformed or for another purpose, TokenExpired when its time is over."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise WebAuthError("missing or oversized token")
    encoded_body, dot, encoded_mac = token.partition(".")
    try:
        body, mac = _unb64(encoded_body), _unb64(encoded_mac)
    except (binascii.Error, ValueError):
        raise WebAuthError("token is not base64url") from None
    if not dot or not hmac.compare_digest(mac, _mac(secret, body)):
        raise WebAuthError("token signature does not verify")
    fields = body.decode("ascii", "replace").split(":")
    if len(fields) != 4 or fields[0] != purpose:
        raise WebAuthError("token is for another purpose")
    invoice_id, account_id = parse_id(fields[1]), parse_id(fields[2])
    if invoice_id is None or account_id is None or not ascii_digits(fields[3]):
        raise WebAuthError("token fields out of range")
    claim = PayClaim(invoice_id, account_id, int(fields[3]))
    if claim.expires_at <= now:
        raise TokenExpired("token expired")
    return claim


def verify_pay_token(secret: bytes, token: str, *, now: float) -> PayClaim:
    return verify_token(secret, token, PAY, now=now)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str | None) -> IPAddress | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's ::ffff:a.b.c.d is that IPv4 client
    return address


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]
) -> str | None:
    """The client's IP address: the TCP peer, unless the peer is a trusted proxy; then the
    X-Forwarded-For hops are read from the right (each appended by the proxy that saw it),
    skipping trusted proxies, and the first untrusted one is the client. A hop that is no IP
    address stops the walk at the last address a trusted proxy vouched for. None when the
    peer is not an IP address (a Unix socket)."""
    networks = [ipaddress.ip_network(item, strict=False) for item in trusted_proxies]

    def trusted(address: IPAddress) -> bool:
        return any(address in network for network in networks)

    current = _ip(peer)
    if current is None or not trusted(current) or not forwarded_for:
        return str(current) if current is not None else None
    for hop in reversed(forwarded_for.split(",")):
        address = _ip(hop)
        if address is None:
            break
        current = address
        if not trusted(address):
            break
    return str(current)
