"""Balance, ledger, invoices, payments and refunds over WHMCS: the two mixins `WhmcsCore`
composes, assembled from ledger.py (balance, credit log, staff credit/debit), invoices.py (rates
and WHMCS invoices) and topups.py (Telegram top-ups and payments, Stars refunds)."""

from __future__ import annotations

from services.whmcs.ledger import WhmcsLedgerCore
from services.whmcs.topups import WhmcsRefundsMixin


class WhmcsLedgerMixin(WhmcsLedgerCore):
    """LedgerApi over WHMCS (ledger.py). The payments mixin builds on the same core, so the
    two can be listed in either order in WhmcsCore."""


class WhmcsPaymentsMixin(WhmcsRefundsMixin):
    """PaymentsApi over WHMCS (the ledger comes with it: refunds take the credit back)."""


__all__ = ["WhmcsLedgerMixin", "WhmcsPaymentsMixin"]
