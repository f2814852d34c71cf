"""Domain errors. Handlers never catch them one by one: the central error handler turns each
into one localized answer (see handlers/errors.py) and the update's transaction rolls back."""

from __future__ import annotations


class DomainError(Exception):
    """Base class for an expected, user-facing failure of a business rule."""

    code = "domain_error"

    def __init__(self, detail: str = "", **params: object) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.params = params


class NotFound(DomainError):
    """The object does not exist or does not belong to the caller (never tell which)."""

    code = "not_found"


class ValidationFailed(DomainError):
    """Input was rejected; `detail` names the rule (e.g. 'amount_too_small')."""

    code = "validation"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"

    def __init__(self, missing_minor: int, currency: str) -> None:
        super().__init__("insufficient_funds", missing_minor=missing_minor, currency=currency)
        self.missing_minor = missing_minor
        self.currency = currency


class PaymentBlocked(DomainError):
    """Paying is not allowed yet: `missing` lists profile fields, or the company is unverified."""

    code = "payment_blocked"

    def __init__(self, missing: list[str] | None = None, company_unverified: bool = False) -> None:
        super().__init__("payment_blocked")
        self.missing = missing or []
        self.company_unverified = company_unverified


class InvalidState(DomainError):
    """The action does not fit the object's current state (e.g. renewing a cancelled order)."""

    code = "invalid_state"


class AlreadyDone(DomainError):
    """An idempotent action was already performed (e.g. a code word is already set)."""

    code = "already_done"


class PermissionDenied(DomainError):
    code = "permission_denied"


class RateLimited(DomainError):
    """Too many attempts (codes, resends); `retry_after` in seconds."""

    code = "rate_limited"

    def __init__(self, retry_after: int = 0) -> None:
        super().__init__("rate_limited", retry_after=retry_after)
        self.retry_after = retry_after


class LimitReached(DomainError):
    """A per-customer limit of the configuration is reached: `detail` names it
    ('open_tickets', 'tickets_per_hour', 'open_invoices'), `limit` is what it allows and
    `retry_after` the seconds until time frees a slot (0 when only the customer can)."""

    code = "limit_reached"

    def __init__(self, detail: str, limit: int, retry_after: int = 0) -> None:
        super().__init__(detail, limit=limit, retry_after=retry_after)
        self.limit = limit
        self.retry_after = retry_after


class BillingUnavailable(DomainError):
    """The external billing did not answer, answered nonsense (a maintenance page) or refused
    the bot (credentials, IP allow-list): `reason` is "unreachable" or "refused". Nothing the
    customer can fix; staff are told once."""

    code = "billing_unavailable"

    def __init__(self, reason: str = "unreachable") -> None:
        super().__init__(reason)
        self.reason = reason


class NotLinked(DomainError):
    """The Telegram account is not linked to a client of the external billing yet."""

    code = "not_linked"
