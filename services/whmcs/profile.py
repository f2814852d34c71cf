"""The profile over WHMCS, with the settings WHMCS has no field for kept in the bot store."""

from __future__ import annotations

from services.whmcs.base import WhmcsBase


class WhmcsProfileMixin(WhmcsBase):
    pass
