"""The WHMCS adapter assembled: `WhmcsCore` implements BillingCore over the WHMCS API, and
`create_whmcs_gateway` composes it with the bot's own database (the BotStore)."""

from __future__ import annotations

from services.billing import BillingCore, BillingGateway, per_call
from services.whmcs.accounts import WhmcsAccountsMixin
from services.whmcs.base import WhmcsOptions
from services.whmcs.client import WhmcsClient
from services.whmcs.gateway import WhmcsGateway
from services.whmcs.money import WhmcsLedgerMixin, WhmcsPaymentsMixin
from services.whmcs.orders import WhmcsCatalogueMixin, WhmcsDueScansMixin, WhmcsOrdersMixin
from services.whmcs.profile import WhmcsProfileMixin
from services.whmcs.tickets import WhmcsTicketsMixin
from services.whmcs.transport import WhmcsConfig


class WhmcsCore(
    WhmcsAccountsMixin,
    WhmcsLedgerMixin,
    WhmcsCatalogueMixin,
    WhmcsProfileMixin,
    WhmcsPaymentsMixin,
    WhmcsOrdersMixin,
    WhmcsTicketsMixin,
    WhmcsDueScansMixin,
):
    """One per process (unlike the embedded billing's one per transaction): it holds no
    transaction, only the API client and a few seconds of client details."""


def create_whmcs_gateway(
    local: BillingGateway, config: WhmcsConfig, options: WhmcsOptions
) -> WhmcsGateway:
    """`local` is the bot's own database (the embedded gateway): the BotStore, and the local
    half of every account."""
    client = WhmcsClient(config)
    core = WhmcsCore(client, per_call(local), options, local.base_currency)
    return WhmcsGateway(core, local, client)


def _fits_the_seam(core: WhmcsCore, gateway: WhmcsGateway) -> tuple[BillingCore, BillingGateway]:
    """Never called: here the type checker (`make lint`) proves that the WHMCS adapter
    implements every BillingCore method with its signature, and its gateway the gateway's."""
    return core, gateway
