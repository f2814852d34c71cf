"""Support tickets over WHMCS."""

from __future__ import annotations

from services.whmcs.base import WhmcsBase


class WhmcsTicketsMixin(WhmcsBase):
    pass
