"""Rate limits of the forms that send mail (sign-up, resend, forgot-password): per client IP and
per address, counted whether or not the address has an account, so a refusal says nothing of it.

Each form names its limits next to its rule; this module only counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from idp.db import rate_limits
from idp.db.pool import Executor


@dataclass(frozen=True)
class Limit:
    name: str  # the counter's prefix: "forgot-ip", "forgot-email", ...
    hits: int  # allowed per window
    window: timedelta


async def allowed(db: Executor, now: datetime, *checks: tuple[Limit, str]) -> bool:
    """Count a hit on every ``(limit, subject)`` and say whether all are within their limit.
    Every counter is hit even when an earlier one is over: refusals keep counting."""
    within = True
    for limit, subject in checks:
        hits = await rate_limits.hit(db, f"{limit.name}:{subject.casefold()}", now, limit.window)
        within = within and hits <= limit.hits
    return within
