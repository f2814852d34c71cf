"""What a WHMCS call can end in, besides success.

`WhmcsUnavailable`: no usable answer (timeout, connection refused or reset, 5xx, an HTML
maintenance page, a body that is not JSON). The call may or may not have happened on WHMCS's
side; only a read is safe to repeat.
`WhmcsError`: WHMCS answered `{"result": "error", "message": ...}`; the call did not happen.
`WhmcsAuthError` is the subset where WHMCS refused us (credentials, IP allow-list, API role):
nothing the customer did, and nothing that a retry fixes.
"""

from __future__ import annotations


class WhmcsFailure(Exception):
    """Base of every failure the WHMCS adapter raises."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class WhmcsUnavailable(WhmcsFailure):
    """WHMCS could not be reached or gave no JSON answer."""


class WhmcsError(WhmcsFailure):
    """WHMCS refused the call with `result=error`; `message` is WHMCS's own text."""

    def __init__(self, action: str, message: str, status: int = 200) -> None:
        super().__init__(action, message)
        self.status = status


class WhmcsAuthError(WhmcsError):
    """WHMCS refused our credentials, our IP address or the API role's permissions."""


# The API reference lists no authentication messages. These prefixes are what WHMCS installs
# answer (with HTTP 403) in practice; an HTTP 403 with a JSON error body counts as an
# authentication error whatever its message is.
AUTH_MESSAGE_PREFIXES = (
    "authentication failed",
    "invalid ip",
    "invalid permissions",
    "invalid or missing credentials",
    "access denied",
)


def is_auth_message(message: str) -> bool:
    return message.strip().lower().startswith(AUTH_MESSAGE_PREFIXES)
