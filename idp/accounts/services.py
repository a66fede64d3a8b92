"""What the account page's rules use of the running app, in one value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.mail.compose import Composer
from idp.mail.outbox import Outbox
from idp.passwords import Passwords
from idp.settings import Settings


@dataclass(frozen=True)
class Services:
    pool: asyncpg.Pool
    passwords: Passwords
    outbox: Outbox
    composer: Composer
    settings: Settings

    def deny_until(self, now: datetime) -> datetime:
        """How long revoked access tokens stay deny-listed: their longest possible lifetime."""
        return now + self.settings.deny_list_horizon
