"""The limit on code-word checks (`services.contracts.store.StaffDeskApi`).

`/verify` lets staff check a customer's code word without seeing it, so the command is also an
oracle for guessing it. Every implementation therefore counts the checks per customer in a
sliding window, in its database (the limit holds across restarts and bot instances), and
refuses a check beyond the limit. A check is counted before the word is compared, in one short
transaction of its own, so concurrent checks can never exceed the limit; the comparison (a slow
hash) runs afterwards, with no write transaction open.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CodeWordAttempt:
    allowed: bool  # the check may go ahead (and is counted)
    left: int  # checks still allowed within the window after this one
    retry_after_seconds: int  # refused: until the oldest counted check leaves the window
    # Refused, and the first refusal since the last allowed check: the staff group is told once.
    first_refusal: bool = False
