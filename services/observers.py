"""Hooks through which services report what an operator counts (billing calls, credited
payments). The composition root installs an observer that feeds the metrics (bot/metrics.py);
services never import a metrics library, and the default observer does nothing."""

from __future__ import annotations

import time


class Observer:
    """Every method is called inline on a hot path: it must be cheap and never raise."""

    def billing_call(self, billing: str, action: str, seconds: float, outcome: str) -> None:
        """One call to an external billing's API: `outcome` is ok, error or unavailable."""

    def payment_credited(self, provider: str) -> None:
        """A payment was credited to a balance (not a redelivered one)."""


_current = Observer()


def observer() -> Observer:
    return _current


def install(new: Observer | None) -> None:
    """Make `new` the observer (None: the do-nothing default again)."""
    global _current
    _current = new if new is not None else Observer()


def billing_call_done(billing: str, action: str, started: float, outcome: str) -> None:
    """`billing_call` with the duration since `started` (time.monotonic())."""
    _current.billing_call(billing, action, time.monotonic() - started, outcome)
