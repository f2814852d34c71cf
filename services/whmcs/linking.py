"""Linking a Telegram account to a WHMCS client: a one-time code by e-mail, or a signed deep link.

By code: the user types the e-mail address of their WHMCS account; the bot finds the client
(GetClientsDetails with `email`), keeps a hash of a six-digit code in the bot store
(adapter_state "link_code", one record per account, attempts counted) and e-mails the code
with SendEmail (a custom message, `customtype=general`, the related id = the client id). An
address that is no client's gets the same answer and a record whose code nobody knows, so the
bot never tells whether an address is a client. No password is ever typed into the chat.

By deep link: `https://t.me/<bot>?start=<token>`. The token is self-contained, so the hoster's
site or a WHMCS hook issues it without calling the bot: version 1 (1 byte), client id (uint32,
big-endian), expiry (Unix seconds, uint32, big-endian), 4 random bytes, then the first 12
bytes of HMAC-SHA256(LINK_TOKEN_SECRET, those 13 bytes); base64url without padding: 34
characters of [A-Za-z0-9_-] (Telegram allows 64). A used token is remembered (adapter_state
"link_token_used") until it expires, so it links once.

Issuing one in a WHMCS hook (PHP), e.g. for a "Connect Telegram" link in the client area:

    function telegram_link_token(int $clientId, string $secret, int $validFor = 86400): string {
        $payload = pack('CNN', 1, $clientId, time() + $validFor) . random_bytes(4);
        $mac = substr(hash_hmac('sha256', $payload, $secret, true), 0, 12);
        return rtrim(strtr(base64_encode($payload . $mac), '+/', '-_'), '=');
    }
    add_hook('ClientAreaPage', 1, function ($vars) {
        $token = telegram_link_token((int) $vars['clientsdetails']['userid'], 'LINK_TOKEN_SECRET');
        return ['telegramLinkUrl' => 'https://t.me/YOUR_BOT?start=' . $token];
    });

From the shell: `python -m bot link-token <client_id>` (bot/__main__.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contracts.accounts import (
    LINK_CODE_MAX_ATTEMPTS,
    LINK_RESEND_COOLDOWN_SECONDS,
    LinkCodeLetter,
)
from services.contracts.profile import CodeCheck
from services.errors import RateLimited, ValidationFailed
from services.security import hash_code, verify_secret_sync
from services.validation import ID_MAX, validate_email
from services.whmcs.base import WhmcsBase
from services.whmcs.errors import WhmcsAuthError, WhmcsError, WhmcsFailure
from services.whmcs.models import ClientDetails

log = logging.getLogger(__name__)

TOKEN_VERSION = 1
_PAYLOAD = struct.Struct(">BII4s")  # version, client id, expiry, nonce
MAC_BYTES = 12
TOKEN_BYTES = _PAYLOAD.size + MAC_BYTES  # 25 bytes -> 34 base64url characters
LINK_CODE = "link_code"
USED_TOKEN = "link_token_used"
# A code record outlives its code by this much, so a late attempt reads "expired", not "none".
RECORD_GRACE = timedelta(hours=1)


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:MAC_BYTES]


def issue_link_token(secret: str, client_id: int, valid_for: timedelta) -> str:
    """A one-time deep-link token for `client_id`, valid for `valid_for` from now."""
    if not secret:
        raise ValueError("LINK_TOKEN_SECRET is not set")
    if not 1 <= client_id <= ID_MAX:
        raise ValueError("client id out of range")
    expires = int(time.time() + valid_for.total_seconds())
    payload = _PAYLOAD.pack(TOKEN_VERSION, client_id, expires, secrets.token_bytes(4))
    raw = payload + _mac(secret, payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_link_token(secret: str, token: str, now: float | None = None) -> tuple[int, int] | None:
    """(client id, expiry) of a genuine, unexpired token; None for anything else."""
    if not secret or len(token) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != TOKEN_BYTES:
        return None
    payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    version, client_id, expires, _nonce = _PAYLOAD.unpack(payload)
    if version != TOKEN_VERSION or not 1 <= client_id <= ID_MAX:
        return None
    if expires <= (time.time() if now is None else now):
        return None
    return client_id, expires


class WhmcsLinkingMixin(WhmcsBase):
    async def is_linked(self, account_id: int) -> bool:
        return await self.local.billing_client_id(account_id) is not None

    async def start_linking(
        self, account_id: int, email: str, *, letter: LinkCodeLetter | None = None
    ) -> None:
        now = datetime.now(UTC)
        await self._check_link_cooldown(account_id, now)
        address = validate_email(email)
        client = await self._client_by_email(address)
        code = f"{secrets.randbelow(10**6):06d}"
        expires = now + timedelta(minutes=self.options.link_code_minutes)
        record = {
            "client_id": None if client is None else client.id,
            "code_hash": hash_code(code),
            "attempts_left": LINK_CODE_MAX_ATTEMPTS,
            "sent_at": now.timestamp(),
            "expires": expires.timestamp(),
        }
        await self.local.put_adapter_state(
            LINK_CODE, str(account_id), record, expires_at=expires + RECORD_GRACE
        )
        if client is None:
            return  # the same answer as for a client, and no e-mail
        try:
            letter = letter or LinkCodeLetter()
            body = letter.html.format(code=code, minutes=self.options.link_code_minutes)
            await self.client.send_email(client.id, letter.subject, body)
        except WhmcsAuthError:
            await self.local.delete_adapter_state(LINK_CODE, str(account_id))
            raise
        except WhmcsError as exc:  # "Sending Failed": the user sees the same answer anyway
            log.warning("SendEmail of a link code failed: %s", exc.message)
        except BaseException:  # WHMCS unreachable: no code went out, no cooldown for it
            await self.local.delete_adapter_state(LINK_CODE, str(account_id))
            raise

    async def _check_link_cooldown(self, account_id: int, now: datetime) -> None:
        previous = await self.local.get_adapter_state(LINK_CODE, str(account_id))
        if previous is None:
            return
        wait = float(previous.get("sent_at", 0)) + LINK_RESEND_COOLDOWN_SECONDS - now.timestamp()
        if wait > 0:
            raise RateLimited(retry_after=int(wait) + 1)

    async def _client_by_email(self, address: str) -> ClientDetails | None:
        try:
            return await self.client.get_client(email=address)
        except WhmcsAuthError:
            raise
        except WhmcsError:  # "Client Not Found" (getclientsdetails.md)
            return None

    async def confirm_linking(self, account_id: int, code: str) -> CodeCheck:
        key = str(account_id)
        record = await self.local.take_adapter_state(LINK_CODE, key)  # one attempt at a time
        if record is None:
            return CodeCheck("none")
        left = int(record.get("attempts_left", 0))
        if left <= 0:
            await self._keep_code(key, record)
            return CodeCheck("exhausted")
        if float(record.get("expires", 0)) <= time.time():
            await self._keep_code(key, record)
            return CodeCheck("expired")
        left -= 1
        matches = verify_secret_sync(code.strip(), str(record.get("code_hash") or ""))
        client_id = record.get("client_id")
        if not (matches and isinstance(client_id, int)):
            await self._keep_code(key, {**record, "attempts_left": left})
            return CodeCheck("wrong" if left > 0 else "exhausted", left)
        await self._link(account_id, client_id)
        return CodeCheck("ok", left)

    async def _keep_code(self, key: str, record: dict[str, Any]) -> None:
        expires = datetime.fromtimestamp(float(record.get("expires", 0)), UTC)
        await self.local.put_adapter_state(
            LINK_CODE, key, record, expires_at=expires + RECORD_GRACE
        )

    async def link_with_token(self, account_id: int, token: str) -> bool:
        found = read_link_token(self.options.link_token_secret or "", token)
        if found is None:
            return False
        client_id, expires = found
        used_key = hashlib.sha256(token.encode()).hexdigest()
        # The token is spent before WHMCS is asked: of two simultaneous uses one claims it.
        claimed = await self.local.add_adapter_state(
            USED_TOKEN,
            used_key,
            {"account_id": account_id},
            expires_at=datetime.fromtimestamp(expires, UTC),
        )
        if not claimed:
            return False
        try:
            await self._client_details(client_id, fresh=True)
        except WhmcsAuthError:
            await self.local.delete_adapter_state(USED_TOKEN, used_key)  # usable once it works
            raise
        except WhmcsError:  # the client is gone (Client Not Found): the token is spent
            return False
        except BaseException:  # WHMCS down: the token stays usable
            await self.local.delete_adapter_state(USED_TOKEN, used_key)
            raise
        await self._link(account_id, client_id)
        return True

    async def _link(self, account_id: int, client_id: int) -> None:
        await self.local.link_billing_client(account_id, client_id)
        await self.local.delete_adapter_state(LINK_CODE, str(account_id))
        try:  # show money in the client's WHMCS currency when the bot has a rate for it
            client = await self._client_details(client_id)
            await self.local.set_currency(account_id, client.currency_code)
        except (ValidationFailed, WhmcsFailure):
            pass  # the link is made; the display currency is only a nicety

    async def unlink(self, account_id: int) -> None:
        client_id = await self.local.billing_client_id(account_id)
        await self.local.unlink_billing_client(account_id)
        await self.local.delete_adapter_state(LINK_CODE, str(account_id))
        if client_id is not None:
            self._client_changed(client_id)
