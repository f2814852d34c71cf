"""The WHMCS External API transport: one form-encoded POST to `.../includes/api.php` per action.

Request parameters follow PHP's `http_build_query`, which is what the API reference's examples
send: a list becomes `name[0]=..&name[1]=..`, a mapping `name[key]=..`, a bool "1"/"0".
An answer is JSON (`responsetype=json`); WHMCS answers an error as
`{"result": "error", "message": ...}`, for refused credentials or IP with HTTP 403, and we read
that body. Only the action name and its outcome are logged: never a parameter (the secret,
the access key, passwords) and never a response body (GetClientsProducts returns the service
`password`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Self

import aiohttp

from services.billing import in_transaction
from services.observers import billing_call_done
from services.whmcs.errors import (
    WhmcsAuthError,
    WhmcsError,
    WhmcsUnavailable,
    is_auth_message,
)
from services.whmcs.parse import JsonObject

log = logging.getLogger("services.whmcs")

Scalar = str | int | bool | Decimal | None
ParamValue = Scalar | Sequence[Scalar] | Mapping[str, Scalar]


@dataclass(frozen=True)
class WhmcsConfig:
    url: str  # the full `https://.../includes/api.php` endpoint
    identifier: str = field(repr=False)
    secret: str = field(repr=False)
    access_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    total_timeout: float = 20.0


def _scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


def encode_params(params: Mapping[str, ParamValue]) -> list[tuple[str, str]]:
    """Form fields as PHP's http_build_query writes them; a None value is left out."""
    fields: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            fields.extend((f"{name}[{key}]", _scalar(item)) for key, item in value.items())
        elif isinstance(value, list | tuple):
            fields.extend((f"{name}[{index}]", _scalar(item)) for index, item in enumerate(value))
        else:
            fields.append((name, _scalar(value)))  # type: ignore[arg-type]
    return fields


def is_read(action: str) -> bool:
    """Reads (`Get*`) change nothing on WHMCS's side, so one may be repeated."""
    return action.startswith("Get")


def _decode(action: str, status: int, text: str) -> JsonObject:
    if status >= 500:
        raise WhmcsUnavailable(action, f"HTTP {status}")
    try:
        body = json.loads(text)
    except ValueError:
        raise WhmcsUnavailable(action, f"HTTP {status}, not a JSON answer") from None
    if not isinstance(body, dict):
        raise WhmcsUnavailable(action, f"HTTP {status}, not a JSON object")
    result = body.get("result")
    if result == "error":
        message = str(body.get("message") or "")
        if status in (401, 403) or is_auth_message(message):
            raise WhmcsAuthError(action, message, status)
        raise WhmcsError(action, message, status)
    if status != 200 or result != "success":
        raise WhmcsUnavailable(action, f"HTTP {status}, result {result!r}")
    return body


class WhmcsTransport:
    """Owns the aiohttp session (created on first use, closed by `close()`)."""

    def __init__(self, config: WhmcsConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=self.config.total_timeout, sock_connect=self.config.connect_timeout
            )
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def call(self, action: str, params: Mapping[str, ParamValue] | None = None) -> JsonObject:
        """Run one action; a read is tried a second time if the first got no answer.

        A write is never repeated here: without an idempotency key (AddTransaction's
        `transid`) a repeat may do the thing twice. The caller decides.
        """
        try:
            return await self._call_once(action, params or {})
        except WhmcsUnavailable:
            if not is_read(action):
                raise
            log.info("whmcs %s: retrying the read once", action)
            return await self._call_once(action, params or {})

    def _form(self, action: str, params: Mapping[str, ParamValue]) -> list[tuple[str, str]]:
        auth: dict[str, ParamValue] = {
            "action": action,
            "identifier": self.config.identifier,
            "secret": self.config.secret,
            "accesskey": self.config.access_key,
            "responsetype": "json",
        }
        return encode_params(auth) + encode_params(params)

    async def _call_once(self, action: str, params: Mapping[str, ParamValue]) -> JsonObject:
        if in_transaction():
            # The rule of the house: no database transaction waits on a network call.
            raise RuntimeError(f"whmcs {action} called inside a billing transaction")
        started = time.monotonic()
        try:
            body = await self._post(action, self._form(action, params))
        except WhmcsUnavailable as exc:
            billing_call_done("whmcs", action, started, "unavailable")
            log.warning("whmcs %s unavailable: %s", action, exc.message)
            raise
        except WhmcsError as exc:
            billing_call_done("whmcs", action, started, "error")
            kind = "refused us" if isinstance(exc, WhmcsAuthError) else "error"
            log.warning("whmcs %s %s: %s", action, kind, exc.message)
            raise
        billing_call_done("whmcs", action, started, "ok")
        log.info("whmcs %s ok in %.0f ms", action, (time.monotonic() - started) * 1000)
        return body

    async def _post(self, action: str, form: list[tuple[str, str]]) -> JsonObject:
        try:
            async with self._session_now().post(self.config.url, data=form) as response:
                text = await response.text(errors="replace")
                status = response.status
        except TimeoutError:
            raise WhmcsUnavailable(action, "timed out") from None
        except aiohttp.ClientError as exc:
            raise WhmcsUnavailable(action, f"{type(exc).__name__}") from None
        return _decode(action, status, text)
