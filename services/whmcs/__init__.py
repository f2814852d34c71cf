"""The WHMCS adapter: the External API transport, typed results and, later, the billing core.

Nothing here imports the bot or the embedded billing; `bot/factory.py` will compose it.
"""

from services.whmcs.client import CANCEL_END_OF_PERIOD, CANCEL_IMMEDIATE, OrderLine, WhmcsClient
from services.whmcs.errors import WhmcsAuthError, WhmcsError, WhmcsFailure, WhmcsUnavailable
from services.whmcs.transport import WhmcsConfig

__all__ = [
    "CANCEL_END_OF_PERIOD",
    "CANCEL_IMMEDIATE",
    "OrderLine",
    "WhmcsAuthError",
    "WhmcsClient",
    "WhmcsConfig",
    "WhmcsError",
    "WhmcsFailure",
    "WhmcsUnavailable",
]
