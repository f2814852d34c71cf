"""Balance, ledger, invoices, payments and refunds over WHMCS."""

from __future__ import annotations

from services.whmcs.base import WhmcsBase


class WhmcsLedgerMixin(WhmcsBase):
    pass


class WhmcsPaymentsMixin(WhmcsBase):
    pass
