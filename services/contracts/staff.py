"""Rules of the staff desk that the bot keeps for itself: the limit on code-word checks.

`/verify` lets staff check a customer's code word without seeing it, so the command is also an
oracle for guessing it. Every implementation therefore counts the checks per customer in a
sliding window, in its database (the limit holds across restarts and bot instances), and
refuses a check beyond the limit. A check is counted before the word is compared, in one short
transaction of its own, so concurrent checks can never exceed the limit; the comparison (a slow
hash) runs afterwards, with no write transaction open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CodeWordAttempt:
    allowed: bool  # the check may go ahead (and is counted)
    left: int  # checks still allowed within the window after this one
    retry_after_seconds: int  # refused: until the oldest counted check leaves the window
    # Refused, and the first refusal since the last allowed check: the staff group is told once.
    first_refusal: bool = False


class StaffApi(Protocol):
    async def take_code_word_attempt(
        self, account_id: int, staff_user_id: int, *, limit: int, window: timedelta
    ) -> CodeWordAttempt:
        """Count one code-word check of the account by `staff_user_id`, unless `limit` checks
        were counted within `window` already: then the attempt is refused (and recorded as
        refused). NotFound for an unknown account."""
        ...
