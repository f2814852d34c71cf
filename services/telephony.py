"""Call-password phone verification: the provider calls the number from a number whose last
four digits are the code; the user types those digits. A real provider (e.g. an SMS/voice
gateway's "call check") implements `Telephony`; `DevTelephony` places no call. The calling
number is the code: it is never logged, and the called one only masked."""

from __future__ import annotations

import logging
import secrets
from collections import deque
from typing import Protocol

from services.privacy import mask_phone

log = logging.getLogger(__name__)


class TelephonyError(Exception):
    """The call could not be placed."""


class Telephony(Protocol):
    async def call_password(self, phone: str) -> str:
        """Place the call to `phone` (E.164); return the 4 digits the caller's number ends with."""


class DevTelephony:
    """Development stand-in: no call is made; the calling number is remembered in `calls`
    (tests and a developer's debugger complete the flow from there), never logged."""

    def __init__(self) -> None:
        # (called phone, calling number): the latest ones only, memory stays bounded
        self.calls: deque[tuple[str, str]] = deque(maxlen=100)

    async def call_password(self, phone: str) -> str:
        caller = "+7800" + "".join(str(secrets.randbelow(10)) for _ in range(7))
        self.calls.append((phone, caller))
        log.info("call-password (development): no call placed to %s", mask_phone(phone))
        return caller[-4:]
