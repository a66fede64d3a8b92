"""What the account page's rules use of the running app, in one value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.mail.outbox import Mailing
from idp.passwords import Passwords
from idp.settings import Settings


@dataclass(frozen=True)
class Services:
    pool: asyncpg.Pool
    passwords: Passwords
    mailing: Mailing
    settings: Settings

    def deny_until(self, now: datetime) -> datetime:
        """How long revoked access tokens stay deny-listed: their longest possible lifetime."""
        return self.settings.deny_until(now)
