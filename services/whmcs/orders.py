"""The catalogue, orders (WHMCS services) and the alert jobs' due scans over WHMCS."""

from __future__ import annotations

from services.whmcs.base import WhmcsBase


class WhmcsCatalogueMixin(WhmcsBase):
    pass


class WhmcsOrdersMixin(WhmcsBase):
    pass


class WhmcsDueScansMixin(WhmcsBase):
    pass
