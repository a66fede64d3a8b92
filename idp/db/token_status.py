"""Lookups behind /revoke, /introspect and the deny-list: a token's live state, one round trip
each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp.db import refresh_tokens
from idp.db.pool import Executor

IS_DENIED = "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)"
DENIED_SINCE = "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > $1"
DENY_JTI = """
INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)
ON CONFLICT (jti) DO NOTHING
"""


@dataclass(frozen=True)
class RefreshState:
    """A presented refresh token: its family, and when the token was used (None: it is the
    family's current token)."""

    family: refresh_tokens.Stored
    consumed_at: datetime | None

    def active(self, now: datetime) -> bool:
        family = self.family
        return (
            family.revoked_at is None
            and self.consumed_at is None
            and now < family.expires_at
            and now < family.idle_expires_at
            and not family.user_disabled
        )


async def refresh_state(db: Executor, handle_hash: bytes, token_hash: bytes) -> RefreshState | None:
    """The state of a family's current token, or of the one it replaced (consumed); None for
    any other token."""
    family = await refresh_tokens.find(db, handle_hash)
    if family is None:
        return None
    if family.is_current(token_hash):
        return RefreshState(family, None)
    if family.is_previous(token_hash):
        return RefreshState(family, family.token_issued_at)
    return None


async def is_denied(db: Executor, jti: str) -> bool:
    denied: bool = await db.fetchval(IS_DENIED, jti)
    return denied


async def denied_since(db: Executor, now: datetime) -> dict[str, datetime]:
    """Every deny-list entry still in force."""
    return {row["jti"]: row["expires_at"] for row in await db.fetch(DENIED_SINCE, now)}


async def deny_access_token(db: Executor, jti: str, until: datetime) -> None:
    await db.execute(DENY_JTI, jti, until)
