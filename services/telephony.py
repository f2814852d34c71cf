"""Call-password phone verification: the provider calls the number from a number whose last
four digits are the code; the user types those digits. A real provider (e.g. an SMS/voice
gateway's "call check") implements `Telephony`; `DevTelephony` only logs the call."""

from __future__ import annotations

import logging
import secrets
from typing import Protocol

log = logging.getLogger(__name__)


class TelephonyError(Exception):
    """The call could not be placed."""


class Telephony(Protocol):
    async def call_password(self, phone: str) -> str:
        """Place the call to `phone` (E.164); return the 4 digits the caller's number ends with."""


class DevTelephony:
    """Development stand-in: no call is made; the calling number is logged (and remembered
    for tests in `calls`) so a developer can complete the flow."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (called phone, calling number)

    async def call_password(self, phone: str) -> str:
        caller = "+7800" + "".join(str(secrets.randbelow(10)) for _ in range(7))
        self.calls.append((phone, caller))
        log.info("call-password (development): calling %s from %s", phone, caller)
        return caller[-4:]
